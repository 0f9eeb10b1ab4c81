"""The model card (modeling_mirnet/model_card.py): what a Hub visitor reads first must fit the model it describes, and
the shipped card must be exactly what train/package_model.py writes for the shipped model."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from modeling_mirnet import MIRNetModel
from modeling_mirnet.model_card import only_this_model, write_model_card

from helpers import tiny_config

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "space" / "checkpoints" / "mirnet-lol"
PACKAGE_COMMAND = ["--evaluation", "results/mirnet_lol_eval15/results.json", "--well-lit", "results/well_lit/mirnet_lol.json",
                   "--exposure", "results/exposure/mirnet_lol_validation.json",
                   "--held-out-exposure", "results/exposure/recipe_300_validation.json",
                   "--name", "org/mirnet-lol", "--trained-on", "2 CPU cores, no GPU"]


def readme_repo_ids() -> set[str]:
    return set(re.findall(r"\borg/mirnet-[a-z]+\b", (REPO / "README.md").read_text()))


def card_for(tmp_path, well_lit=None, test=None, dataset="data/lol", commit="abc123-dirty") -> str:
    MIRNetModel(tiny_config()).save_pretrained(tmp_path)
    training = {"args": {"dataset": dataset, "num_features": 8, "num_rrg": 1, "num_mrb": 1, "experiment": "x"},
                "command": "accelerate launch train/train.py --config c.yaml", "commit": commit}
    state = {"epoch": 2, "best_epoch": 1, "history": [{"val_psnr": 20.0, "val_ssim": 0.7, "val_psnr_gt_mean": 24.0, "val_loss": 0.1}]}
    return write_model_card(tmp_path, training, state, "org/mirnet-lol", test=test, well_lit=well_lit).read_text()


WELL_LIT = {"count": 145, "median_psnr": 15.4, "median_ratio": 1.16, "worst_grid": 31.7, "median_grid": 13.8,
            "worst_input_grid": 3.7, "worst_grid_added": 29.5, "label": "mine",
            "command": "python benchmarks/well_lit.py --model mine=m --model other=runs/o --dataset data/lol --json r.json"}
TEST = {"dataset": "datasets/lol_eval15", "split": "test", "n": 15, "command": "python train/evaluate.py ...",
        "psnr": 18.97, "ssim": 0.7528, "psnr_gt_mean": 23.35}


def test_the_card_says_in_prose_what_the_model_is_for_and_what_it_is_not(tmp_path):
    card = card_for(tmp_path, WELL_LIT, TEST)
    params = sum(p.numel() for p in MIRNetModel(tiny_config()).parameters())
    assert f"A small MIRNet ({params / 1e6:.2f}M parameters: 8 channels, 1 RRG x 1 MRB)" in card
    assert "scores 18.97 dB PSNR" in card and "reports 24.14 dB PSNR / 0.830 SSIM" in card  # against the paper's
    assert "It is not for photos that are already well exposed" in card and "brighter (mean gray x1.16)" in card
    # figures that meet the goals are said to leave well-lit photos alone
    gentle = {**WELL_LIT, "median_psnr": 40.0, "median_ratio": 1.01, "worst_grid_added": 1.1}
    assert "come out nearly unchanged" in card_for(tmp_path / "gentle", gentle, TEST)
    assert "was not measured" in card_for(tmp_path / "unmeasured")


def test_the_card_names_what_a_visitor_can_follow_and_nothing_that_does_not_fit(tmp_path):
    card = card_for(tmp_path, WELL_LIT, TEST)
    assert "https://daooshee.github.io/BMVC2018website/" in card
    assert "`data/lol` there is [LOL](https://daooshee.github.io/BMVC2018website/)" in card  # the commands' folder, explained
    assert "dataset: data/lol" not in card.replace("  ", " ") and "type: data/lol" not in card
    assert "-dirty" not in card and "commit `abc123` of the project, with changes not yet committed" in card
    assert "485" not in card and "SICE" not in card  # no text about another dataset
    assert "other=runs/o" not in card and "r.json" not in card  # only this model in the command
    assert 'from_pretrained("org/mirnet-lol"' in card
    assert "a local dataset folder" in card_for(tmp_path / "mine", dataset=str(tmp_path / "pairs"))
    hub = card_for(tmp_path / "hub", dataset="someone/night-photos")
    assert "(https://huggingface.co/datasets/someone/night-photos)" in hub and "type: someone/night-photos" in hub


EXPOSURE = {"count": 145, "psnr": 20.31, "ssim": 0.7071, "psnr_reference_exposure": 26.13, "ssim_reference_exposure": 0.7456,
            "psnr_gt_mean": 25.71, "head_exposure_rms": 0.77, "constant_exposure_rms": 0.71, "rendering_rms": 0.059,
            "median_black": 19.4, "median_reference_black": 25.7, "label": "mine",
            "command": "python benchmarks/exposure.py --model mine=m --model other=runs/o --dataset data/lol --json r.json"}


def test_an_exposure_conditioned_card_says_how_to_set_the_exposure_and_how_well_it_is_guessed_and_rendered(tmp_path):
    MIRNetModel(tiny_config(exposure_conditioning=True)).save_pretrained(tmp_path)
    training = {"args": {"dataset": "data/lol", "num_features": 8, "num_rrg": 1, "num_mrb": 1, "exposure_conditioning": True},
                "command": "accelerate launch train/train.py --config conditioned.yaml", "commit": "abc123",
                "exposure_head_stage": {"command": "accelerate launch train/train.py --train_exposure_head_only"}}
    state = {"epoch": 2, "best_epoch": 1, "history": [{"val_psnr": 20.0, "val_ssim": 0.7, "val_psnr_gt_mean": 24.0, "val_loss": 0.1}]}
    card = write_model_card(tmp_path, training, state, "org/mirnet-lol", exposure=EXPOSURE).read_text()
    assert "| 20.31 dB / 0.7071 | 26.13 dB / 0.7456 | 25.71 dB | 0.77 (0.71) stops | 0.059 stops | 19.4 (25.7) |" in card
    assert "no better than one brightness for every photo (0.77 stops rms against 0.71)" in card
    assert "26.13 dB at each reference's exposure and 20.31 dB at its own guess" in card
    assert "`python benchmarks/exposure.py --model mine=m --dataset data/lol`" in card  # only this model's command
    assert "`accelerate launch train/train.py --train_exposure_head_only`" in card
    assert 'enhance(image, exposure=4.0)' in card and "`mirnet-enhance --exposure`" in card
    assert "Exposure is an input" not in card_for(tmp_path / "plain")  # models without it keep their card


def test_a_final_fit_card_quotes_its_recipe_run_for_unseen_scenes_and_says_it_saw_the_validation_pairs(tmp_path):
    """A final fit trained on the validation pairs: its own figures there flatter it, so the card says so and takes
    what it claims about unseen scenes from its recipe's validated run."""
    MIRNetModel(tiny_config(exposure_conditioning=True)).save_pretrained(tmp_path)
    training = {"args": {"dataset": "data/lol", "num_features": 8, "num_rrg": 1, "num_mrb": 1, "exposure_conditioning": True,
                         "train_split": "train+validation", "validation_split": "none"},
                "command": "accelerate launch train/train.py --config final.yaml", "commit": "abc123",
                "exposure_head_stage": {"command": "python train/train.py --train_exposure_head_only"}}
    state = {"epoch": 36, "best_epoch": 36, "history": [{"val_psnr": None}] * 36}
    fitted = {**EXPOSURE, "psnr": 21.5, "psnr_reference_exposure": 27.0, "head_exposure_rms": 0.5, "rendering_rms": 0.05}
    held_out = {**EXPOSURE, "command": "python benchmarks/exposure.py --model recipe=r --dataset data/lol", "label": "recipe"}
    well_lit = {"count": 145, "command": "python benchmarks/well_lit.py --model x=y", "median_psnr": 38.0, "median_ratio": 1.0,
                "worst_grid": 3.7, "median_grid": 2.0, "worst_input_grid": 3.68, "worst_grid_added": 1.1}
    card = write_model_card(tmp_path, training, state, "org/mirnet-lol", exposure=fitted, well_lit=well_lit,
                            held_out_exposure=held_out).read_text()
    assert "no better than one brightness for every photo: its recipe's validated run, on 145 validation pairs it never " \
           "saw, guessed 0.77 stops rms against a constant's 0.71 and scored 26.13 dB at each reference's exposure and " \
           "20.31 dB at its own guess" in card
    assert "it renders it within 0.05 stops" in card
    assert "which this model also trained on, so these figures flatter it; its recipe's validated run" in card
    assert "`python benchmarks/exposure.py --model recipe=r --dataset data/lol`" in card
    assert "| 21.50 dB / 0.7071 | 27.00 dB / 0.7456 |" in card
    assert "this model also trained on them, as well-lit pairs" in card
    assert "the last one, not validated" in card


def test_only_this_model_keeps_the_command_whole_otherwise():
    assert only_this_model("python b.py --model x=y --json a.json", None) == "python b.py --model x=y --json a.json"
    assert only_this_model("python b.py --model a=1 --model 'b=my dir' --json r.json --dataset d", "b") == \
        "python b.py --model 'b=my dir' --dataset d"


def test_the_shipped_card_is_what_package_model_writes(tmp_path):
    """Same writer, same records: regenerating the shipped folder gives its card byte for byte (and never touches
    the weights), so the next model's card is written the same way."""
    copy = tmp_path / "mirnet-lol"
    shutil.copytree(SHIPPED, copy)
    result = subprocess.run([sys.executable, "train/package_model.py", "--run", str(copy), "--output", str(tmp_path / "out"),
                             *PACKAGE_COMMAND], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "README.md").read_text() == (SHIPPED / "README.md").read_text()
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (SHIPPED / "model.safetensors").read_bytes()
    card = (SHIPPED / "README.md").read_text()
    assert readme_repo_ids() == {"org/mirnet-lol"} and "org/mirnet-lol" in card  # the README's repository id
    assert "1.36M parameters" in card and "trained on 2 CPU cores" in card and "24.14 dB" in card
    assert "-dirty" not in card and "f_epoch3" not in card and "`data/lol` there is [LOL]" in card
    for record in ("training_args.json", "trainer_state.json"):  # the records stay as they were
        assert (tmp_path / "out" / record).read_text() == (SHIPPED / record).read_text()
