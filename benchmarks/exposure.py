"""Exposure: how well a model judges it, renders what it is asked for, and keeps the blacks of dark photos.

    python benchmarks/exposure.py --model conditioned=runs/exposure/conditioned/model \
        --model mirnet-lol=space/checkpoints/mirnet-lol --dataset data/lol --json results/exposure/validation.json

On the pairs of a split (default: LoL's 145 validation pairs, never trained on), per model:
- PSNR / SSIM / GT-mean PSNR with the model's own exposure (what users get);
- exposure-conditioned models: PSNR / SSIM with each reference's exposure ("reference exposure": the honest
  counterpart of GT-mean figures, which rescale the output after the fact); the head's rms error in stops beside
  that of one constant brightness for every photo (the training references' mean log2 luminance: the best known
  judge of exposure on unseen scenes); and the rendered exposure's rms error
  against the requested one, for requests at the reference's exposure -1, +0 and +0.5 stops;
- other models: the rms error of the exposure they render, beside the same constant;
- blacks: the median over photos of the outputs' 1st-percentile gray level (0-255), beside the references'.
Exposure is log2(mean Y of the output / mean Y of the input), Y the luminance of linear-light RGB.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark import (  # noqa: E402
    add_pair_benchmark_arguments, parse_pair_benchmark_arguments, publish, write_per_image_json,
)

from modeling_mirnet.data import load_pairs  # noqa: E402
from modeling_mirnet.evaluation import ImagePairs, decode_pairs, score_pairs  # noqa: E402
from modeling_mirnet.exposure import exposure_stops, mean_luminance  # noqa: E402
from modeling_mirnet.inference import load_mirnet, precision_name, resolve_dtype  # noqa: E402
from modeling_mirnet.metrics import REC601_GRAY  # noqa: E402
from modeling_mirnet.model_specs import parse_model_specs  # noqa: E402

RENDER_OFFSETS = (-1.0, 0.0, 0.5)  # requests relative to each reference's exposure


def black_level(pixels: torch.Tensor, percentile: float = 1.0) -> float:
    """The `percentile`-th percentile of a (3, H, W) uint8 image's Rec.601 gray level, 0-255."""
    gray = (pixels.float() * torch.tensor(REC601_GRAY).view(3, 1, 1)).sum(0)
    return float(torch.quantile(gray.flatten(), percentile / 100))


def pair_exposures(pairs: ImagePairs) -> np.ndarray:
    """Each pair's exposure in stops, log2(mean Y of the reference / mean Y of the input)."""
    return np.array([float(exposure_stops(high[None].float() / 255, low[None].float() / 255))
                     for low, high in zip(pairs.lows, pairs.highs)])


def log_luminance(images: list[torch.Tensor]) -> np.ndarray:
    """log2 of each (3, H, W) uint8 image's mean linear luminance."""
    return np.array([float(torch.log2(mean_luminance(image[None].float() / 255).clamp_min(1e-6))) for image in images])


def rms(errors) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


def measure(model, pairs: ImagePairs, dtype, constant: float) -> dict:
    """`constant`: the log2 luminance every output would be brought to by the constant predictor."""
    """Every figure of the module docstring for one model, and the per-image values behind them."""
    blacks, rendered = [0.0] * len(pairs), [0.0] * len(pairs)

    def keep(index, pixels):
        blacks[index] = black_level(pixels)
        rendered[index] = float(exposure_stops(pixels[None].float() / 255, pairs.lows[index][None].float() / 255))

    kwargs = dict(batch_size=1, autocast_dtype=dtype)
    own = score_pairs(model, pairs, on_output=keep, **kwargs)
    reference = pair_exposures(pairs)
    figures = {"psnr": np.mean(own["psnr"]), "ssim": np.mean(own["ssim"]), "psnr_gt_mean": np.mean(own["psnr_gt_mean"]),
               "constant_exposure_rms": rms(constant - log_luminance(pairs.lows) - reference),
               "median_black": float(np.median(blacks)),
               "median_reference_black": float(np.median([black_level(high) for high in pairs.highs]))}
    per_image = {"psnr": own["psnr"], "black": blacks, "reference_exposure": reference.tolist(), "rendered_exposure": rendered}
    if model.config.exposure_conditioning:
        figures["head_exposure_rms"] = rms(np.array(own["exposure"]) - reference)
        per_image["predicted_exposure"] = own["exposure"]
        errors = []
        for offset in RENDER_OFFSETS:
            asked = score_pairs(model, pairs, exposure="reference", exposure_offset=offset, compute_ssim=offset == 0, **kwargs)
            errors += list(np.array(asked["rendered_exposure"]) - np.array(asked["exposure"]))
            if offset == 0:
                figures["psnr_reference_exposure"] = np.mean(asked["psnr"])
                figures["ssim_reference_exposure"] = np.mean(asked["ssim"])
                per_image["psnr_reference_exposure"] = asked["psnr"]
        figures["rendering_rms"] = rms(errors)
    else:  # what the model renders on its own, judged like the head
        figures["rendered_exposure_rms"] = rms(np.array(rendered) - reference)
    return {"summary": {k: float(v) for k, v in figures.items()}, "per_image": per_image}


def cell(summary: dict, key: str, digits: int = 2, unit: str = "") -> str:
    return f"{summary[key]:.{digits}f}{unit}" if key in summary else "-"


def section(args, results: dict, dtype: torch.dtype) -> str:
    lines = ["<!-- exposure:start -->", "## Exposure: judged, rendered, blacks kept", "",
             f"`python benchmarks/exposure.py {' '.join(args.argv)}`: the {results['count']} pairs of the `{args.split}` "
             f"split of `{args.dataset}` ({precision_name(dtype)}, whole images). The constant brings every photo "
             f"to the mean log2 luminance of the `{args.train_split}` references ({results['constant']:.2f}). Exposure errors are rms, in stops.", "",
             "| model | PSNR / SSIM, own exposure | PSNR / SSIM, reference exposure | GT-mean PSNR | exposure error "
             "(constant's) | rendering error | 1st-percentile gray (references') |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, s in results["models"].items():
        judged = s.get("head_exposure_rms", s.get("rendered_exposure_rms"))
        reference = (f"{s['psnr_reference_exposure']:.2f} dB / {s['ssim_reference_exposure']:.4f}"
                     if "psnr_reference_exposure" in s else "-")
        lines.append(f"| {label} | {s['psnr']:.2f} dB / {s['ssim']:.4f} | {reference} | {s['psnr_gt_mean']:.2f} dB | "
                     f"{judged:.3f} ({s['constant_exposure_rms']:.3f}) | {cell(s, 'rendering_rms', 3)} | "
                     f"{s['median_black']:.1f} ({s['median_reference_black']:.1f}) |")
    return "\n".join(lines + ["<!-- exposure:end -->"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pair_benchmark_arguments(parser)
    parser.add_argument("--train-split", default="train", help="the split whose references set the constant brightness")
    args = parse_pair_benchmark_arguments(parser, argv)
    dataset = load_pairs(args.dataset)
    for split in (args.split, args.train_split):
        if split not in dataset:
            parser.error(f"{args.dataset}: no split {split!r} (has {', '.join(dataset)})")
    pairs = decode_pairs(dataset[args.split], args.limit)
    constant = float(np.mean(log_luminance(decode_pairs(dataset[args.train_split]).highs)))
    dtype = resolve_dtype(args.precision, "cpu")
    results, per_image = {"count": len(pairs), "constant": constant, "models": {}}, {}
    for label, source in parse_model_specs(args.model).items():
        model, _ = load_mirnet(source)
        measured = measure(model, pairs, dtype, constant)
        results["models"][label], per_image[label] = measured["summary"], measured["per_image"]
    write_per_image_json(args, "exposure.py", results, pairs.names, per_image)
    publish(section(args, results, dtype), args.write)


if __name__ == "__main__":
    main()
