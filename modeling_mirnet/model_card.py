"""The model card (README.md of a model folder), rendered from the package's `model_card.md` template (the
repository's top-level `model_card.md` links to it), so installed copies of the package write cards too.

One function serves train.py (the card of `output_dir/model`, validation figures) and package_model.py (the card of a
shipped folder, with the test figures of `train/evaluate.py` added to its `model-index`).
"""

import json
import shlex
import subprocess
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard_data import EvalResult

from .metrics import study_convention

TEMPLATE = Path(__file__).resolve().parent / "model_card.md"
REPO_ROOT = Path(__file__).resolve().parent.parent
# train.py flags that say where a run reads and writes, not how it trains: left out of the card's hyperparameters.
# `resume` is `resume_from_checkpoint` in the training_args.json of runs from before train.py took the diffusers
# examples' flag names; the cards read those records as written (their other keys keep the old names too).
NOT_HYPERPARAMETERS = ("config", "resume_from_checkpoint", "resume", "push_to_hub", "report_to", "output_dir", "dataset")
# What a Hub visitor can follow for the datasets the project prepares (train/prepare_dataset.py), by the name their
# folder or repository carries: (short id for the model-index, name, what it is, where to get it).
KNOWN_DATASETS = {
    "eval15": ("lol", "LOL eval15", "LOL's 15 test pairs", "https://daooshee.github.io/BMVC2018website/"),
    "lol": ("lol", "LOL", "Wei et al., BMVC 2018: dark and well-lit 600x400 indoor photos",
            "https://daooshee.github.io/BMVC2018website/"),
    "sice": ("sice", "SICE", "Cai et al., 2018: photos at several exposures", "https://github.com/csjcai/SICE"),
}
# The first limitation the card names, by the dataset the model was trained on.
KNOWN_LIMITS = {
    "lol": "Trained on LOL's 600x400 indoor photos only: photos from other cameras, outdoor night "
           "scenes, strong noise or colour casts may not be restored well.",
    "sice": "Trained on SICE's multi-exposure photos, downscaled: photos unlike them may not be restored well.",
}
# The MIRNet paper's model on LOL eval15 (Zamir et al., ECCV 2020, Table 7): the yardstick of a LOL-trained model.
PAPER = "the MIRNet paper's model (64 channels, 3 RRG x 2 MRB, 31.8M parameters, GPU training) reports 24.14 dB PSNR / 0.830 SSIM"
# benchmarks/well_lit.py's goals for a photo that needs nothing (the README's do-no-harm table).
WELL_LIT_GOALS = {"median_psnr": 28.0, "ratio": (0.9, 1.15), "grid_added": 1.5}


def dataset_info(dataset: str) -> tuple[str, str, str, str | None]:
    """(short id, name, what it is, link) of a `--dataset` value: a project dataset by its folder's or repository's
    name, any other Hub id by itself (linked to its Hub page), any other local folder by its name, with no link."""
    last = Path(str(dataset)).name.lower()
    for key, info in KNOWN_DATASETS.items():
        if key in last:
            return info
    if "/" in str(dataset) and not Path(str(dataset)).exists() and str(dataset).count("/") == 1:
        return str(dataset), str(dataset), "a Hub dataset", f"https://huggingface.co/datasets/{dataset}"
    return last, last, "a local dataset folder", None


def dataset_text(dataset: str) -> str:
    """The dataset as the card's prose names it: its name, linked where there is somewhere to go, and what it is."""
    _, name, blurb, link = dataset_info(dataset)
    return f"[{name}]({link}) ({blurb})" if link else f"{name} ({blurb})"


def commands_note(dataset: str) -> str:
    """For a model trained on a local folder: what that folder is, since the card's commands name it."""
    if dataset_info(dataset)[3] and "huggingface.co" in dataset_info(dataset)[3]:
        return ""
    return (f"The commands run in a clone of the project; `{dataset}` there is {dataset_text(dataset)}, prepared with "
            "the project's `train/prepare_dataset.py`.")


def commit_text(commit: str) -> str:
    """A recorded commit for the card: a '-dirty' one is named as the commit plus uncommitted changes."""
    if commit.endswith("-dirty"):
        return (f"commit `{commit.removesuffix('-dirty')}` of the project, with changes not yet committed at the time "
                "(that commit alone may not reproduce it exactly)")
    return f"commit `{commit}` of the project"


def parameter_count(folder) -> int | None:
    """Parameters in folder/model.safetensors (None when the weights are not there)."""
    weights = Path(folder) / "model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            count = 1
            for size in f.get_slice(key).get_shape():
                count *= size
            total += count
    return total


def only_this_model(command: str, label: str | None) -> str:
    """A benchmark command cut to what reproduces this model's figures: its own `--model label=...`, without the
    other models it was compared with or the `--json` report path. Unchanged without a label."""
    if not label:
        return command
    words, kept, i = shlex.split(command), [], 0
    while i < len(words):
        if words[i] == "--model" and i + 1 < len(words):
            if words[i + 1].split("=", 1)[0] == label:
                kept += words[i:i + 2]
            i += 2
        elif words[i] == "--json" and i + 1 < len(words):
            i += 2
        else:
            kept.append(words[i])
            i += 1
    return shlex.join(kept)


def is_final_fit(args: dict) -> bool:
    """A run that validated nothing (`train.py --validation_split none`): every pair of its dataset trained it, so its
    figures on the validation pairs are of photos it has seen."""
    return args.get("validation_split") == "none"


def purpose_section(dataset: str, config: dict, params: int | None, trained_on: str | None, test: dict | None,
                    well_lit: dict | None, exposure: dict | None = None, held_out: dict | None = None) -> str:
    """What the model is for and what it is not, in prose, from this model's own figures; for a final fit, how well
    its exposure is guessed on unseen scenes comes from `held_out`, its recipe's validated run (`exposure_section`)."""
    short = dataset_info(dataset)[0]
    size = f"{params / 1e6:.2f}M parameters: " if params else ""
    shape = (f"{config.get('num_features')} channels, {config.get('num_rrg')} RRG x {config.get('num_mrb')} MRB"
             if config.get("num_features") else "its configuration in config.json")
    where = f", trained on {trained_on}" if trained_on else ""
    text = [f"A small MIRNet ({size}{shape}{where}) for dark photos like those it was trained on, "
            f"{dataset_text(dataset)}: under-exposed scenes it brightens and cleans up."]
    if test is not None:
        test_name = dataset_info(test["dataset"])[1]
        yardstick = f"; on the same photos {PAPER}" if short == "lol" and "lol" in test_name.lower() else ""
        text.append(f"On {test_name} it scores {test['psnr']:.2f} dB PSNR / {test['ssim']:.3f} SSIM{yardstick}. "
                    "Expect a useful brightening, not the paper's quality.")
    if not well_lit:
        text.append("What it does to photos that are already well exposed was not measured for this folder "
                    "(`benchmarks/well_lit.py`).")
    else:
        ratio, low, high = well_lit["median_ratio"], *WELL_LIT_GOALS["ratio"]
        gentle = (well_lit["median_psnr"] >= WELL_LIT_GOALS["median_psnr"] and low <= ratio <= high
                  and well_lit["worst_grid_added"] <= WELL_LIT_GOALS["grid_added"])
        if gentle:
            text.append(f"Photos that are already well exposed come out nearly unchanged (median PSNR against the input "
                        f"{well_lit['median_psnr']:.1f} dB, mean gray x{ratio:.2f}, on {well_lit['count']} well-lit photos).")
        else:
            change = ("brighter" if ratio > high else "darker" if ratio < low else "about as bright")
            grid = (f", and it can draw a faint 4-pixel grid (up to {well_lit['worst_grid_added']:.0f}x the input's)"
                    if well_lit["worst_grid_added"] > WELL_LIT_GOALS["grid_added"] else "")
            text.append(f"**It is not for photos that are already well exposed: it changes them.** Given {well_lit['count']} "
                        f"well-lit photos (the references of the validation split) it returned them {change} (mean gray x{ratio:.2f}) and restyled to its own tone "
                        f"curve (median PSNR against the input {well_lit['median_psnr']:.1f} dB, where a light touch would "
                        f"be {WELL_LIT_GOALS['median_psnr']:.0f} dB or more){grid}. `mirnet-enhance` and the Space say so "
                        "when a photo is already well exposed (mean gray above 90 of 255).")
    if exposure:
        if held_out:
            unseen = (f"its recipe's validated run, on {held_out['count']} validation pairs it never saw, guessed "
                      f"{held_out['head_exposure_rms']:.2f} stops rms against a constant's "
                      f"{held_out['constant_exposure_rms']:.2f} and scored {held_out['psnr_reference_exposure']:.2f} dB "
                      f"at each reference's exposure and {held_out['psnr']:.2f} dB at its own guess")
        else:
            unseen = (f"({exposure['head_exposure_rms']:.2f} stops rms against {exposure['constant_exposure_rms']:.2f}): "
                      f"on the {exposure['count']} validation pairs it scores {exposure['psnr_reference_exposure']:.2f} dB "
                      f"at each reference's exposure and {exposure['psnr']:.2f} dB at its own guess")
        text.append(f"How bright it makes a photo is yours to set (`exposure`, in stops). Its default is a guess, and on "
                    f"scenes it has not seen the guess is no better than one brightness for every photo"
                    f"{': ' if held_out else ' '}{unseen}. Move the exposure to taste; it renders it within "
                    f"{exposure['rendering_rms']:.2f} stops.")
    text.append("It is not a denoiser for strong sensor noise, nor a fix for over-exposed photos.")
    return "\n\n".join(text)


def git_commit() -> str:
    """The repository's HEAD commit, with '-dirty' when tracked files differ from it; 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _result(split_name: str, dataset: str, split: str, metric: str, name: str, value: float) -> EvalResult:
    return EvalResult(task_type="image-to-image", task_name="Low-light image enhancement", dataset_type=dataset,
                      dataset_name=split_name, dataset_split=split, metric_type=metric, metric_name=name,
                      metric_value=round(float(value), 4))


def earlier_stages_note(folder) -> str:
    """For a model trained in stages (`--init_from`): one line per earlier stage whose records sit in
    folder/earlier_stages/N/ (package_model.py copies them there), or "" when there are none."""
    lines = []
    for stage in sorted(Path(folder).glob("earlier_stages/*/training_args.json"), key=lambda p: int(p.parent.name)):
        record = json.loads(stage.read_text())
        history = json.loads((stage.parent / "trainer_state.json").read_text())
        lines.append(f"- stage {stage.parent.name}: `{record.get('command', 'n/a')}` at commit `{record.get('commit', 'unknown')}`, "
                     f"{history['epoch']} epochs, best validation PSNR {history['best_val_psnr']:.2f} dB at epoch "
                     f"{history['best_epoch']} (records: `{stage.parent.relative_to(folder).as_posix()}/`)")
    if not lines:
        return ""
    return "This run started from an earlier model (`init_from`), trained as follows:\n\n" + "\n".join(lines) + "\n"


def well_lit_section(well_lit: dict | None, seen: bool = False) -> str:
    """The do-no-harm table from benchmarks/well_lit.py's figures for this model ({"count", "command", "median_psnr",
    "median_ratio", "worst_grid", "median_grid", "worst_input_grid", "worst_grid_added"}, and "label": the model's
    label in that command, which then shows only this model), or "" without them. `seen`: the model trained on those
    photos (a final fit), which the table then says."""
    if not well_lit:
        return ""
    seen_text = "; this model also trained on them, as well-lit pairs" if seen else ""
    return "\n".join([
        f"Well-lit photos ({well_lit['count']} references of the validation split given as inputs{seen_text}: a photo "
        "that needs nothing should come out as it went in):",
        "",
        "| median PSNR(output, input) | median output / input mean gray | worst 4-pixel grid score (median; inputs' worst) "
        "| worst grid added (output / its input) |",
        "|---:|---:|---:|---:|",
        f"| {well_lit['median_psnr']:.2f} dB | {well_lit['median_ratio']:.3f} | {well_lit['worst_grid']:.2f} "
        f"({well_lit['median_grid']:.2f}; {well_lit['worst_input_grid']:.2f}) | {well_lit['worst_grid_added']:.2f}x |",
        "",
        f"Goals: >= {WELL_LIT_GOALS['median_psnr']:.0f} dB, {WELL_LIT_GOALS['ratio'][0]}-{WELL_LIT_GOALS['ratio'][1]}, "
        f"at most {WELL_LIT_GOALS['grid_added']}x the input's own grid. "
        f"Command: `{only_this_model(well_lit['command'], well_lit.get('label'))}`",
    ])


def exposure_section(model_id: str, exposure: dict | None, training: dict, held_out: dict | None = None) -> str:
    """For an exposure-conditioned model: how to ask for an exposure, benchmarks/exposure.py's figures for it
    ({"count", "command", "label", "psnr", "ssim", "psnr_reference_exposure", "ssim_reference_exposure", "psnr_gt_mean",
    "head_exposure_rms", "constant_exposure_rms", "rendering_rms", "median_black", "median_reference_black"}) and the
    command that trained its head alone (`exposure_head_stage` of training_args.json), or "" for other models. For a
    final fit (trained on the validation pairs too), `held_out` holds the same figures of its recipe's validated run,
    which never saw those pairs."""
    if not training["args"].get("exposure_conditioning"):
        return ""
    lines = [
        "### Exposure is an input",
        "",
        "How bright a dark photo should come out is not something its pixels determine, so this model is told: "
        "`model.enhance(pixel_values, exposure=stops)` renders that exposure (stops over the input, "
        "log2 of the output's mean linear luminance over the input's; 0 keeps its brightness), and without `exposure` "
        "a small head guesses one from a thumbnail (`model.predict_exposure(pixel_values)`). The pipeline, "
        "`mirnet-enhance --exposure` and the Space take it too:",
        "",
        "```python",
        f'enhance = pipeline("image-to-image", model="{model_id}", trust_remote_code=True)',
        'enhance(image)                  # the head\'s exposure',
        'enhance(image, exposure=4.0)    # 4 stops brighter than the input (16x its mean luminance)',
        'enhance(image, brightness=0.5)  # half a stop over the head\'s exposure',
        "```",
    ]
    final_fit = is_final_fit(training["args"])
    if exposure:
        pairs = "scenes not trained on"
        if final_fit:
            pairs = "which this model also trained on, so these figures flatter it"
        if final_fit and held_out:
            source = (f"`{held_out['file']}` in the project" if held_out.get("file")
                      else f"`{only_this_model(held_out['command'], held_out.get('label'))}`")
            pairs += (f"; its recipe's validated run, which never saw them, scored {held_out['psnr']:.2f} dB / "
                      f"{held_out['ssim']:.4f} at its predicted exposure and {held_out['psnr_reference_exposure']:.2f} dB / "
                      f"{held_out['ssim_reference_exposure']:.4f} at the reference's: {source}")
        lines += [
            "",
            f"On the {exposure['count']} validation pairs ({pairs}), with the exposure the head predicts "
            "(what users get) and with each reference's own exposure (the honest counterpart of GT-mean figures, which "
            "rescale the output after the fact):",
            "",
            "| PSNR / SSIM, predicted exposure | PSNR / SSIM, reference exposure | GT-mean PSNR | head's exposure error "
            "(one constant brightness's) | rendering error | 1st-percentile gray (references') |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {exposure['psnr']:.2f} dB / {exposure['ssim']:.4f} | {exposure['psnr_reference_exposure']:.2f} dB / "
            f"{exposure['ssim_reference_exposure']:.4f} | {exposure['psnr_gt_mean']:.2f} dB | {exposure['head_exposure_rms']:.2f} "
            f"({exposure['constant_exposure_rms']:.2f}) stops | {exposure['rendering_rms']:.3f} stops | "
            f"{exposure['median_black']:.1f} ({exposure['median_reference_black']:.1f}) |",
            "",
            "The rendering error is the rms gap between the exposure asked for (each reference's, -1, +0 and +0.5 stops) "
            "and the one the output has. Command: "
            f"`{only_this_model(exposure['command'], exposure.get('label'))}`",
        ]
    head = training.get("exposure_head_stage")
    if head:
        lines += ["", "The head was then trained further, alone, on the finished network (its loss never reaches the "
                  f"network): `{head.get('command', 'n/a')}`."
                  + (" The validation figures of the chosen epoch (above) were taken with the head before that stage; "
                     "this section's are the model's as packaged." if not final_fit else "")]
    return "\n".join(lines)


def write_model_card(folder, training: dict, state: dict, model_id: str, test: dict | None = None,
                     well_lit: dict | None = None, trained_on: str | None = None, exposure: dict | None = None,
                     held_out_exposure: dict | None = None) -> Path:
    """Write folder/README.md. `training`: {"args": {flag: value}, "command": str, "commit": str} (training_args.json);
    `state`: train.py's trainer_state.json; `model_id`: the Hub repository id the card's examples load;
    `test`: mean figures of evaluate.py on the test split (optional); `well_lit`: benchmarks/well_lit.py's figures
    for this model (optional, `well_lit_section`); `trained_on`: the hardware, e.g. "2 CPU cores" (optional);
    `exposure`: benchmarks/exposure.py's figures for an exposure-conditioned model (optional, `exposure_section`);
    `held_out_exposure`: for a final fit (`--validation_split none`), the same figures of its recipe's validated run."""
    args = training["args"]
    best = state["history"][state["best_epoch"] - 1]
    dataset = str(args.get("dataset"))
    dataset_id, dataset_name, _, _ = dataset_info(dataset)
    validation_split = args.get("validation_split", "validation")
    results = [_result(f"{dataset_name} ({validation_split})", dataset_id, validation_split, m, n, best[k])
               for m, n, k in (("psnr", "PSNR", "val_psnr"), ("ssim", "SSIM", "val_ssim"),
                               ("psnr", "PSNR (GT-mean)", "val_psnr_gt_mean")) if best.get(k) is not None]
    test_table = "No test-split evaluation is recorded for this folder."
    if test is not None:
        test_id, test_name, _, _ = dataset_info(test["dataset"])
        results += [_result(f"{test_name} ({test['split']})", test_id, test["split"], m, n, test[k])
                    for m, n, k in (("psnr", "PSNR", "psnr"), ("ssim", "SSIM", "ssim"), ("psnr", "PSNR (GT-mean)", "psnr_gt_mean"))]
        rows = [f"| **{model_id}** | **{test['psnr']:.2f}** | **{test['ssim']:.4f}** | {test['psnr_gt_mean']:.2f} | {study_convention(test['psnr']):.2f} |"]
        rows += [f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['psnr_gt_mean']:.2f} | {study_convention(m['psnr']):.2f} |"
                 for name, m in test.get("baselines", {}).items()]
        test_table = "\n".join([
            f"Test split `{test['split']}` of {dataset_text(test['dataset'])} ({test['n']} pairs, bundled with the project as "
            f"`{test['dataset']}`), scored once, after the model was chosen:",
            "",
            "| method | PSNR (dB) | SSIM | PSNR, GT-mean (dB) | PSNR, study's convention (dB) |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            *([f"Asked for each reference's exposure (an exposure-conditioned model): "
               f"{test['psnr_reference_exposure']:.2f} dB PSNR / {test['ssim_reference_exposure']:.4f} SSIM.", ""]
              if "psnr_reference_exposure" in test else []),
            f"Command: `{test['command']}`",
        ])
    card_data = ModelCardData(
        license="apache-2.0", library_name="transformers", pipeline_tag="image-to-image",
        tags=["low-light-image-enhancement", "mirnet", "custom_code"], metrics=["psnr", "ssim"],
        model_name=model_id, eval_results=results,
    )
    hyper = {k: v for k, v in args.items() if k not in NOT_HYPERPARAMETERS}
    if best.get("val_psnr") is not None:
        gt_mean = f"{best['val_psnr_gt_mean']:.2f}" if best.get("val_psnr_gt_mean") is not None else "n/a"
        selection = "\n".join([
            f"Epoch {state['best_epoch']} of {state['epoch']}, chosen by validation PSNR on all pairs of the "
            f"`{validation_split}` split (whole images):",
            "",
            "| PSNR (dB) | SSIM | PSNR, GT-mean (dB) | loss |",
            "|---|---|---|---|",
            f"| {best['val_psnr']:.2f} | {best['val_ssim']:.4f} | {gt_mean} | {best['val_loss']:.5f} |",
        ])
    else:  # a final fit (train.py --validation_split none): every pair trains it, nothing is selected
        selection = (f"Epoch {state['best_epoch']} of {state['epoch']}: the last one, not validated (every pair of "
                     f"`{args.get('train_split', 'train')}` trained it; the recipe and the epoch count come from an "
                     "earlier, validated run).")
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_id=model_id,
        experiment=args.get("experiment") or "custom run",
        dataset=dataset_text(dataset),
        commands_note=commands_note(dataset),
        purpose=purpose_section(dataset, args, parameter_count(folder), trained_on, test, well_lit, exposure,
                                held_out_exposure),
        limitation=KNOWN_LIMITS.get(dataset_id, f"Trained on {dataset_text(dataset)} only: photos unlike its "
                                                "training photos may not be restored well."),
        selection=selection,
        test_table=test_table,
        well_lit_table=well_lit_section(well_lit, seen=is_final_fit(args)),
        exposure_table=exposure_section(model_id, exposure, training, held_out_exposure),
        hyperparameters="\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(hyper.items())),
        command=training.get("command", "n/a"),
        commit=commit_text(training.get("commit", "unknown")),
        earlier_stages=earlier_stages_note(folder),
    )
    path = Path(folder) / "README.md"
    card.save(path)
    return path
