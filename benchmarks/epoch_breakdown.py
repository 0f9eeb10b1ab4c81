#!/usr/bin/env python
"""Where a training run's time went, per epoch: training, validation and checkpoint seconds from its trainer_state.json.

    python benchmarks/epoch_breakdown.py space/checkpoints/mirnet-lol/trainer_state.json --note "..."

Replaces the "Epoch breakdown" section of BENCHMARKS.md (median over the run's epochs, and the total).
"""

import argparse
import json
import statistics
from pathlib import Path

from benchmark import publish  # benchmarks/benchmark.py, beside this file

START, END = "<!-- epoch-breakdown:start -->", "<!-- epoch-breakdown:end -->"
KEYS = ("train_seconds", "first_step_seconds", "validation_seconds", "checkpoint_seconds")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", type=Path, help="trainer_state.json written by train/train.py")
    parser.add_argument("--note", default="", help="a sentence on the conditions of the run")
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args(argv)
    history = json.loads(args.state.read_text())["history"]
    validated = [h for h in history if h.get("val_psnr") is not None]
    lines = [START, "## Epoch breakdown (CPU training run)", "",
             f"From `{args.state.as_posix()}` ({len(history)} epochs, {len(validated)} validated), by "
             f"`python benchmarks/epoch_breakdown.py {args.state.as_posix()}`. {args.note}".rstrip(), "",
             "| seconds per epoch | median | min | max | total |", "|---|---:|---:|---:|---:|"]
    for key in KEYS:
        rows = validated if key == "validation_seconds" else history
        values = [h[key] for h in rows if h.get(key) is not None]
        if not values:
            lines.append(f"| {key} | not recorded by this run | | | |")
            continue
        lines.append(f"| {key}{' (validated epochs)' if key == 'validation_seconds' else ''} | {statistics.median(values):.1f} | "
                     f"{min(values):.1f} | {max(values):.1f} | {sum(values):.0f} |")
    lines.append(END)
    publish("\n".join(lines), args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
