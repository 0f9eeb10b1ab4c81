#!/usr/bin/env python
"""Training-step speed on CPU: this port in fp32 and bf16 autocast vs the official MIRNet v1 code, at equal configs.

    python benchmarks/train_step.py --official /path/to/MIRNet            # ~10 minutes on 2 cores
    python benchmarks/train_step.py --official /path/to/MIRNet --configs 32x1x1 16x3x2 --steps 3

One step = forward of a batch of 4 random 128x128 crops + Charbonnier loss + backward + Adam step (the study's
recipe), timed as the median of `--steps` steps after one warm-up step, `--threads` threads. Ours runs with its
defaults (channels_last feature maps on CPU, fused Adam where torch has it: what train.py uses); the official model
runs as published (NCHW, plain Adam). bf16 is `torch.autocast("cpu", torch.bfloat16)` around forward and loss, as
`accelerate launch --mixed_precision bf16` does; it is only a speed-up on CPUs with native bf16 (AVX512-BF16/AMX):
the report states whether this CPU has it. Also counted, from one profiled step: aten operator calls (all levels).

Writes benchmarks/train_step_results.json and replaces the "Training step (CPU)" section of BENCHMARKS.md.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmark import load_official_module, machine_info, replace_section  # benchmarks/benchmark.py, beside this file

from modeling_mirnet import MIRNetConfig, MIRNetModel
from modeling_mirnet.inference import cpu_has_fast_bf16
from modeling_mirnet.losses import enhancement_loss

HERE = Path(__file__).resolve().parent
BENCHMARKS_MD = HERE.parent / "BENCHMARKS.md"
START, END = "<!-- train-step:start -->", "<!-- train-step:end -->"
# the configs of the CPU budget study (train/configs/cpu_budget/): channels x RRG x MRB
DEFAULT_CONFIGS = ["64x3x2", "32x3x2", "32x2x2", "64x1x1", "16x3x2", "32x1x1"]


def build(which: str, features: int, rrg: int, mrb: int, official_root: str | None):
    torch.manual_seed(0)
    if which == "official":
        return load_official_module(official_root).MIRNet(n_feat=features, n_RRG=rrg, n_MSRB=mrb).train()
    return MIRNetModel(MIRNetConfig(num_features=features, num_rrg=rrg, num_mrb=mrb)).train()


def make_step(model, which: str, bf16: bool, batch: int, crop: int | tuple[int, int], loss_type: str = "charbonnier"):
    """A closure running one training step on fixed random crops (`crop`: a side, or (height, width))."""
    height, width = (crop, crop) if isinstance(crop, int) else crop
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 3, height, width, generator=generator) * 0.2
    y = torch.rand(batch, 3, height, width, generator=generator)
    fused = {"fused": True} if which == "ours" else {}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, **fused)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x) if which == "official" else model(x, return_dict=True).reconstruction
            loss = enhancement_loss(out, y, loss_type)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def count_ops(step) -> int:
    """aten operator calls (all nesting levels) in one step, from the torch profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def measure(which: str, spec: str, bf16: bool, args) -> dict:
    features, rrg, mrb = (int(v) for v in spec.split("x"))
    model = build(which, features, rrg, mrb, args.official)
    step = make_step(model, which, bf16, args.batch, args.crop)
    step()  # warm-up: oneDNN primitive creation
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    result = {"median_s": statistics.median(times), "seconds": times, "params": sum(p.numel() for p in model.parameters())}
    if args.count_ops and not bf16:  # counted once per model (fp32); autocast adds its casts on top
        result["aten_ops_per_step"] = count_ops(step)
    return result


def write_section(results: dict, info: dict, command: str, args) -> str:
    bf16_native = info["cpu_native_bf16"]
    lines = [
        START,
        "## Training step (CPU)",
        "",
        f"Produced in one run by `{command}`.",
        f"Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, torch {info['torch']}, {info['date']}; "
        f"native bf16 on this CPU: **{'yes' if bf16_native else 'no'}** (AVX512-BF16/AMX). Load average at start "
        f"{info['load_average_start']}, at end {info['load_average_end']}.",
        "",
        f"One step: batch {args.batch} x {args.crop}x{args.crop} random crops, forward + Charbonnier + backward + Adam; median of "
        f"{args.steps} steps after a warm-up, {args.threads} threads. Ours: channels_last, fused Adam; official: as published.",
        "",
        "| config (channels x RRG x MRB) | params | official fp32 (s) | official bf16 (s) | ours fp32 (s) | ours bf16 (s) "
        "| ours bf16 vs fp32 | ours vs official, fp32 | ours vs official, bf16 | aten ops/step official / ours (fp32) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for spec, r in results.items():
        def s(key):
            return f"{r[key]['median_s']:.2f}" if key in r else "-"

        def ratio(a, b):
            return f"{r[a]['median_s'] / r[b]['median_s']:.2f}x" if a in r and b in r else "-"

        ops = (f"{r['official_fp32'].get('aten_ops_per_step', '-')} / {r['ours_fp32'].get('aten_ops_per_step', '-')}"
               if "official_fp32" in r and "ours_fp32" in r else "-")
        lines.append(
            f"| {spec} | {r['ours_fp32']['params'] / 1e6:.2f}M | {s('official_fp32')} | {s('official_bf16')} | {s('ours_fp32')} | "
            f"{s('ours_bf16')} | {ratio('ours_fp32', 'ours_bf16')} | {ratio('official_fp32', 'ours_fp32')} | "
            f"{ratio('official_bf16', 'ours_bf16')} | {ops} |"
        )
    lines += ["", "Raw numbers: `benchmarks/train_step_results.json`.", END]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", help="checkout of github.com/swz30/MIRNet (omit to time ours only)")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="CHANNELSxRRGxMRB, e.g. 32x1x1")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-count-ops", dest="count_ops", action="store_false")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info("cpu")
    info["cpu_native_bf16"] = cpu_has_fast_bf16()
    results = {}
    for spec in args.configs:
        results[spec] = {}
        for which in (["official"] if args.official else []) + ["ours"]:
            for bf16 in (False, True):
                key = f"{which}_{'bf16' if bf16 else 'fp32'}"
                results[spec][key] = measure(which, spec, bf16, args)
                print(f"{spec} {key}: {results[spec][key]['median_s']:.3f} s/step", flush=True)
    info["load_average_end"] = [round(v, 2) for v in __import__("os").getloadavg()]
    command = "python benchmarks/train_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = write_section(results, info, command, args)
    print(section)
    if args.write:
        (HERE / "train_step_results.json").write_text(json.dumps({"machine": info, "command": command, "results": results}, indent=2) + "\n")
        replace_section(str(BENCHMARKS_MD), section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
