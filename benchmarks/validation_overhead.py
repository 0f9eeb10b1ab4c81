#!/usr/bin/env python
"""How much validation costs beyond the model's own forward passes: the scoring loop of train.py / evaluate.py.

    python benchmarks/validation_overhead.py --dataset data/lol --split validation      # the 145 LoL validation pairs

Three timings over the same pairs, one process, `--threads` threads, a small model where the overhead shows
(default: 8 channels, 1 RRG x 1 MRB, random weights):
- forward: the model's forward passes alone (batch 1, no_grad), inputs already tensors;
- score_pairs: `modeling_mirnet.evaluation.score_pairs` (what validation runs now): forward + quantize + PSNR,
  GT-mean PSNR, SSIM in float32 on the device + loss, on pairs decoded once;
- per-image PIL path (what validation ran before): image processor -> forward -> post-process to PIL -> float64
  PSNR and SSIM (`modeling_mirnet.metrics.psnr/ssim`).
The ratios to `forward` are the overhead. Prints a Markdown table; nothing is written.
"""

import argparse
import sys
import time

import torch

from modeling_mirnet import MIRNetConfig, MIRNetImageProcessor, MIRNetModel
from modeling_mirnet.data import load_pairs
from modeling_mirnet.evaluation import decode_pairs, score_pairs
from modeling_mirnet.inference import autocast_context
from modeling_mirnet.metrics import psnr, ssim


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--rrg", type=int, default=1)
    parser.add_argument("--mrb", type=int, default=1)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    rows = load_pairs(args.dataset, args.split)
    pairs = decode_pairs(rows, args.limit)
    torch.manual_seed(0)
    model = MIRNetModel(MIRNetConfig(num_features=args.features, num_rrg=args.rrg, num_mrb=args.mrb)).eval()
    processor = MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    inputs = [low[None].float().div(255) for low in pairs.lows]

    with torch.no_grad(), autocast_context("cpu", dtype):
        model(inputs[0])  # warm-up
        start = time.perf_counter()
        for x in inputs:
            model(x)
        forward = time.perf_counter() - start

    start = time.perf_counter()
    score_pairs(model, pairs, batch_size=1, autocast_dtype=dtype, loss_type="charbonnier")
    scored = time.perf_counter() - start

    start = time.perf_counter()
    with torch.no_grad(), autocast_context("cpu", dtype):
        for i in range(len(pairs)):
            low, high = rows[i]["low"], rows[i]["high"]
            batch = processor(low)
            out = model(batch["pixel_values"]).reconstruction
            image = processor.post_process_image_to_image(out, [low.size[::-1]])[0]
            psnr(image, high), ssim(image, high)
    per_image = time.perf_counter() - start

    n = len(pairs)
    print(f"{n} pairs of {args.dataset} ({args.split}), {args.features} ch x {args.rrg} RRG x {args.mrb} MRB, {args.precision}, "
          f"{args.threads} threads\n")
    print("| | seconds | per image | vs forward |\n|---|---:|---:|---:|")
    for name, seconds in (("forward passes only", forward), ("score_pairs (now)", scored), ("per-image PIL path (before)", per_image)):
        print(f"| {name} | {seconds:.1f} | {seconds / n:.3f} | {seconds / forward:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
