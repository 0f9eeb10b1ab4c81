"""Evaluate MIRNet checkpoints and classical baselines on a paired low-light dataset split.

    python train/evaluate.py --dataset data/lol --split test --model runs/lol_01_baseline/model --output results/lol
    python train/evaluate.py --dataset ../shared/data/lol/eval15 --output results/lol_eval15_baselines   # baselines only
    python train/evaluate.py --dataset org/lol --model lol=org/mirnet-lol --model sice=org/mirnet-sice --output results/x

`--dataset` is a folder written by train/prepare_dataset.py, a Hub dataset id in that layout, or a raw `low/` +
`high/` folder of pairs (read as the split "test"). `--model` takes a model folder or a Hub id, optionally as
`LABEL=PATH_OR_ID`, and may be repeated. Baselines (default: all) are scored in the same table: the input itself,
PIL.ImageOps.autocontrast (the seed study's comparison), ImageOps.equalize and a gamma curve (0.4).

Metrics (modeling_mirnet/metrics.py): PSNR with data range 1 on RGB, on the uint8-quantized output (what a saved
PNG holds), per image then averaged; SSIM with the standard 11x11 Gaussian window (sigma 1.5); LPIPS (AlexNet) when
the `lpips` package and its weights are available. The column "PSNR, seed convention" adds the 48.13 dB of the seed
study's max_val=255-on-[0,1] bug, only so readers can compare with its figures; it is not a quality measure.

Writes OUTPUT/results.json (per-image and mean figures, the command, the dataset) and OUTPUT/results.md.
"""

# ----------------------------------------------------------------------------------------------------------------
# 1. Imports
# ----------------------------------------------------------------------------------------------------------------
import argparse
import functools
import json
import math
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train/ helpers when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_utils import DataError, load_pairs  # noqa: E402

from modeling_mirnet.cli import pick_device  # noqa: E402
from modeling_mirnet.hub import ModelLoadError, enhance_image, load_mirnet  # noqa: E402
from modeling_mirnet.metrics import BASELINES, INFLATION_DB, psnr, ssim  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# 2. Methods: a checkpoint or a baseline, each a function PIL image -> PIL image
# ----------------------------------------------------------------------------------------------------------------
def parse_model_spec(spec: str) -> tuple[str, str]:
    """'LABEL=PATH_OR_ID' -> (label, path); a bare path or id is labelled by its last component."""
    if "=" in spec:
        label, _, path = spec.partition("=")
        if label and path:
            return label, path
    return Path(spec.rstrip("/")).name or spec, spec


def model_method(name_or_path: str, device: torch.device, tile_size: int | None = None, tile_overlap: int = 32):
    """A function enhancing one PIL image with the checkpoint at `name_or_path` (folder or Hub id)."""
    model, processor = load_mirnet(name_or_path, device=device)
    return functools.partial(enhance_image, model, processor, tile_size=tile_size, tile_overlap=tile_overlap)


def lpips_metric(device: torch.device):
    """LPIPS(AlexNet) as a function of two PIL images, or None when the package or its weights are unavailable."""
    try:
        import lpips

        net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
    except Exception as err:  # not installed, or the AlexNet weights cannot be downloaded offline
        print(f"LPIPS skipped: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", file=sys.stderr)
        return None

    @torch.no_grad()
    def score(output, reference):
        def to_tensor(image):
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0  # LPIPS expects [-1, 1]
            return torch.from_numpy(array).permute(2, 0, 1)[None].to(device)

        return float(net(to_tensor(output), to_tensor(reference)))

    return score


# ----------------------------------------------------------------------------------------------------------------
# 3. Evaluation loop
# ----------------------------------------------------------------------------------------------------------------
def evaluate(dataset, methods: dict, lpips_fn=None, save_images: Path | None = None, progress: bool = True) -> dict:
    """Score every method on every pair of `dataset` (columns low, high, name).

    Returns {"methods": {label: {"mean": {...}, "images": [{"name", "psnr", "ssim", ["lpips"]}, ...]}}, "n": N}.
    """
    results = {label: [] for label in methods}
    for example in tqdm(dataset, total=len(dataset), desc="evaluating", unit="image", disable=not progress):
        low, high, name = example["low"], example["high"], example["name"]
        for label, method in methods.items():
            output = method(low)
            if output.size != high.size:
                raise DataError(f"{name}: {label} returned {output.size[0]}x{output.size[1]}, reference is {high.size[0]}x{high.size[1]}")
            row = {"name": name, "psnr": psnr(output, high), "ssim": ssim(output, high)}
            if lpips_fn is not None:
                row["lpips"] = lpips_fn(output, high)
            results[label].append(row)
            if save_images is not None:
                folder = save_images / label
                folder.mkdir(parents=True, exist_ok=True)
                output.save(folder / f"{Path(name).stem}.png")
    summary = {}
    for label, rows in results.items():
        metrics = [k for k in ("psnr", "ssim", "lpips") if rows and k in rows[0]]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in metrics}
        if "psnr" in mean:
            mean["psnr_seed_convention"] = mean["psnr"] + INFLATION_DB
        summary[label] = {"mean": mean, "images": rows}
    return {"n": len(dataset), "methods": summary}


# ----------------------------------------------------------------------------------------------------------------
# 4. Report
# ----------------------------------------------------------------------------------------------------------------
def _fmt(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def markdown_report(report: dict) -> str:
    """Mean table (one row per method) and per-image PSNR table."""
    methods = report["methods"]
    has_lpips = any("lpips" in m["mean"] for m in methods.values())
    lines = [
        f"# Evaluation on {report['dataset']} ({report['split']}, {report['n']} images)",
        "",
        f"Command: `{report['command']}`",
        "",
        "PSNR: data range 1, RGB, on the uint8 output, mean over images. SSIM: 11x11 Gaussian, sigma 1.5. "
        f"'Seed convention' = PSNR + {INFLATION_DB:.2f} dB (max_val=255 on [0,1] images, as in the seed study); "
        "shown only for comparison with its figures.",
        "",
        "| method | PSNR (dB) | SSIM |" + (" LPIPS ↓ |" if has_lpips else "") + " PSNR, seed convention (dB) |",
        "|---|---:|---:|" + ("---:|" if has_lpips else "") + "---:|",
    ]
    for label, m in methods.items():
        mean = m["mean"]
        lpips_cell = f" {mean['lpips']:.4f} |" if has_lpips and "lpips" in mean else (" n/a |" if has_lpips else "")
        lines.append(f"| {label} | {_fmt(mean['psnr'], 2)} | {mean['ssim']:.4f} |{lpips_cell} {_fmt(mean['psnr_seed_convention'], 2)} |")
    labels = list(methods)
    lines += ["", "## Per image (PSNR dB / SSIM)", "", "| image | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    names = [r["name"] for r in methods[labels[0]]["images"]] if labels else []
    for i, name in enumerate(names):
        cells = [f"{_fmt(methods[l]['images'][i]['psnr'], 2)} / {methods[l]['images'][i]['ssim']:.3f}" for l in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    (output / "results.md").write_text(markdown_report(report))


# ----------------------------------------------------------------------------------------------------------------
# 5. Command line
# ----------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="prepared folder, Hub dataset id, or raw low/+high/ folder")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument("--model", action="append", default=[], metavar="[LABEL=]PATH_OR_ID", help="checkpoint; repeatable")
    parser.add_argument(
        "--baselines", nargs="*", default=list(BASELINES), choices=list(BASELINES), help="baselines to include (default: all)"
    )
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda ...")
    parser.add_argument("--tile", type=int, default=None, help="tile size for large images (default: whole image)")
    parser.add_argument("--tile-overlap", type=int, default=32)
    parser.add_argument("--lpips", choices=["auto", "on", "off"], default="auto", help="auto: when the lpips package works")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N pairs (quick checks)")
    parser.add_argument("--save-images", action="store_true", help="also write each method's outputs to OUTPUT/images/")
    parser.add_argument("--output", required=True, type=Path, help="folder for results.json and results.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.model and not args.baselines:
        print("error: nothing to evaluate: give --model and/or --baselines", file=sys.stderr)
        return 2
    try:
        dataset = load_pairs(args.dataset, args.split)
        if args.limit:
            dataset = dataset.select(range(min(args.limit, len(dataset))))
        device = pick_device(args.device)
        methods = {}
        for spec in args.model:
            label, path = parse_model_spec(spec)
            if label in methods:
                raise DataError(f"two models labelled {label!r}: name them with LABEL=PATH")
            methods[label] = model_method(path, device, args.tile, args.tile_overlap)
        methods.update({name: BASELINES[name] for name in args.baselines})
        lpips_fn = None if args.lpips == "off" else lpips_metric(device)
        if args.lpips == "on" and lpips_fn is None:
            raise DataError("--lpips on: the lpips package (and its AlexNet weights) is not available; pip install lpips")
        report = evaluate(dataset, methods, lpips_fn, args.output / "images" if args.save_images else None)
    except (DataError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = {"dataset": str(args.dataset), "split": args.split, "command": shlex.join(["python", "train/evaluate.py", *(argv if argv is not None else sys.argv[1:])]), **report}
    write_report(report, args.output)
    print(markdown_report(report).split("## Per image")[0].rstrip())
    print(f"\nwrote {args.output / 'results.md'} and {args.output / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
