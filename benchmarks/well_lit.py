"""Do no harm: what a model does to photos that are already well exposed.

    python benchmarks/well_lit.py --model mirnet-lol=space/checkpoints/mirnet-lol --dataset data/lol --write

Feeds the references of a split (default: LoL's 145 validation pairs, never trained on) to the model as inputs and
reports, per model: the median PSNR of the output against its own input (a model that leaves a good photo alone
scores high), the median ratio of output to input mean gray level (1 = exposure kept), and the worst 4-pixel grid
score (`modeling_mirnet.metrics.grid_score`: about 1 for natural images; the inputs' own worst is shown beside it),
and the worst grid added (an output's score over its own input's: 1 = the model drew no grid).
Goals: PSNR >= 28 dB, ratio 0.9-1.15, worst grid added <= 1.5x (no output more than 1.5x its own input's grid). Whole images, in the precision inference would use.
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
from modeling_mirnet.inference import load_mirnet, precision_name, resolve_dtype  # noqa: E402
from modeling_mirnet.model_specs import parse_model_specs  # noqa: E402
from modeling_mirnet.metrics import grid_score, mean_gray  # noqa: E402
from modeling_mirnet.modeling_mirnet import BORDER_MARGIN  # noqa: E402

GOALS = {"psnr": 28.0, "ratio": (0.9, 1.15), "grid_added": 1.5}


def well_lit_scores(model, references: ImagePairs, dtype: torch.dtype, margin: int = BORDER_MARGIN,
                    exposure: str = "predicted") -> dict[str, list[float]]:
    """Per image: PSNR(output, input), output/input mean gray, the output's and the input's grid score. Exposure-
    conditioned models render `exposure`: "predicted" (their own default) or "reference" (here the input's own: 0)."""
    rows = {"ratio": [0.0] * len(references), "grid": [0.0] * len(references), "input_grid": [0.0] * len(references)}

    def measure(index, pixels):
        output, source = pixels[None].float().div(255), references.lows[index][None].float().div(255)
        rows["ratio"][index] = float(mean_gray(output) / mean_gray(source).clamp_min(1e-6))
        rows["grid"][index], rows["input_grid"][index] = float(grid_score(output)), float(grid_score(source))

    scores = score_pairs(model, references, batch_size=1, autocast_dtype=dtype, compute_ssim=False, on_output=measure,
                         margin=margin, exposure=exposure)
    return {"psnr": scores["psnr"], **rows}


def summary(rows: dict[str, list[float]]) -> dict[str, float]:
    return {"median_psnr": float(np.median(rows["psnr"])), "median_ratio": float(np.median(rows["ratio"])),
            "worst_grid": float(np.max(rows["grid"])), "median_grid": float(np.median(rows["grid"])),
            "worst_input_grid": float(np.max(rows["input_grid"])),
            # what the model adds: each output's grid score over its own input's (1 = no grid added)
            "worst_grid_added": float(np.max(np.divide(rows["grid"], rows["input_grid"])))}


def meets_goals(s: dict[str, float]) -> bool:
    low, high = GOALS["ratio"]
    return s["median_psnr"] >= GOALS["psnr"] and low <= s["median_ratio"] <= high and s["worst_grid_added"] <= GOALS["grid_added"]


def section(args, results: dict, dtype: torch.dtype) -> str:
    lines = ["<!-- well-lit:start -->", "## Well-lit photos: do no harm", "",
             f"`python benchmarks/well_lit.py {' '.join(args.argv)}`: the {results['count']} references of the "
             f"`{args.split}` split of `{args.dataset}` given as inputs ({precision_name(dtype)}, whole images, mirrored margin {args.margin} px). Goals: "
             f"PSNR(output, input) >= {GOALS['psnr']:.0f} dB, mean-gray ratio {GOALS['ratio'][0]}-{GOALS['ratio'][1]}, "
             f"worst grid added <= {GOALS['grid_added']}x (output over its own input; the inputs' own worst grid: "
             f"{results['worst_input_grid']:.2f}).", "",
             "| model | median PSNR(output, input) | median output / input mean gray | worst grid score (median) | "
             "worst grid added (output / its input) | goals |",
             "|---|---:|---:|---:|---:|---|"]
    for label, s in results["models"].items():
        lines.append(f"| {label} | {s['median_psnr']:.2f} dB | {s['median_ratio']:.3f} | {s['worst_grid']:.2f} "
                     f"({s['median_grid']:.2f}) | {s['worst_grid_added']:.2f}x | {'met' if meets_goals(s) else 'not met'} |")
    return "\n".join(lines + ["<!-- well-lit:end -->"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pair_benchmark_arguments(parser)
    parser.add_argument("--margin", type=int, default=BORDER_MARGIN,
                        help=f"pixels mirrored around each photo, as inference does (default {BORDER_MARGIN}; 0: none)")
    parser.add_argument("--exposure", choices=["predicted", "reference"], default="predicted",
                        help="exposure-conditioned models: their own predicted exposure (what users get) or the "
                             "input's own (0 stops)")
    args = parse_pair_benchmark_arguments(parser, argv)
    dataset = load_pairs(args.dataset)
    split = dataset[args.split] if args.split in dataset else parser.error(f"{args.dataset}: no split {args.split!r}")
    pairs = decode_pairs(split, args.limit)
    references = ImagePairs(pairs.highs, pairs.highs, pairs.names)
    dtype = resolve_dtype(args.precision, "cpu")
    results, per_image = {"count": len(references), "models": {}}, {}
    for label, source in parse_model_specs(args.model).items():
        model, _ = load_mirnet(source)
        per_image[label] = rows = well_lit_scores(model, references, dtype, args.margin, args.exposure)
        results["models"][label] = summary(rows)
        results["worst_input_grid"] = results["models"][label]["worst_input_grid"]
    write_per_image_json(args, "well_lit.py", results, references.names, per_image)
    publish(section(args, results, dtype), args.write)


if __name__ == "__main__":
    main()
