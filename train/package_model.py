#!/usr/bin/env python
"""Package a trained run as a Hub-ready model folder: weights, code, processor, card with test results, curves.

    python train/evaluate.py --dataset datasets/lol_eval15 --model mirnet-lol=runs/X/model --output results/mirnet_lol_eval15
    python benchmarks/well_lit.py --model mirnet-lol=runs/X/model --dataset data/lol --json results/well_lit/X.json
    python train/package_model.py --run runs/X --evaluation results/mirnet_lol_eval15/results.json \
        --well-lit results/well_lit/X.json --output space/checkpoints/mirnet-lol --name org/mirnet-lol \
        --trained-on "2 CPU cores" [--exposure results/exposure/X.json]

The folder is what `save_for_hub` writes (model.safetensors, config.json with auto_map and custom_pipelines,
preprocessor_config.json, the code files), plus:
- README.md: the model card (`model_card.md` template): what the model is for and what it is not (its size, its test
  figures against the paper's, what it does to well-lit photos), a `model-index` holding the validation figures of
  the selected epoch and the test figures from `train/evaluate.py` (PSNR, GT-mean PSNR, SSIM), and the examples
  loading `--name`, the Hub repository id (use the one the README's examples use);
- curves.png and trainer_state.json of the run; training_args.json (every flag, the command and the git commit).

The epoch was selected by train.py on validation only; the test figures are recorded, never used to choose.
`--run` may also be a folder this script wrote (e.g. the shipped one, `--output` the same folder): it is written again
with new figures (after a change to inference), the same weights and records.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

from modeling_mirnet.hub import save_for_hub
from modeling_mirnet.inference import load_mirnet
from modeling_mirnet.model_card import write_model_card

MAX_FOLDER_MB = 25


def copy_earlier_stages(training: dict, folder: Path) -> None:
    """A run that started from another model (`--init_from`): keep that model's records (its own earlier stages first,
    then its training_args.json, trainer_state.json and curves.png) in folder/earlier_stages/1, 2, ... for the card."""
    parent = training["args"].get("init_from")
    if not parent or not (Path(parent) / "training_args.json").is_file():
        return
    parent = Path(parent)
    stages = sorted(parent.glob("earlier_stages/*"), key=lambda p: int(p.name)) + [parent]
    for number, stage in enumerate(stages, start=1):
        target = folder / "earlier_stages" / str(number)
        target.mkdir(parents=True)
        for name in ("training_args.json", "trainer_state.json", "curves.png"):
            if (stage / name).is_file():
                shutil.copy2(stage / name, target / name)


def benchmark_figures(path: Path, method: str | None) -> dict:
    """One model's summary from a benchmark's --json report (well_lit.py, exposure.py): `method`'s, else the first,
    with the report's image count and command, the model's label in it and the report's path."""
    report = json.loads(path.read_text())
    models = report["summary"]["models"]
    label = method if method in models else next(iter(models))
    return {**models[label], "count": report["summary"]["count"], "command": report["command"], "label": label,
            "file": path.as_posix()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path,
                        help="train.py --output_dir of the run (holds model/), or a folder this script wrote")
    parser.add_argument("--evaluation", type=Path, help="results.json of train/evaluate.py on the test split")
    parser.add_argument("--method", help="label of the model in that results.json (default: the first non-baseline)")
    parser.add_argument("--output", required=True, type=Path, help="folder to write (replaced if it exists)")
    parser.add_argument("--name", required=True,
                        help="Hub repository id the card names and its examples load, e.g. org/mirnet-lol (the README's)")
    parser.add_argument("--trained-on", help='the hardware it was trained on, for the card, e.g. "2 CPU cores"')
    parser.add_argument("--well-lit", type=Path, help="JSON of benchmarks/well_lit.py --json for this model (the card's do-no-harm table)")
    parser.add_argument("--exposure", type=Path,
                        help="JSON of benchmarks/exposure.py --json for an exposure-conditioned model (the card's exposure table)")
    parser.add_argument("--held-out-exposure", type=Path,
                        help="for a final fit (trained on the validation pairs too): the same JSON for its recipe's "
                             "validated run, whose figures on those pairs are the held-out ones the card quotes")
    args = parser.parse_args(argv)

    model_dir = args.run / "model" if (args.run / "model").is_dir() else args.run
    training_args_file = model_dir / "training_args.json"
    for needed in (model_dir / "config.json", model_dir / "trainer_state.json", training_args_file):
        if not needed.is_file():
            print(f"error: {needed}: missing (is {args.run} a finished train.py run?)", file=sys.stderr)
            return 2
    state = json.loads((model_dir / "trainer_state.json").read_text())
    training = json.loads(training_args_file.read_text())
    test = None
    if args.evaluation:
        report = json.loads(args.evaluation.read_text())
        methods = report["methods"]
        label = args.method or next((m for m in methods if m not in ("input", "autocontrast", "equalize", "gamma_0.4")), None)
        if label not in methods:
            print(f"error: {args.evaluation}: no method {label!r} (has {', '.join(methods)})", file=sys.stderr)
            return 2
        test = {"dataset": report["dataset"], "split": report["split"], "n": report["n"], "command": report["command"],
                **methods[label]["mean"]}
        test["baselines"] = {m: methods[m]["mean"] for m in methods if m != label}

    well_lit = benchmark_figures(args.well_lit, args.method) if args.well_lit else None
    exposure = benchmark_figures(args.exposure, args.method) if args.exposure else None
    held_out = benchmark_figures(args.held_out_exposure, None) if args.held_out_exposure else None

    model, processor = load_mirnet(model_dir)
    tmp = args.output.with_name(args.output.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_for_hub(model, tmp, processor)
    for extra in ("curves.png", "trainer_state.json", "training_args.json"):
        if (model_dir / extra).is_file():
            shutil.copy2(model_dir / extra, tmp / extra)
    if (model_dir / "earlier_stages").is_dir():  # a packaged folder, written again
        shutil.copytree(model_dir / "earlier_stages", tmp / "earlier_stages")
    else:
        copy_earlier_stages(training, tmp)
    if test is not None:
        (tmp / "test_results.json").write_text(json.dumps(test, indent=2) + "\n")
    write_model_card(tmp, training, state, model_id=args.name, test=test, well_lit=well_lit, trained_on=args.trained_on,
                     exposure=exposure, held_out_exposure=held_out)
    size_mb = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) / 2**20
    if size_mb > MAX_FOLDER_MB:
        print(f"error: the folder is {size_mb:.1f} MB, over the {MAX_FOLDER_MB} MB limit", file=sys.stderr)
        return 2
    shutil.rmtree(args.output, ignore_errors=True)
    tmp.rename(args.output)
    print(f"wrote {args.output} ({size_mb:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
