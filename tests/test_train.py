"""train/train.py and train/sweep.py: a CPU smoke run through `accelerate launch` that resumes exactly, the
exported model folder, config files, and the sweep table."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from modeling_mirnet import data as data_utils
from modeling_mirnet.modeling_mirnet import checkerboard_free

import helpers

REPO = helpers.REPO


def load_script(name: str):
    """A train/ script as a module (its functions, without running it)."""
    return helpers.load_script(f"train/{name}.py")


TINY_FLAGS = ["--num_rrg", "1", "--num_mrb", "1", "--num_features", "8", "--num_streams", "2", "--num_dau_columns", "1",
              "--crop_size", "16", "--train_batch_size", "2", "--max_validation_images", "2"]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def run(args: list[str], launcher=LAUNCH, **env_extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_extra}
    return subprocess.run([*launcher, str(REPO / "train" / "train.py"), *args], capture_output=True, text=True, env=env, cwd=REPO)


def train_interrupted_and_straight(common: list[str], tmp_path) -> tuple[dict, dict, Path]:
    """Run `common` stopped after epoch 1 and resumed, and straight through 2 epochs: both runs' epoch-2 weights and
    the straight run's folder."""
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    for args in ([*common, "--output_dir", str(interrupted), "--stop_after_epoch", "1"],
                 [*common, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"], [*common, "--output_dir", str(straight)]):
        result = run(args)
        assert result.returncode == 0, result.stderr[-3000:]
    weights = [load_file(folder / "checkpoints" / "epoch_0002" / "model.safetensors") for folder in (interrupted, straight)]
    return weights[0], weights[1], straight


def test_resume_continues_exactly(dataset_dir, tmp_path):
    """Interrupt after epoch 1 and resume: weights and metrics equal those of an uninterrupted run, bit for bit.
    `--resume_from_checkpoint latest` with no checkpoint yet starts afresh."""
    common = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "2", "--lr_scheduler", "cosine", "--random_flip",
              "--report_to", "none"]
    interrupted = tmp_path / "interrupted"
    first = run([*common, "--output_dir", str(interrupted), "--stop_after_epoch", "1", "--resume_from_checkpoint", "latest"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert "resumed from" not in first.stderr and "stopping after epoch 1" in first.stderr
    state = json.loads((interrupted / "trainer_state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]) == 1 and state["global_step"] == 2  # 4 pairs, batches of 2
    second = run([*common, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr  # accelerate's logger (stderr)
    straight = tmp_path / "straight"
    third = run([*common, "--output_dir", str(straight)])
    assert third.returncode == 0, third.stderr[-3000:]

    a = load_file(interrupted / "checkpoints" / "epoch_0002" / "model.safetensors")
    b = load_file(straight / "checkpoints" / "epoch_0002" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda h: {k: v for k, v in h.items() if not k.endswith("seconds")}  # noqa: E731  (timings differ)
    history_a = [drop(h) for h in json.loads((interrupted / "trainer_state.json").read_text())["history"]]
    history_b = [drop(h) for h in json.loads((straight / "trainer_state.json").read_text())["history"]]
    assert history_a == history_b and len(history_a) == 2
    assert history_a[1]["lr"] < history_a[0]["lr"]  # the cosine schedule was restored too, not restarted

    # the exported best model is a complete Hub folder with a model card and curves
    from modeling_mirnet.inference import load_mirnet

    model_dir = straight / "model"
    model, _ = load_mirnet(model_dir)
    assert model.config.num_rrg == 1 and model.config.num_streams == 2 and model.config.loss_type == "charbonnier"
    for name in ("README.md", "curves.png", "trainer_state.json", "modeling_mirnet.py", "preprocessor_config.json"):
        assert (model_dir / name).is_file(), name
    card = (model_dir / "README.md").read_text()
    best = max(history_b, key=lambda h: h["val_psnr"])
    assert "model-index" in card and f"{best['val_psnr']:.2f}" in card
    assert PIL.Image.open(straight / "curves.png").size[0] > 100


def test_gradient_accumulation_makes_one_update_of_the_mean_gradient(dataset_dir, tmp_path):
    """--gradient_accumulation_steps 2 with batches of 2 makes one optimizer update per 2 batches, of their mean
    gradient: on the same 4 crops, the weights after it are those of one update with a batch of 4."""
    common = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "1", "--lr_scheduler", "constant",
              "--validation_split", "none", "--report_to", "none"]
    runs = {}
    for batch, accumulation in ((4, 1), (2, 2), (2, 1)):
        out = tmp_path / f"b{batch}x{accumulation}"
        result = run([*common, "--train_batch_size", str(batch), "--gradient_accumulation_steps", str(accumulation),
                      "--output_dir", str(out)], launcher=[sys.executable])
        assert result.returncode == 0, result.stderr[-3000:]
        state = json.loads((out / "trainer_state.json").read_text())
        runs[batch, accumulation] = state["global_step"], load_file(out / "checkpoints" / "epoch_0001" / "model.safetensors")
    (steps_4, whole), (steps_2x2, accumulated), (steps_2, two_updates) = runs[4, 1], runs[2, 2], runs[2, 1]
    assert (steps_4, steps_2x2, steps_2) == (1, 1, 2)
    for key in whole:
        torch.testing.assert_close(accumulated[key], whole[key], rtol=1e-5, atol=1e-6)
    assert max(float((two_updates[k] - whole[k]).abs().max()) for k in whole) > 1e-5  # a second update shows


def test_cosine_schedule_matches_cosine_annealing_and_resumes_to_the_same_learning_rate():
    """--lr_scheduler cosine (transformers' cosine_with_min_lr) gives torch's CosineAnnealingLR learning rates, the
    schedule the project used before, to 1e-9; its checkpointed state resumes to the same learning rates, and so does
    the state of a CosineAnnealingLR checkpoint (a run started before the change)."""
    import argparse
    import copy

    train = load_script("train")
    args = argparse.Namespace(lr_scheduler="cosine", min_learning_rate=1e-6)
    total, saved_at = 1000, 400

    def optimizer():
        return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)

    def lr(scheduler) -> float:
        return scheduler.optimizer.param_groups[0]["lr"]

    def step(scheduler) -> None:
        scheduler.optimizer.step()
        scheduler.step()

    old = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer(), T_max=total, eta_min=1e-6)
    new = train.build_lr_scheduler(args, optimizer(), total)
    old_lrs, new_lrs = [], []
    for index in range(total + 1):
        if index == saved_at:
            saved, legacy = copy.deepcopy(train.SchedulerCheckpoint(new).state_dict()), copy.deepcopy(old.state_dict())
        old_lrs.append(lr(old))
        new_lrs.append(lr(new))
        step(old)
        step(new)
    assert new_lrs[0] == 2e-4 and new_lrs[-1] == pytest.approx(1e-6, rel=1e-9)
    assert all(abs(b - a) <= 1e-9 * a for a, b in zip(old_lrs, new_lrs))
    for state in (saved, legacy):
        resumed = train.build_lr_scheduler(args, optimizer(), total)
        train.SchedulerCheckpoint(resumed).load_state_dict(state)
        assert resumed.get_last_lr()[0] == pytest.approx(new_lrs[saved_at], rel=1e-9)
        for index in range(saved_at + 1, total + 1):
            step(resumed)
            assert lr(resumed) == pytest.approx(new_lrs[index], rel=1e-9)


def test_validation_epochs_validates_every_nth_and_the_last_epoch_and_packages(dataset_dir, tmp_path):
    """--validation_epochs 2 over 3 epochs validates epochs 2 and 3 only; each epoch records its time split; the run packages
    into a Hub folder whose card carries the validation and the test figures."""
    out = tmp_path / "run"
    result = run(["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "3", "--validation_epochs", "2", "--output_dir", str(out),
                  "--report_to", "none"], launcher=[sys.executable])
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    validated = [h["epoch"] for h in state["history"] if h["val_psnr"] is not None]
    assert validated == [2, 3]
    assert state["best_epoch"] in (2, 3)
    for record in state["history"]:
        assert record["train_seconds"] > 0 and record["checkpoint_seconds"] >= 0 and record["validation_seconds"] >= 0
        assert record["val_psnr_gt_mean"] is None or record["val_psnr_gt_mean"] > 0
    training = json.loads((out / "model" / "training_args.json").read_text())
    assert training["args"]["validation_epochs"] == 2 and "train/train.py" in training["command"] and training["commit"]

    evaluation = tmp_path / "eval"
    evaluate = subprocess.run([sys.executable, str(REPO / "train" / "evaluate.py"), "--dataset", str(dataset_dir), "--model",
                               f"tiny={out / 'model'}", "--baselines", "input", "--output", str(evaluation)],
                              capture_output=True, text=True, cwd=REPO)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    shipped = tmp_path / "shipped"
    package = subprocess.run([sys.executable, str(REPO / "train" / "package_model.py"), "--run", str(out), "--evaluation",
                              str(evaluation / "results.json"), "--output", str(shipped), "--name", "mirnet-tiny"],
                             capture_output=True, text=True, cwd=REPO)
    assert package.returncode == 0, package.stderr[-3000:]
    test = json.loads((evaluation / "results.json").read_text())["methods"]["tiny"]["mean"]
    card = (shipped / "README.md").read_text()
    assert "model-index" in card and f"{test['psnr']:.2f}" in card and f"{test['psnr_gt_mean']:.2f}" in card
    assert "name: mirnet-tiny" in card and training["commit"].removesuffix("-dirty") in card  # named on a dirty tree too
    for name in ("model.safetensors", "config.json", "pipeline_mirnet.py", "curves.png", "test_results.json"):
        assert (shipped / name).is_file(), name
    config = json.loads((shipped / "config.json").read_text())
    assert "custom_pipelines" in config and "AutoModel" in config["auto_map"]

    # the packaged folder written again in place with other test figures: same weights and records, new card
    weights = (shipped / "model.safetensors").read_bytes()
    results = json.loads((evaluation / "results.json").read_text())
    results["methods"]["tiny"]["mean"]["psnr"] = 12.3456
    (evaluation / "rescored.json").write_text(json.dumps(results))
    again = subprocess.run([sys.executable, str(REPO / "train" / "package_model.py"), "--run", str(shipped), "--evaluation",
                            str(evaluation / "rescored.json"), "--output", str(shipped), "--name", "mirnet-tiny"],
                           capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    assert load_file(shipped / "model.safetensors").keys() and (shipped / "model.safetensors").read_bytes() == weights
    card = (shipped / "README.md").read_text()
    assert "12.35" in card and training["commit"].removesuffix("-dirty") in card
    assert json.loads((shipped / "trainer_state.json").read_text()) == state


def test_training_reduces_loss_and_checkpoints_are_pruned(dataset_dir, tmp_path):
    out = tmp_path / "run"
    result = run(["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "3", "--learning_rate", "3e-3", "--output_dir", str(out),
                  "--checkpoints_total_limit", "1", "--report_to", "none"], launcher=[sys.executable])
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((out / "trainer_state.json").read_text())["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["epoch_0003"]


def test_config_file_and_override(dataset_dir, tmp_path, capsys):
    train = load_script("train")

    config = REPO / "train" / "configs" / "lol_09_channels_32.yaml"
    args = train.parse_args(["--config", str(config), "--dataset", str(dataset_dir), "--num_train_epochs", "3"])
    assert (args.num_features, args.num_train_epochs, args.learning_rate, args.loss_type) == (32, 3, 1e-4, "charbonnier")
    assert args.experiment == "lol_09_channels_32"

    bad = tmp_path / "bad.yaml"
    for text, message in (("epochz: 3\n", "unknown key(s) epochz"), ("num_train_epochs: [3\n", "cannot be parsed"), ("- 3\n", "expected a mapping")):
        bad.write_text(text)
        with pytest.raises(SystemExit):
            train.parse_args(["--config", str(bad), "--dataset", str(dataset_dir)])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--config", str(tmp_path / "missing.yaml")])
    assert "missing.yaml: no such file" in capsys.readouterr().err
    for old in ("--resume", "--batch_size", "--flip", "--eval_every", "--num_workers"):  # no aliases, no abbreviations
        with pytest.raises(SystemExit):
            train.parse_args(["--dataset", str(dataset_dir), old, "1"])
        assert f"unrecognized arguments: {old}" in capsys.readouterr().err


def test_every_config_file_parses():
    """Every config under train/configs/ (the study's, the exposure recipes, the shipped ones, the CPU budget study)
    uses train.py's flag names."""
    train = load_script("train")
    configs = sorted((REPO / "train" / "configs").rglob("*.yaml"))
    assert len(configs) > 30
    for path in configs:
        args = train.parse_args(["--config", str(path)])
        assert args.num_train_epochs >= 1 and args.train_batch_size >= 1, path.name


# The study's 19 runs (its published table; train/configs/README.md): change from the default recipe, epochs, published max val PSNR
# (max_val=255 convention) and min val loss; None where the study has no figure.
SEED_STUDY = {
    1: ({}, 50, 67.5981, 0.0983), 2: ({}, 70, 67.8371, 0.1016), 3: ({"train_batch_size": 8}, 50, None, None),
    4: ({"crop_size": 256}, 50, None, None), 5: ({"loss_type": "rmse"}, 50, 68.2198, None),
    6: ({"learning_rate": 1e-3}, 50, 65.4208, 0.1269), 7: ({"learning_rate": 1e-5}, 50, 67.083, 0.1049),
    8: ({"num_mrb": 3}, 50, 68.3952, 0.0965), 9: ({"num_features": 32}, 50, 68.1555, 0.0977),
    10: ({"num_features": 96}, 50, 67.8281, 0.1009), 11: ({"num_streams": 4}, 50, 67.8437, 0.099),
    12: ({"num_rrg": 1, "num_mrb": 1}, 50, 67.083, 0.1049), 13: ({}, 70, 66.0102, 0.1217),
    14: ({"learning_rate": 1e-5}, 70, 66.3333, 0.1244), 15: ({"loss_type": "rmse"}, 70, 66.0102, 0.1217),
    16: ({"num_rrg": 4, "num_mrb": 3}, 70, 66.3105, 0.1217), 17: ({"num_rrg": 2}, 70, 66.0889, 0.1217),
    18: ({"num_rrg": 4}, 70, 66.5826, 0.1262), 19: ({"num_features": 32}, 70, 66.3105, 0.1223),
}
DEFAULT_RECIPE = {"loss_type": "charbonnier", "learning_rate": 1e-4, "train_batch_size": 4, "crop_size": 128, "num_rrg": 3, "num_mrb": 2,
                  "num_features": 64, "num_streams": 3, "num_dau_columns": 2}


def test_all_nineteen_configs_parse():
    """The study's 19 runs: LoL 1-12 (50 epochs, run 2: 70) and SICE 13-19 (70), each a valid train.py config
    that changes the default recipe exactly as the study did and records its published figures."""
    import yaml

    train = load_script("train")

    configs = sorted((REPO / "train" / "configs").glob("*.yaml"))
    notes = {}
    for path in configs:
        args = train.parse_args(["--config", str(path)])
        meta = yaml.safe_load(path.read_text())["meta"]
        number = meta["number"]
        assert number not in notes, f"{path.name}: number {number} used twice"
        notes[number] = meta.get("note") or ""
        changed, epochs, psnr, loss = SEED_STUDY[number]
        lol = number <= 12
        assert path.name.startswith(f"{'lol' if lol else 'sice'}_{number:02d}_"), path.name
        assert (args.dataset, meta["dataset"]) == (("data/lol", "LoL") if lol else ("data/sice", "SICE"))
        assert args.experiment == path.stem and args.output_dir == f"runs/{path.stem}"
        assert args.num_train_epochs == epochs, path.name
        assert {k: getattr(args, k) for k in DEFAULT_RECIPE} == {**DEFAULT_RECIPE, **changed}, path.name
        assert {k: v for k, v in meta["changed"].items() if k != "num_train_epochs"} == changed, path.name
        assert meta["seed_reported_val_psnr"] == psnr and meta["seed_reported_min_val_loss"] == loss, path.name
    assert sorted(notes) == list(range(1, 20))
    assert all("crashed" in notes[n] and "out of memory" in notes[n] for n in (3, 4))
    assert "diverged" in notes[6] and all("copy slip" in notes[n] for n in (12, 15, 16, 17))


def test_sweep_table_shows_published_true_and_ours(tmp_path):
    """--table_only on fake run folders: published figure, published - 48.13 dB and ours side by side; epochs that
    were not validated (--validation_epochs) are skipped; minutes = train + validation seconds, else the last `seconds`."""
    sweep = load_script("sweep")

    root = tmp_path / "runs"
    history = [
        {"epoch": 1, "val_loss": 0.12, "val_psnr": 18.0, "val_ssim": 0.6, "seconds": 95.0, "train_seconds": 60.0, "validation_seconds": 30.0},
        {"epoch": 2, "val_loss": None, "val_psnr": None, "val_ssim": None, "seconds": 160.0, "train_seconds": 60.0, "validation_seconds": 0.0},
        {"epoch": 3, "val_loss": 0.09, "val_psnr": 19.25, "val_ssim": 0.7, "seconds": 260.0, "train_seconds": 60.0, "validation_seconds": 30.0},
    ]
    old_history = [{"epoch": 1, "val_loss": 0.2, "val_psnr": 15.5, "val_ssim": 0.5, "seconds": 600.0}]
    configs = []
    for name, meta, runs in (
        ("exp_a", "  number: 1\n  changed: {}\n  seed_reported_val_psnr: 67.5981\n  seed_reported_min_val_loss: 0.0983\n"
                  "  note: \"copy slip? same as run 7\"\n", history),
        ("exp_b", "  number: 3\n  changed: {train_batch_size: 8}\n  seed_reported_val_psnr: null\n  seed_reported_min_val_loss: null\n"
                  "  note: \"crashed (out of memory)\"\n", old_history),
    ):
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"meta:\n{meta}experiment: {name}\ndataset: data/lol\nnum_train_epochs: {len(runs)}\n")
        (root / name).mkdir(parents=True)
        (root / name / "trainer_state.json").write_text(json.dumps({"epoch": len(runs), "history": runs}))
        configs.append(str(path))
    assert sweep.main([*configs, "--table_only", "--output_root", str(root)]) == 0

    rows = json.loads((root / "sweep_results.json").read_text())
    assert rows[0]["seed_true_val_psnr"] == pytest.approx(67.5981 - 48.1308, abs=1e-3)
    assert (rows[0]["max_val_psnr"], rows[0]["best_epoch"], rows[0]["min_val_loss"], rows[0]["epochs_done"]) == (19.25, 3, 0.09, 3)
    assert rows[0]["train_minutes"] == pytest.approx(4.0) and rows[1]["train_minutes"] == pytest.approx(10.0)
    table = (root / "sweep_results.md").read_text()
    assert "published (+48.13)" in table and "published - 48.13 (true)" in table and "ours (true" in table
    assert "| 1 | exp_a | (baseline) | 3/3 | 0.0983 | 0.09000 | 67.5981 | 19.47 | 19.25 | 3 | 0.7000 | 4.0 | copy slip? same as run 7 |" in table
    assert "| 3 | exp_b | train_batch_size=8 | 1/1 | n/a | 0.20000 | n/a | n/a | 15.50 | 1 | 0.5000 | 10.0 | crashed (out of memory) |" in table


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "/no/such/folder"], "no such dataset folder"),
        (["--validation_split", "dev"], "no split 'dev'"),
        (["--crop_size", "64"], "smaller than --crop_size 64"),
        (["--init_from", "/no/such/model"], "no such model folder"),
        (["--train_split", "train+dev"], "no split 'dev'"),
        (["--validation_split", "none"], "--lr_scheduler plateau steps on validation PSNR"),
        (["--crop_size", "17"], "--crop_size 17 must be a multiple of 2 for a model of 2 streams"),  # config.size_divisor
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be positive"),
        (["--epochs", "1"], "unrecognized arguments: --epochs"),  # the flags before the diffusers names are gone
    ],
)
def test_bad_input_is_reported(dataset_dir, tmp_path, extra, message):
    args = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "1", "--output_dir", str(tmp_path / "r"), "--report_to", "none", *extra]
    result = run(args, launcher=[sys.executable])
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_final_fit_trains_on_both_splits_and_exports_the_last_epoch(dataset_dir, tmp_path):
    """--train_split train+validation --validation_split none (the final fit): all 6 pairs train, nothing is
    validated, and model/ holds the last epoch's weights with a card that says they were not selected."""
    out = tmp_path / "fit"
    result = run(["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "2", "--lr_scheduler", "cosine",
                  "--train_split", "train+validation", "--validation_split", "none", "--output_dir", str(out),
                  "--report_to", "none"], launcher=[sys.executable])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "decoded 6 training and 0 validation pairs" in result.stderr
    assert "no validation split: the last epoch (2)" in result.stderr
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_epoch"] == 2 and all(h["val_psnr"] is None for h in state["history"])
    exported = load_file(out / "model" / "model.safetensors")
    last = load_file(out / "checkpoints" / "epoch_0002" / "model.safetensors")  # no EMA: the trained weights
    assert exported.keys() == last.keys() and all(torch.equal(exported[k], last[k]) for k in last)
    card = (out / "model" / "README.md").read_text()
    assert "Epoch 2 of 2: the last one, not validated" in card and "`train+validation`" in card


def test_sweep_runs_configs_and_writes_table(dataset_dir, tmp_path):
    configs = []
    for n, features in ((1, 8), (2, 16)):
        path = tmp_path / f"exp_{n}.yaml"
        path.write_text(
            f"meta:\n  number: {n}\n  changed: {{num_features: {features}}}\n  seed_reported_val_psnr: {66.0 + n}\n"
            f"experiment: exp_{n}\ndataset: {dataset_dir}\nnum_rrg: 1\nnum_mrb: 1\nnum_features: {features}\nnum_streams: 2\n"
            "num_dau_columns: 1\ncrop_size: 16\ntrain_batch_size: 2\nnum_train_epochs: 1\nreport_to: none\n"
        )
        configs.append(str(path))
    out = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / "train" / "sweep.py"), *configs, "--launcher", sys.executable,
                             "--output_root", str(out)], capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((out / "sweep_results.json").read_text())
    assert [r["experiment"] for r in rows] == ["exp_1", "exp_2"]
    for row in rows:
        history = json.loads((out / row["experiment"] / "trainer_state.json").read_text())["history"]
        assert row["max_val_psnr"] == max(h["val_psnr"] for h in history)
        assert row["min_val_loss"] == min(h["val_loss"] for h in history)
    assert rows[0]["seed_true_val_psnr"] == pytest.approx(67.0 - 48.1308, abs=1e-3)
    table = (out / "sweep_results.md").read_text()
    assert "| 2 | exp_2 | num_features=16 | 1/1 |" in table and "18.87" in table


def test_init_from_refuses_model_flags_that_contradict_the_model(dataset_dir, tiny_model_dir, tmp_path):
    """--init_from takes the architecture from the model: a model flag that says otherwise is an error, not ignored."""
    common = ["--dataset", str(dataset_dir), "--init_from", str(tiny_model_dir), "--crop_size", "16", "--train_batch_size", "2",
              "--num_train_epochs", "1", "--output_dir", str(tmp_path / "r"), "--report_to", "none"]
    result = run([*common, "--num_features", "16"], launcher=[sys.executable])
    assert result.returncode == 2 and "--num_features 16 (the model has 8)" in result.stderr
    assert "Traceback" not in result.stderr
    result = run([*common, "--num_features", "8"], launcher=[sys.executable])  # agreeing flags are fine
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_train_and_resume(dataset_dir, tmp_path):
    """Two CPU processes (gloo): the run trains, stops for --stop_after_epoch on both ranks, resumes, and validates
    every pair exactly once (the validation pairs are split between the ranks, not duplicated)."""
    # accelerate's multi-process launcher (torchrun); ACCELERATE_USE_CPU keeps both ranks on the CPU (gloo backend)
    two = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533"]
    common = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "2", "--output_dir", str(tmp_path / "ddp"), "--report_to", "none"]
    first = run([*common, "--stop_after_epoch", "1"], launcher=two, ACCELERATE_USE_CPU="true")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "on 2 process(es)" in first.stderr  # really two ranks, not one
    second = run([*common, "--resume_from_checkpoint", "latest"], launcher=two, ACCELERATE_USE_CPU="true")
    assert second.returncode == 0, second.stderr[-3000:]
    state = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2] and "resumed from" in second.stderr
    # the validation mean over two ranks equals a single-process evaluation of the same weights
    from modeling_mirnet.evaluation import decode_pairs, score_pairs
    from modeling_mirnet.inference import load_mirnet

    model, _ = load_mirnet(tmp_path / "ddp" / "model")
    pairs = decode_pairs(data_utils.load_pairs(dataset_dir, "validation"), limit=2)
    best = state["history"][state["best_epoch"] - 1]
    assert best["val_psnr"] == pytest.approx(float(np.mean(score_pairs(model, pairs, margin=0)["psnr"])), abs=1e-3)


def test_sweep_table_of_a_budget_study_stops_at_the_budget_epoch(tmp_path):
    """A config whose meta has `budget_epochs` is tabulated as its run stood then, even after the run went on."""
    sweep = load_script("sweep")
    root = tmp_path / "runs"
    history = [{"epoch": e, "val_psnr": p, "val_ssim": 0.7, "val_loss": l, "train_seconds": 60.0, "validation_seconds": 30.0}
               for e, p, l in ((1, 15.0, 0.2), (2, 18.0, 0.12), (3, 21.0, 0.08))]
    (root / "study").mkdir(parents=True)
    (root / "study" / "trainer_state.json").write_text(json.dumps({"epoch": 3, "history": history}))
    config = tmp_path / "study.yaml"
    config.write_text("meta:\n  budget_epochs: 2\nexperiment: study\ndataset: data/lol\nnum_train_epochs: 30\n")
    assert sweep.main([str(config), "--table_only", "--output_root", str(root)]) == 0
    row = json.loads((root / "sweep_results.json").read_text())[0]
    assert (row["max_val_psnr"], row["best_epoch"], row["epochs_done"], row["budget_epochs"]) == (18.0, 2, 2, 2)
    assert row["train_minutes"] == pytest.approx(3.0)


def test_ema_warmup_ramps_the_decay_up():
    """--ema_warmup: after n updates the average moves towards the weights by 1 - min(decay, (1 + n) / (10 + n)), so the
    first weights fade within tens of steps instead of thousands; without it torch's constant-decay EMA is kept."""
    import argparse

    train = load_script("train")
    model = torch.nn.Linear(3, 2)
    ema = train.build_ema(argparse.Namespace(ema_decay=0.99, ema_warmup=True), model)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(40):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update_parameters(model)
        if step == 0:  # the first update copies the weights (torch's AveragedModel)
            expected = [p.detach().clone() for p in model.parameters()]
        else:
            weight = 1 - min(0.99, (1 + step) / (10 + step))
            expected = [e + weight * (p.detach() - e) for e, p in zip(expected, model.parameters())]
    for e, p in zip(expected, ema.module.parameters()):
        torch.testing.assert_close(p, e)
    plain = train.build_ema(argparse.Namespace(ema_decay=0.99, ema_warmup=False), model)
    plain.update_parameters(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    plain.update_parameters(model)
    torch.testing.assert_close(plain.module.weight, model.weight - 0.99)  # constant decay from the first update on


def test_ema_weights_are_validated_exported_and_resumed(dataset_dir, tmp_path):
    """--ema_decay: the exported model holds the moving average (not the last training weights), the average is part
    of the checkpoint (a resumed run ends bit-identical to a straight one), and resuming with another decay is refused."""
    common = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "2", "--learning_rate", "3e-3", "--ema_decay", "0.9",
              "--report_to", "none"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    result = run([*common, "--output_dir", str(straight)], launcher=[sys.executable])
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((straight / "trainer_state.json").read_text())
    assert state["ema_decay"] == 0.9 and state["best_epoch"] in (1, 2)
    assert all(h["first_step_seconds"] > 0 for h in state["history"])
    trained = load_file(straight / "checkpoints" / f"epoch_{state['best_epoch']:04d}" / "model.safetensors")
    exported = load_file(straight / "model" / "model.safetensors")
    assert trained.keys() == exported.keys()
    assert any(not torch.equal(trained[k], exported[k]) for k in trained)  # the average, not the last step's weights

    first = run([*common, "--output_dir", str(interrupted), "--stop_after_epoch", "1"], launcher=[sys.executable])
    assert first.returncode == 0, first.stderr[-3000:]
    other = run([*common[:-4], "--ema_decay", "0.5", "--report_to", "none", "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"],
                launcher=[sys.executable])
    assert other.returncode == 2 and "that run used --ema_decay 0.9" in other.stderr and "Traceback" not in other.stderr
    warm = run([*common, "--ema_warmup", "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"], launcher=[sys.executable])
    assert warm.returncode == 2 and "(warmup: False), this one 0.9 (warmup: True)" in warm.stderr
    second = run([*common, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"], launcher=[sys.executable])
    assert second.returncode == 0, second.stderr[-3000:]
    history = lambda folder: [{k: v for k, v in h.items() if not k.endswith("seconds")}  # noqa: E731
                              for h in json.loads((folder / "trainer_state.json").read_text())["history"]]
    assert history(interrupted) == history(straight)
    a, b = load_file(interrupted / "model" / "model.safetensors"), load_file(straight / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_compiled_training_step_through_the_launcher(dataset_dir, tmp_path):
    """`accelerate launch --dynamo_backend ...` compiles the training step; validation and the export use the plain
    module (whole images of other shapes), and the exported folder loads. (aot_eager: dynamo and AOTAutograd as with
    inductor, without the C++ compile, to keep the test short.)"""
    launcher = [*LAUNCH[:-2], "--dynamo_backend", "aot_eager"]
    out = tmp_path / "run"
    result = run(["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "1", "--output_dir", str(out), "--report_to", "none"],
                 launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["history"][0]["val_psnr"] is not None and state["history"][0]["first_step_seconds"] > 0
    from modeling_mirnet.inference import load_mirnet

    model, _ = load_mirnet(out / "model")
    assert not any(key.startswith("_orig_mod") for key in model.state_dict())


def test_packaging_a_staged_run_keeps_the_earlier_stages_records(tmp_path):
    """A run started with --init_from from a packaged model: its package keeps that model's records (and the ones
    it kept itself) as earlier_stages/1, 2, ... and the card names each stage's command and best validation PSNR."""
    from modeling_mirnet.model_card import earlier_stages_note

    package = load_script("package_model")
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "earlier_stages" / "1").mkdir(parents=True)
    for folder, command, psnr in ((first / "earlier_stages" / "1", "train.py --stage one", 18.5), (first, "train.py --stage two", 20.05)):
        (folder / "training_args.json").write_text(json.dumps({"args": {}, "command": command, "commit": "abc"}))
        (folder / "trainer_state.json").write_text(json.dumps({"epoch": 4, "best_epoch": 3, "best_val_psnr": psnr, "history": []}))
    package.copy_earlier_stages({"args": {"init_from": str(first)}}, second)
    assert sorted(p.name for p in (second / "earlier_stages").iterdir()) == ["1", "2"]
    note = earlier_stages_note(second)
    assert "stage 1: `train.py --stage one`" in note and "18.50 dB" in note
    assert "stage 2: `train.py --stage two`" in note and "20.05 dB at epoch 3" in note
    package.copy_earlier_stages({"args": {"init_from": None}}, tmp_path / "third")
    assert not (tmp_path / "third").exists() and earlier_stages_note(tmp_path / "third") == ""


def test_training_samples_whole_photos_well_lit_pairs_and_exposure_jitter():
    """RandomPairCrops: whole photos cut to the size divisor; a well-lit share of reference-as-input items (no
    jitter); the others carry a jitter within +-exposure_jitter stops; a crop of the pair otherwise."""
    train = load_script("train")
    from modeling_mirnet.evaluation import ImagePairs

    g = torch.Generator().manual_seed(0)
    lows = [torch.randint(0, 60, (3, 38, 42), dtype=torch.uint8, generator=g) for _ in range(3)]
    highs = [torch.randint(60, 256, (3, 38, 42), dtype=torch.uint8, generator=g) for _ in range(3)]
    pairs = ImagePairs(lows, highs, ["a", "b", "c"])
    torch.manual_seed(0)
    whole = train.RandomPairCrops(pairs, None, flip=False, size_divisor=4)[1]
    assert torch.equal(whole["pixel_values"], lows[1][:, :36, :40]) and torch.equal(whole["labels"], highs[1][:, :36, :40])

    mixed = train.RandomPairCrops(pairs, 16, flip=True, well_lit_share=0.3, exposure_jitter=1.5)
    items = [mixed[i % 3] for i in range(400)]
    identity = [torch.equal(item["pixel_values"], item["labels"]) for item in items]
    assert 0.2 < np.mean(identity) < 0.4 and [item["well_lit"] for item in items] == identity
    for item, same in zip(items, identity):
        assert item["pixel_values"].shape == (3, 16, 16)
        if same:
            assert item["exposure_stops"] == 0  # a well-lit pair is kept as it is
        else:
            assert int(item["pixel_values"].max()) < 60 <= int(item["labels"].min())  # a crop of the dark input
            assert -1.5 <= float(item["exposure_stops"]) <= 1.5
    stops = [float(item["exposure_stops"]) for item, same in zip(items, identity) if not same]
    assert min(stops) < -1 and max(stops) > 1

    plain = train.RandomPairCrops(pairs, 16, flip=False)
    assert all(not torch.equal(plain[0]["pixel_values"], plain[0]["labels"]) and plain[0]["exposure_stops"] == 0 for _ in range(20))


def test_well_lit_pairs_can_have_their_own_loss():
    """pair_loss: --loss_type on the dark pairs, --well_lit_loss_type on the well-lit ones, weighted by their counts;
    with one type for both it is that loss over the whole batch."""
    from types import SimpleNamespace

    from modeling_mirnet import enhancement_loss

    train = load_script("train")
    torch.manual_seed(0)
    prediction, labels = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    well_lit = torch.tensor([True, False, False, False])
    mixed = train.pair_loss(prediction, labels, well_lit, SimpleNamespace(loss_type="gt_mean", well_lit_loss_type="l1"), 1e-3)
    expected = (3 * enhancement_loss(prediction[1:], labels[1:], "gt_mean") + enhancement_loss(prediction[:1], labels[:1], "l1")) / 4
    assert mixed.item() == pytest.approx(expected.item(), rel=1e-6)
    same = train.pair_loss(prediction, labels, well_lit, SimpleNamespace(loss_type="l1", well_lit_loss_type="l1"), 1e-3)
    assert same.item() == pytest.approx(enhancement_loss(prediction, labels, "l1").item(), rel=1e-6)


def test_whole_photo_training_with_well_lit_pairs_jitter_and_gt_mean_resumes_exactly(dataset_dir, tmp_path):
    """The exposure recipe end to end (whole photos, well-lit share, jitter, GT-mean loss): interrupted and resumed
    equals uninterrupted, bit for bit (every random draw comes from the checkpointed RNG)."""
    common = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--whole_images", "--well_lit_share", "0.5", "--exposure_jitter", "1",
              "--loss_type", "gt_mean", "--well_lit_loss_type", "charbonnier", "--checkerboard_free", "--num_train_epochs", "2", "--lr_scheduler", "cosine", "--random_flip", "--report_to", "none"]
    a, b, straight = train_interrupted_and_straight(common, tmp_path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    transposed = [k for k in a if (".up." in k or ".last_up." in k) and k.endswith("top.2.weight")]  # up-samplers stay projected
    assert transposed and all(torch.allclose(checkerboard_free(a[k]), a[k], atol=1e-6) for k in transposed)
    config = json.loads((straight / "model" / "config.json").read_text())
    assert config["loss_type"] == "gt_mean"
    record = json.loads((straight / "model" / "training_args.json").read_text())["args"]
    assert record["whole_images"] is True and record["well_lit_share"] == 0.5 and record["exposure_jitter"] == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--well_lit_share", "1"], "--well_lit_share must be in [0, 1)"),
        (["--exposure_jitter", "-0.5"], "--exposure_jitter is a number of stops"),
        (["--loss_type", "ssim"], "invalid choice: 'ssim'"),
    ],
)
def test_bad_exposure_flags_are_refused(dataset_dir, tmp_path, extra, message):
    result = run(["--dataset", str(dataset_dir), *TINY_FLAGS, "--output_dir", str(tmp_path / "r"), *extra], launcher=[sys.executable])
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_export_checkpoint_writes_the_weights_validation_scored(dataset_dir, tmp_path):
    """train/export_checkpoint.py on the last (and best) epoch of a 1-epoch EMA run gives exactly the exported model/;
    `--weights model` gives the trained weights of the checkpoint instead."""
    out = tmp_path / "run"
    result = run(["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "1", "--ema_decay", "0.9", "--output_dir", str(out),
                  "--report_to", "none"])
    assert result.returncode == 0, result.stderr[-3000:]
    export = [sys.executable, str(REPO / "train" / "export_checkpoint.py"), "--checkpoint", str(out / "checkpoints" / "epoch_0001")]
    for weights, reference in (("auto", out / "model" / "model.safetensors"), ("model", out / "checkpoints" / "epoch_0001" / "model.safetensors")):
        done = subprocess.run([*export, "--output", str(tmp_path / weights), "--weights", weights], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr[-2000:]
        a, b = load_file(tmp_path / weights / "model.safetensors"), load_file(reference)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ema, trained = load_file(tmp_path / "auto" / "model.safetensors"), load_file(tmp_path / "model" / "model.safetensors")
    assert any(not torch.equal(ema[k], trained[k]) for k in ema)  # the two really differ
    missing = subprocess.run([*export[:2], "--checkpoint", str(tmp_path / "nowhere"), "--output", str(tmp_path / "x")],
                             capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and "not a train.py epoch checkpoint" in missing.stderr


def test_export_checkpoint_outside_its_run_folder_takes_config(dataset_dir, tmp_path):
    """A checkpoint copied out of its run (a committed resume state) exports with --config, and only with the config
    of its own architecture: without one, or with another architecture's, a clear error, no traceback."""
    out = tmp_path / "run"
    result = run(["--dataset", str(dataset_dir), *TINY_FLAGS, "--num_train_epochs", "1", "--output_dir", str(out), "--report_to", "none"])
    assert result.returncode == 0, result.stderr[-3000:]
    moved = tmp_path / "resume" / "epoch_0001"
    shutil.copytree(out / "checkpoints" / "epoch_0001", moved)
    export = [sys.executable, str(REPO / "train" / "export_checkpoint.py"), "--checkpoint", str(moved)]
    done = subprocess.run([*export, "--output", str(tmp_path / "x")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and "--config" in done.stderr and "Traceback" not in done.stderr
    other = tmp_path / "other.json"
    config = json.loads((out / "model" / "config.json").read_text())
    other.write_text(json.dumps({**config, "num_features": config["num_features"] * 2}))
    done = subprocess.run([*export, "--output", str(tmp_path / "x"), "--config", str(other)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and "do not fit" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([*export, "--output", str(tmp_path / "x"), "--config", str(out / "model" / "config.json")],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = load_file(tmp_path / "x" / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
