#!/usr/bin/env python
"""Larger configs against the shipped one, per photo and per training step, measured side by side in one process.

    python benchmarks/model_size.py                                   # 32x1x1 (shipped) vs 32x1x2, 32x2x1, 48x1x1
    python benchmarks/model_size.py --configs 32x1x1 32x1x2 --runs 7 --threads 1

The size gate: a larger config may ship if it wins on validation at the same CPU budget and stays within 2x of
the shipped model's per-photo time. This gives both figures as ratios to the first config, so machines of different
speed agree: seconds per 600x400 photo through `Enhancer` (bf16 where the CPU has it, whole image, the mirrored
margin; eval15 `1.png`), and seconds per training step of the g_scratch recipe (batch 2 of whole 600x400 photos,
forward + GT-mean loss + backward + Adam) — its inverse is how many epochs a config gets in the same CPU time.
Every config has the shipped model's other settings and seeded random weights (speed does not depend on them).
Rounds are interleaved (config A, B, ..., then again), so a change in the machine's load touches all configs alike.
Writes benchmarks/model_size_results.json and the "Model size" section of BENCHMARKS.md.
"""

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import PIL.Image
import torch

from benchmark import machine_info, publish  # benchmarks/benchmark.py, beside this file
from train_step import make_step  # benchmarks/train_step.py

from modeling_mirnet import MIRNetConfig, MIRNetModel
from modeling_mirnet.inference import Enhancer, cpu_has_fast_bf16

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHIPPED = REPO / "space" / "checkpoints" / "mirnet-lol"
PHOTO = REPO / "datasets" / "lol_eval15" / "low" / "1.png"
START, END = "<!-- model-size:start -->", "<!-- model-size:end -->"


def build(spec: str) -> MIRNetModel:
    """CHANNELSxRRGxMRB with the shipped model's other settings, seeded random weights."""
    features, rrg, mrb = (int(v) for v in spec.split("x"))
    torch.manual_seed(0)
    config = MIRNetConfig.from_pretrained(SHIPPED)
    config.num_features, config.num_rrg, config.num_mrb = features, rrg, mrb
    return MIRNetModel(config).eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["32x1x1", "32x1x2", "32x2x1", "48x1x1"],
                        help="CHANNELSxRRGxMRB; the first is the reference of the ratios")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-train", dest="train", action="store_false", help="time the photos only")
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info("cpu")
    precision = "bf16" if cpu_has_fast_bf16() else "fp32"
    photo = PIL.Image.open(PHOTO).convert("RGB")
    cases = {}
    for spec in args.configs:
        model = build(spec)
        step = make_step(build(spec).train(), "ours", precision == "bf16", 2, (photo.height, photo.width), "gt_mean")
        cases[spec] = {"enhancer": Enhancer(model, precision=precision), "step": step,
                       "params": sum(p.numel() for p in model.parameters()), "photo_s": [], "step_s": []}
    for round_ in range(args.runs + 1):  # round 0 warms up (oneDNN primitives); not counted
        for spec, case in cases.items():
            start = time.perf_counter()
            case["enhancer"](photo)
            if round_:
                case["photo_s"].append(time.perf_counter() - start)
            if args.train:
                start = time.perf_counter()
                case["step"]()
                if round_:
                    case["step_s"].append(time.perf_counter() - start)

    info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    results = {spec: {"params": c["params"], "photo_s": c["photo_s"], "step_s": c["step_s"],
                      "photo_median_s": statistics.median(c["photo_s"]),
                      "step_median_s": statistics.median(c["step_s"]) if c["step_s"] else None}
               for spec, c in cases.items()}
    command = shlex.join(["python", "benchmarks/model_size.py"] + (argv if argv is not None else sys.argv[1:]))
    (HERE / "model_size_results.json").write_text(json.dumps({"machine": info, "command": command, "precision": precision,
                                                                "results": results}, indent=2) + "\n")
    first = results[args.configs[0]]
    lines = [
        START,
        "## Model size (CPU): per photo and per training step, against the shipped size",
        "",
        f"Produced in one run by `{command}` (rounds interleaved, median of {args.runs}, {args.threads} thread(s), {precision}). "
        f"Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, torch {info['torch']}, {info['date']}; load average "
        f"{info['load_average_start']} -> {info['load_average_end']}. Photo: eval15 `1.png` (600x400) through `Enhancer`; "
        "step: batch 2 of whole 600x400 photos, GT-mean loss, Adam (the g_scratch recipe). Random weights.",
        "",
        f"| config (channels x RRG x MRB) | params | photo (s) | photo vs {args.configs[0]} | training step (s) | step vs {args.configs[0]} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for spec, r in results.items():
        step = (f"{r['step_median_s']:.2f} | {r['step_median_s'] / first['step_median_s']:.2f}x" if r["step_median_s"]
                else "- | -")
        lines.append(f"| {spec} | {r['params'] / 1e6:.2f}M | {r['photo_median_s']:.2f} | "
                     f"{r['photo_median_s'] / first['photo_median_s']:.2f}x | {step} |")
    lines += ["", "The gate for a larger shipped model: within 2x of the shipped size per photo. Raw numbers: "
              "`benchmarks/model_size_results.json`.", END]
    publish("\n".join(lines), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
