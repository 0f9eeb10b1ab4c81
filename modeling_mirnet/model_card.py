"""The model card (README.md of a model folder), rendered from the package's `model_card.md` template (the
repository's top-level `model_card.md` links to it), so installed copies of the package write cards too.

One function serves train.py (the card of `output_dir/model`, validation figures) and package_model.py (the card of a
shipped folder, with the test figures of `train/evaluate.py` added to its `model-index`).
"""

import json
import subprocess
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard_data import EvalResult

from .metrics import INFLATION_DB

TEMPLATE = Path(__file__).resolve().parent / "model_card.md"
REPO_ROOT = Path(__file__).resolve().parent.parent
NOT_HYPERPARAMETERS = ("config", "resume", "push_to_hub", "report_to", "output_dir")


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


def well_lit_section(well_lit: dict | None) -> str:
    """The do-no-harm table from benchmarks/well_lit.py's figures for this model ({"count", "command", "median_psnr",
    "median_ratio", "worst_grid", "median_grid", "worst_input_grid", "worst_grid_added"}), or "" without them."""
    if not well_lit:
        return ""
    return "\n".join([
        f"Well-lit photos ({well_lit['count']} references of the validation split given as inputs: a photo that needs "
        "nothing should come out as it went in):",
        "",
        "| median PSNR(output, input) | median output / input mean gray | worst 4-pixel grid score (median; inputs' worst) "
        "| worst grid added (output / its input) |",
        "|---:|---:|---:|---:|",
        f"| {well_lit['median_psnr']:.2f} dB | {well_lit['median_ratio']:.3f} | {well_lit['worst_grid']:.2f} "
        f"({well_lit['median_grid']:.2f}; {well_lit['worst_input_grid']:.2f}) | {well_lit['worst_grid_added']:.2f}x |",
        "",
        "Goals: >= 28 dB, 0.9-1.15, no grid beyond the input's (1x added). "
        f"Command: `{well_lit['command']}`",
    ])


def write_model_card(folder, training: dict, state: dict, model_id: str, test: dict | None = None,
                     well_lit: dict | None = None) -> Path:
    """Write folder/README.md. `training`: {"args": {flag: value}, "command": str, "commit": str} (training_args.json);
    `state`: train.py's trainer_state.json; `test`: mean figures of evaluate.py on the test split (optional);
    `well_lit`: benchmarks/well_lit.py's figures for this model (optional, `well_lit_section`)."""
    args = training["args"]
    best = state["history"][state["best_epoch"] - 1]
    dataset = str(args.get("dataset"))
    validation_split = args.get("validation_split", "validation")
    results = [_result(f"{dataset} ({validation_split})", dataset, validation_split, m, n, best[k])
               for m, n, k in (("psnr", "PSNR", "val_psnr"), ("ssim", "SSIM", "val_ssim"),
                               ("psnr", "PSNR (GT-mean)", "val_psnr_gt_mean")) if best.get(k) is not None]
    test_table = "No test-split evaluation is recorded for this folder."
    if test is not None:
        results += [_result(f"{test['dataset']} ({test['split']})", test["dataset"], test["split"], m, n, test[k])
                    for m, n, k in (("psnr", "PSNR", "psnr"), ("ssim", "SSIM", "ssim"), ("psnr", "PSNR (GT-mean)", "psnr_gt_mean"))]
        rows = [f"| **{model_id}** | **{test['psnr']:.2f}** | **{test['ssim']:.4f}** | {test['psnr_gt_mean']:.2f} | {test['psnr'] + INFLATION_DB:.2f} |"]
        rows += [f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['psnr_gt_mean']:.2f} | {m['psnr'] + INFLATION_DB:.2f} |"
                 for name, m in test.get("baselines", {}).items()]
        test_table = "\n".join([
            f"Test split `{test['split']}` of `{test['dataset']}` ({test['n']} pairs), scored once, after the epoch was chosen:",
            "",
            "| method | PSNR (dB) | SSIM | PSNR, GT-mean (dB) | PSNR, study's convention (dB) |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
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
        dataset=dataset,
        selection=selection,
        test_table=test_table,
        well_lit_table=well_lit_section(well_lit),
        hyperparameters="\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(hyper.items())),
        command=training.get("command", "n/a"),
        commit=training.get("commit", "unknown"),
        earlier_stages=earlier_stages_note(folder),
    )
    path = Path(folder) / "README.md"
    card.save(path)
    return path
