"""How much does tiled inference change the result? PSNR of tiled vs whole-image output on real photos.

    python scripts/tiling_quality.py --images datasets/lol_eval15/low --model space/checkpoints/mirnet-lol

MIRNet pools globally (channel attention, SKFF), so each tile sees slightly different statistics than the whole
image. For each tile size / overlap this prints the mean and worst PSNR (dB, uint8 RGB) between the tiled and the
whole-image outputs. Without --model a default-config model with seeded random weights is used, which measures the
mechanism but not a trained model's sensitivity: rerun with a trained checkpoint.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from modeling_mirnet import MIRNetConfig, MIRNetModel, load_image
from modeling_mirnet.inference import Enhancer
from modeling_mirnet.metrics import psnr


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, type=Path, help="folder of test images")
    parser.add_argument("--model", help="model folder or Hub id (default: seeded random default-config model)")
    parser.add_argument("--limit", type=int, default=3, help="number of images (sorted by name)")
    parser.add_argument("--settings", default="256:32,256:64,192:32", help="tile:overlap pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        enhance = Enhancer.from_pretrained(args.model, device="cpu", precision="fp32")
        source = args.model
    else:
        torch.manual_seed(0)
        enhance = Enhancer(MIRNetModel(MIRNetConfig()).eval(), precision="fp32")
        source = "default config, random weights (seed 0)"
    settings = [tuple(map(int, s.split(":"))) for s in args.settings.split(",")]
    paths = sorted(args.images.iterdir())[: args.limit]
    scores = {s: [] for s in settings}
    start = time.perf_counter()
    for path in paths:
        image = load_image(path)
        whole = enhance(image)
        for tile, overlap in settings:
            scores[(tile, overlap)].append(psnr(enhance(image, tile, overlap), whole))
        print(f"{path.name}: " + ", ".join(f"{t}/{o}: {scores[(t, o)][-1]:.2f} dB" for t, o in settings), flush=True)
    print(f"\nmodel: {source}; images: {len(paths)} from {args.images}; {time.perf_counter() - start:.0f} s")
    print("| tile / overlap | mean PSNR tiled vs whole (dB) | worst (dB) |\n|---|---|---|")
    for (tile, overlap), values in scores.items():
        print(f"| {tile} / {overlap} | {sum(values) / len(values):.2f} | {min(values):.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"model": source, "images": [p.name for p in paths], "scores": {f"{t}/{o}": v for (t, o), v in scores.items()}}, indent=2))


if __name__ == "__main__":
    main()
