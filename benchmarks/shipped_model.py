#!/usr/bin/env python
"""Speed and memory of the shipped checkpoint on CPU, through the path users take (modeling_mirnet.inference.Enhancer).

    python benchmarks/shipped_model.py                                    # space/checkpoints/mirnet-lol, ~3 minutes
    python benchmarks/shipped_model.py --model PATH --no-write

For fp32 and bf16 autocast (bf16 only where the CPU has native bf16, else it says so), eager and torch.compile'd
(`Enhancer(compile=True)`; `--no-compile` leaves those out), each in a fresh process: seconds for a 600x400 photo
(median of `--runs` after a first call, which also compiles; whole image) and for a 4000x3000 (12 MP) photo enhanced in
tiles of each `--tiles` size with 32 px overlap (one run, every tile, the shared-statistics pass included; for compiled runs the compile time, first tile minus the median
tile, is reported apart; each process starts with an empty inductor cache, so these are first-run compile times), each case's peak RSS (VmHWM), and the mean PSNR of the 15 bundled eval15 photos against
their references in that precision. Inputs are eval15 `1.png` (600x400) and the same photo resized to 4000x3000.
Replaces the "Shipped model (CPU)" section of BENCHMARKS.md.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import PIL.Image
import torch

from benchmark import machine_info, replace_section, reset_rss_peak, rss_peak_bytes  # benchmarks/benchmark.py, beside this file

from modeling_mirnet.inference import Enhancer, cpu_has_fast_bf16
from modeling_mirnet.metrics import psnr

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
START, END = "<!-- shipped-model:start -->", "<!-- shipped-model:end -->"
PHOTO = REPO / "datasets" / "lol_eval15" / "low" / "1.png"


def worker(args) -> dict:
    """One case in this process: prints a JSON line with seconds and peak RSS (and eval15 PSNR for 600x400)."""
    torch.set_num_threads(args.threads)
    enhancer = Enhancer.from_pretrained(args.model, device="cpu", precision=args.precision, compile=args.compiled)
    image = PIL.Image.open(PHOTO).convert("RGB")
    if args.case == "12mp":
        image = image.resize((4000, 3000), PIL.Image.BICUBIC)
    reset_rss_peak()
    result = {"precision": enhancer.precision, "compiled": args.compiled}
    if args.case == "600x400":
        start = time.perf_counter()
        enhancer(image)  # warm-up (and compilation)
        result["first_call_s"] = time.perf_counter() - start
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            enhancer(image)
            times.append(time.perf_counter() - start)
        scores = [psnr(enhancer(path), PIL.Image.open(REPO / "datasets" / "lol_eval15" / "high" / path.name).convert("RGB"))
                  for path in sorted(PHOTO.parent.glob("*.png"))]
        result["eval15_psnr"] = statistics.mean(scores)
    else:
        stamps = [time.perf_counter()]
        enhancer(image, tile_size=args.tile_size, tile_overlap=32, on_tile=lambda done, total: stamps.append(time.perf_counter()))
        tiles = [b - a for a, b in zip(stamps, stamps[1:])]  # the first includes the shared-statistics pass
        times = [stamps[-1] - stamps[0]]
        result.update(tiles=len(tiles), first_tile_s=tiles[0], median_tile_s=statistics.median(tiles),
                      compile_s=tiles[0] - statistics.median(tiles) if args.compiled else 0.0)
    return {**result, "seconds": times, "median_s": statistics.median(times), "peak_rss_bytes": rss_peak_bytes()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO / "space" / "checkpoints" / "mirnet-lol"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiles", default="512,1024", help="tile sizes for the 12 MP photo, comma-separated")
    parser.add_argument("--tile-size", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", dest="write", action="store_false")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="leave out the torch.compile cases")
    parser.add_argument("--variants", help="only these, e.g. fp32,bf16,bf16+compile (default: every precision, eager "
                                           "and compiled)")
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    info = machine_info("cpu")
    info["cpu_native_bf16"] = cpu_has_fast_bf16()
    precisions = ["fp32"] + (["bf16"] if info["cpu_native_bf16"] else [])
    variants = [(p, False) for p in precisions] + ([(p, True) for p in precisions] if args.compile else [])
    if args.variants:
        wanted = args.variants.split(",")
        variants = [(p, c) for p, c in variants if p + ("+compile" if c else "") in wanted]
    tiles = [int(t) for t in args.tiles.split(",")]
    results = {}
    for precision, compiled in variants:
        for case, tile in [("600x400", 0)] + [("12mp", t) for t in tiles]:
            key = f"{case}{tile or ''}_{precision}" + ("_compiled" if compiled else "")
            command = [sys.executable, __file__, "--worker", "--model", args.model, "--case", case, "--precision", precision,
                       "--runs", str(args.runs), "--threads", str(args.threads), "--tile-size", str(tile)] + (["--compiled"] if compiled else [])
            with tempfile.TemporaryDirectory() as cache:  # a cold inductor cache: compile times are first-run times
                done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                                      env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
            if done.returncode != 0:
                raise SystemExit(f"{key} failed:\n{done.stderr[-3000:]}")
            results[key] = json.loads(done.stdout.strip().splitlines()[-1])
            print(key, results[key]["median_s"], flush=True)
    info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    config = json.loads((Path(args.model) / "config.json").read_text())
    name = os.path.relpath(args.model, REPO) if os.path.isabs(args.model) else args.model
    lines = [
        START,
        "## Shipped model (CPU)",
        "",
        f"`{name}` ({config['num_features']} channels, {config['num_rrg']} RRG x {config['num_mrb']} MRB), through "
        "`modeling_mirnet.inference.Enhancer` (preprocess, forward, post-process to an 8-bit image), each case in a "
        f"fresh process. Produced by `{shlex.join(['python', 'benchmarks/shipped_model.py'] + (argv if argv is not None else sys.argv[1:]))}`. "
        f"Machine: {info['cpu']}, "
        f"{info['logical_cpus']} logical CPUs, torch {info['torch']}, {info['date']}; native bf16: "
        f"**{'yes' if info['cpu_native_bf16'] else 'no'}**; load average {info['load_average_start']} -> {info['load_average_end']}.",
        "",
        "| precision | 600x400 photo, s (median of %d) | first call, s | peak RSS | eval15 PSNR (dB) | " % args.runs
        + " | ".join(f"12 MP photo, {t}/32 tiles, s (without compiling) | compile, s | peak RSS" for t in tiles) + " |",
        "|---|" + "---:|" * (4 + 3 * len(tiles)),
    ]
    for precision, compiled in variants:
        suffix = "_compiled" if compiled else ""
        small = results[f"600x400_{precision}{suffix}"]
        label = precision + (" + torch.compile" if compiled else "")
        row = (f"| {label} | {small['median_s']:.2f} | {small['first_call_s']:.1f} | {small['peak_rss_bytes'] / 2**30:.2f} GiB | "
               f"{small['eval15_psnr']:.3f} |")
        for t in tiles:
            big = results[f"12mp{t}_{precision}{suffix}"]
            without = f" ({big['median_s'] - big['compile_s']:.1f})" if compiled else ""
            row += f" {big['median_s']:.1f}{without} | {big['compile_s']:.0f} | {big['peak_rss_bytes'] / 2**30:.2f} GiB |"
        lines.append(row)
    lines += ["", "Goals: <= 0.5 s per 600x400 photo and <= 30 s per 12 MP photo on 2 cores, within 2 GB.", END]
    section = "\n".join(lines)
    print(section)
    if args.write:
        replace_section(str(BENCHMARKS_MD), section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
