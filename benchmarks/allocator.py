#!/usr/bin/env python
"""Page faults and CPU time with glibc's default malloc vs `modeling_mirnet.memory.keep_freed_memory`.

    python benchmarks/allocator.py                      # shipped model, ~2 minutes on 2 cores
    python benchmarks/allocator.py --model PATH --no-write

PyTorch has no caching allocator on CPU, so with glibc's defaults every large activation is mapped fresh from the
kernel and unmapped when freed: one page fault per 4 KiB, every call. `keep_freed_memory()` (called by the CLI, the Space and
`train/train.py` on CPU) keeps freed blocks for reuse. Two cases, each in a fresh process with the setting off
(MIRNET_KEEP_FREED_MEMORY=0) and on: one 600x400 photo through `Enhancer` (the shipped model; bf16 where the CPU has
native bf16, else fp32) and one training step of the shipped config on 4 x 256^2 crops (bf16 autocast under the same
rule, Charbonnier, fused Adam). Reported per call/step: minor page faults and system CPU seconds (from getrusage, so
they do not depend on what else the machine runs), user CPU seconds and wall seconds (medians of `--runs` after two
warm-ups), peak RSS. Replaces the "CPU memory allocator" section of BENCHMARKS.md.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import PIL.Image
import torch

from benchmark import machine_info, publish, reset_rss_peak, rss_peak_bytes  # benchmarks/benchmark.py, beside this file
from shipped_model import PHOTO, REPO  # benchmarks/shipped_model.py
from train_step import make_step  # benchmarks/train_step.py

from modeling_mirnet import MIRNetConfig, MIRNetModel
from modeling_mirnet.inference import Enhancer, cpu_has_fast_bf16
from modeling_mirnet.memory import keep_freed_memory

START, END = "<!-- allocator:start -->", "<!-- allocator:end -->"


def worker(args) -> dict:
    """One case in this process: per-call page faults, system/user CPU seconds, wall seconds, peak RSS."""
    torch.set_num_threads(args.threads)
    bf16 = cpu_has_fast_bf16()
    keep_freed_memory()  # as the CLI, the Space and train.py do on CPU (a no-op with MIRNET_KEEP_FREED_MEMORY=0)
    if args.case == "photo":
        enhancer = Enhancer.from_pretrained(args.model, device="cpu", precision="bf16" if bf16 else "fp32")
        image = PIL.Image.open(PHOTO).convert("RGB")

        def call():
            enhancer(image)
    else:
        config = MIRNetConfig.from_pretrained(args.model)
        torch.manual_seed(0)
        model = MIRNetModel(config).train().to(memory_format=torch.channels_last)
        call = make_step(model, "ours", bf16, 4, 256)
    call(), call()
    reset_rss_peak()
    faults, system, user, wall = [], [], [], []
    for _ in range(args.runs):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        call()
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        faults.append(after.ru_minflt - before.ru_minflt)
        system.append(after.ru_stime - before.ru_stime)
        user.append(after.ru_utime - before.ru_utime)
    return {"kept": keep_freed_memory(), "bf16": bf16, "faults": statistics.median(faults),
            "system_s": statistics.median(system), "user_s": statistics.median(user), "wall_s": statistics.median(wall),
            "peak_rss_bytes": rss_peak_bytes()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO / "space" / "checkpoints" / "mirnet-lol"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", dest="write", action="store_false")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    info = machine_info("cpu")
    results = {}
    for case in ("photo", "step"):
        for kept in (False, True):
            command = [sys.executable, __file__, "--worker", "--model", args.model, "--case", case,
                       "--runs", str(args.runs), "--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                                  env={**os.environ, "MIRNET_KEEP_FREED_MEMORY": "1" if kept else "0"})
            if done.returncode != 0:
                raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
            results[(case, kept)] = json.loads(done.stdout.strip().splitlines()[-1])
            print(case, kept, results[(case, kept)], flush=True)
    if not results[("photo", True)]["kept"]:
        raise SystemExit("keep_freed_memory() changed nothing here (not glibc?): nothing to compare")
    info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    config = json.loads((Path(args.model) / "config.json").read_text())
    name = os.path.relpath(args.model, REPO) if os.path.isabs(args.model) else args.model
    precision = "bf16" if results[("photo", True)]["bf16"] else "fp32"
    lines = [
        START,
        "## CPU memory allocator",
        "",
        f"Produced in one run by `python benchmarks/allocator.py --runs {args.runs}`: `{name}` ({config['num_features']} ch x "
        f"{config['num_rrg']} RRG x {config['num_mrb']} MRB), {precision}, {args.threads} threads, each case in a fresh process "
        f"with glibc's default malloc (`MIRNET_KEEP_FREED_MEMORY=0`) and with `keep_freed_memory()` (what the CLI, the Space and "
        f"`train.py` now do on CPU). Machine: {info['cpu']}, torch {info['torch']}, {info['date']}; load average "
        f"{info['load_average_start']} -> {info['load_average_end']}. Page faults and CPU seconds come from getrusage (per "
        f"call, median of {args.runs}); wall seconds depend on what else the machine ran.",
        "",
        "| case | allocator | page faults | system CPU s | user CPU s | wall s | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    labels = {"photo": "one 600x400 photo (Enhancer)", "step": "one training step, 4 x 256^2"}
    for case in ("photo", "step"):
        for kept in (False, True):
            r = results[(case, kept)]
            lines.append(f"| {labels[case]} | {'keep_freed_memory()' if kept else 'glibc default'} | {r['faults']:,.0f} | "
                         f"{r['system_s']:.3f} | {r['user_s']:.3f} | {r['wall_s']:.3f} | {r['peak_rss_bytes'] / 2**30:.2f} GiB |")
        off, on = results[(case, False)], results[(case, True)]
        lines.append(f"| {labels[case]} | change | | | CPU (system + user): {(on['system_s'] + on['user_s']) / (off['system_s'] + off['user_s']):.2f}x | "
                     f"{on['wall_s'] / off['wall_s']:.2f}x | |")
    lines.append(END)
    publish("\n".join(lines), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
