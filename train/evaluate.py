"""Evaluate MIRNet checkpoints and classical baselines on a paired low-light dataset split.

    python train/evaluate.py --dataset data/lol --split test --model runs/lol_01_baseline/model --output results/lol
    python train/evaluate.py --dataset datasets/lol_eval15 --output results/lol_eval15_baselines   # baselines only
    python train/evaluate.py --dataset org/lol --model lol=org/mirnet-lol --model sice=org/mirnet-sice --output results/x

`--dataset` is a folder written by train/prepare_dataset.py, a Hub dataset id in that layout, or a raw `low/` +
`high/` folder of pairs (read as the split "test"). `--model` takes a model folder or a Hub id, optionally as
`LABEL=PATH_OR_ID`, and may be repeated. Baselines (default: all) are scored in the same table: the input itself,
PIL.ImageOps.autocontrast (the study's comparison), ImageOps.equalize and a gamma curve (0.4).

Metrics (modeling_mirnet/metrics.py): PSNR with data range 1 on RGB, on the uint8-quantized output (what a saved
PNG holds), per image then averaged; SSIM with the standard 11x11 Gaussian window (sigma 1.5); LPIPS (AlexNet) when
the `lpips` package and its weights are available. The column "PSNR, study's convention" adds the 48.13 dB of the seed
study's max_val=255-on-[0,1] bug, only so readers can compare with its figures; it is not a quality measure.

Writes OUTPUT/results.json (per-image and mean figures, the command, the dataset) and OUTPUT/results.md.
"""

# ----------------------------------------------------------------------------------------------------------------
# 1. Imports
# ----------------------------------------------------------------------------------------------------------------
import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from tqdm.auto import tqdm

from modeling_mirnet.data import DataError, load_pairs
from modeling_mirnet.evaluation import decode_pairs, image_to_uint8_tensor, score_images, score_pairs
from modeling_mirnet.inference import (
    DEFAULT_TILE_OVERLAP,
    PRECISIONS,
    DeviceError,
    ModelLoadError,
    load_mirnet,
    pick_device,
    resolve_dtype,
)
from modeling_mirnet.metrics import BASELINES, INFLATION_DB, study_convention
from modeling_mirnet.modeling_mirnet import BORDER_MARGIN
from modeling_mirnet.model_specs import ModelSpecError, parse_model_specs


# ----------------------------------------------------------------------------------------------------------------
# 2. Methods: a checkpoint or a baseline, each a function PIL image -> PIL image
# ----------------------------------------------------------------------------------------------------------------
class MissingDependency(RuntimeError):
    """An optional package that the requested metric needs is not installed."""


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
def evaluate(dataset, models: dict, baselines: dict, lpips_fn=None, save_images: Path | None = None, progress: bool = True,
             tile_size: int | None = None, tile_overlap: int = DEFAULT_TILE_OVERLAP, autocast_dtype: torch.dtype | None = None,
             margin: int = BORDER_MARGIN) -> dict:
    """Score checkpoints (`models`: label -> MIRNetModel) and baselines (label -> PIL function) on every pair.

    The pairs are decoded once; checkpoints run through `modeling_mirnet.evaluation.score_pairs` (the loop training
    validates with) and baselines through the same metrics (`score_images`). Returns
    {"methods": {label: {"mean": {...}, "images": [{"name", "psnr", "psnr_gt_mean", "ssim", ["lpips"]}, ...]}}, "n": N}.
    """
    try:
        pairs = decode_pairs(dataset)
    except ValueError as err:
        raise DataError(str(err)) from None
    references = [to_pil(high) for high in pairs.highs]
    results = {}

    def keep(label):
        """on_output callback: LPIPS and --save-images need the 8-bit outputs."""
        def store(index, pixels):
            image = to_pil(pixels)
            if lpips_fn is not None:
                results[label][index]["lpips"] = lpips_fn(image, references[index])
            if save_images is not None:
                (save_images / label).mkdir(parents=True, exist_ok=True)
                image.save(save_images / label / f"{Path(pairs.names[index]).stem}.png")
        return store if (lpips_fn is not None or save_images is not None) else None

    for label, model in models.items():
        results[label] = [{"name": name} for name in pairs.names]
        bar = tqdm(total=len(pairs), desc=label, unit="image", disable=not progress)
        scores = score_pairs(model, pairs, batch_size=1, autocast_dtype=autocast_dtype, tile_size=tile_size,
                             tile_overlap=tile_overlap, margin=margin, on_output=keep(label), progress=lambda done, total: bar.update(done - bar.n))
        bar.close()
        if model.config.exposure_conditioning:  # also at each pair's own exposure: the counterpart of GT-mean figures
            reference = score_pairs(model, pairs, batch_size=1, autocast_dtype=autocast_dtype, tile_size=tile_size,
                                    tile_overlap=tile_overlap, margin=margin, exposure="reference")
            scores["psnr_reference_exposure"], scores["ssim_reference_exposure"] = reference["psnr"], reference["ssim"]
        for key, values in scores.items():
            for row, value in zip(results[label], values):
                row[key] = value
    for label, method in baselines.items():
        results[label] = [{"name": name} for name in pairs.names]
        store = keep(label)
        for i, low in enumerate(tqdm(pairs.lows, desc=label, unit="image", disable=not progress)):
            output = method(to_pil(low))
            if output.size != references[i].size:
                raise DataError(f"{pairs.names[i]}: {label} returned {output.size[0]}x{output.size[1]}, "
                                f"reference is {references[i].size[0]}x{references[i].size[1]}")
            pixels = image_to_uint8_tensor(output)
            for key, values in score_images(pixels[None], pairs.highs[i][None]).items():
                results[label][i][key] = values[0]
            if store is not None:
                store(i, pixels)
    summary = {}
    for label, rows in results.items():
        metrics = [k for k in ("psnr", "psnr_gt_mean", "ssim", "lpips", "psnr_reference_exposure", "ssim_reference_exposure")
                   if rows and k in rows[0]]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in metrics}
        if "psnr" in mean:
            mean["psnr_seed_convention"] = study_convention(mean["psnr"])
        summary[label] = {"mean": mean, "images": rows}
    return {"n": len(pairs), "methods": summary}


def to_pil(pixels: torch.Tensor) -> PIL.Image.Image:
    """(3, H, W) uint8 tensor -> RGB PIL image."""
    return PIL.Image.fromarray(pixels.permute(1, 2, 0).numpy())


# ----------------------------------------------------------------------------------------------------------------
# 4. Report
# ----------------------------------------------------------------------------------------------------------------
def _fmt(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def markdown_report(report: dict) -> str:
    """Mean table (one row per method) and per-image PSNR table."""
    methods = report["methods"]
    has_lpips = any("lpips" in m["mean"] for m in methods.values())
    has_reference = any("psnr_reference_exposure" in m["mean"] for m in methods.values())
    lines = [
        f"# Evaluation on {report['dataset']} ({report['split']}, {report['n']} images)",
        "",
        f"Command: `{report['command']}`",
        "",
        "PSNR: data range 1, RGB, on the uint8 output, mean over images. SSIM: 11x11 Gaussian, sigma 1.5. "
        "GT-mean: the output scaled to its reference's mean gray level before scoring (removes the global exposure error; "
        "the KinD/LLFlow convention, never mixed with plain PSNR in a ranking). "
        f"'Seed convention' = PSNR + {INFLATION_DB:.2f} dB (max_val=255 on [0,1] images, as in the study); "
        "shown only for comparison with its figures."
        + (" Exposure-conditioned models render their own predicted exposure; 'reference exposure' asks them for each "
           "reference's exposure instead (the honest counterpart of GT-mean figures)." if has_reference else ""),
        "",
        "| method | PSNR (dB) | SSIM |" + (" LPIPS ↓ |" if has_lpips else "") + " PSNR, GT-mean (dB) |"
        + (" PSNR / SSIM, reference exposure |" if has_reference else "") + " PSNR, study's convention (dB) |",
        "|---|---:|---:|" + ("---:|" if has_lpips else "") + "---:|" + ("---:|" if has_reference else "") + "---:|",
    ]
    for label, m in methods.items():
        mean = m["mean"]
        lpips_cell = f" {mean['lpips']:.4f} |" if has_lpips and "lpips" in mean else (" n/a |" if has_lpips else "")
        reference_cell = ""
        if has_reference:
            reference_cell = (f" {_fmt(mean['psnr_reference_exposure'], 2)} / {mean['ssim_reference_exposure']:.4f} |"
                              if "psnr_reference_exposure" in mean else " - |")
        lines.append(f"| {label} | {_fmt(mean['psnr'], 2)} | {mean['ssim']:.4f} |{lpips_cell} {_fmt(mean['psnr_gt_mean'], 2)} |"
                     f"{reference_cell} {_fmt(mean['psnr_seed_convention'], 2)} |")
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
    parser.add_argument("--precision", dest="precision", choices=list(PRECISIONS), default="fp32",
                        help="precision of the checkpoints' forward pass (autocast; auto = bf16 where the hardware has it). "
                             "fp32 by default: the reference figures")
    parser.add_argument("--tile-size", dest="tile_size", type=int, default=None, help="tile size for large images (default: whole image)")
    parser.add_argument("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP)
    parser.add_argument("--margin", type=int, default=BORDER_MARGIN,
                        help=f"pixels mirrored around each photo, as inference does (default {BORDER_MARGIN}; 0: none)")
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
        # a bare folder or Hub id is labelled by its last component
        sources = parse_model_specs(args.model, label_for=lambda source: Path(source.rstrip("/")).name or source)
        models = {label: load_mirnet(source, device=device)[0] for label, source in sources.items()}
        autocast_dtype = resolve_dtype(args.precision, device)
        baselines = {name: BASELINES[name] for name in args.baselines}
        lpips_fn = None if args.lpips == "off" else lpips_metric(device)
        if args.lpips == "on" and lpips_fn is None:
            raise MissingDependency("--lpips on: the lpips package (and its AlexNet weights) is not available; pip install lpips")
        report = evaluate(dataset, models, baselines, lpips_fn, args.output / "images" if args.save_images else None,
                          tile_size=args.tile_size, tile_overlap=args.tile_overlap, autocast_dtype=autocast_dtype,
                          margin=args.margin)
    except (DataError, ModelLoadError, DeviceError, MissingDependency, ModelSpecError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = {"dataset": str(args.dataset), "split": args.split, "command": shlex.join(["python", "train/evaluate.py", *(argv if argv is not None else sys.argv[1:])]), **report}
    write_report(report, args.output)
    print(markdown_report(report).split("## Per image")[0].rstrip())
    print(f"\nwrote {args.output / 'results.md'} and {args.output / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
