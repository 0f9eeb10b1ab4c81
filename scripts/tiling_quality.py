"""How much does tiled inference change the result? PSNR of tiled vs whole-image output on real photos.

    python scripts/tiling_quality.py --images datasets/lol_eval15/low --model space/checkpoints/mirnet-lol

MIRNet pools globally (channel attention, SKFF), so a tile on its own sees other statistics than the whole image.
`MIRNetModel.enhance` therefore records the global pools on the whole image downscaled into one tile and replays
them in every tile (`shared_statistics=True`, the default). For each tile size / overlap this prints the mean and
worst PSNR (dB, uint8 RGB) between the tiled and the whole-image outputs, with shared statistics and with each tile's
own (`shared_statistics=False`, as before), and the mean PSNR of each against the references in --references.
Without --model a default-config model with seeded random weights is used, which measures the
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
    parser.add_argument("--references", type=Path, help="folder of reference images with the same names (optional)")
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
    cases = [(tile, overlap, shared) for tile, overlap in settings for shared in (True, False)]
    paths = sorted(args.images.iterdir())[: args.limit]
    scores = {case: [] for case in cases}
    against_reference = {case: [] for case in [None] + cases}

    def tiled(image, tile, overlap, shared):
        inputs = enhance.preprocess(image)
        output = enhance.model.enhance(inputs["pixel_values"], tile_size=tile, tile_overlap=overlap, shared_statistics=shared)
        return enhance.processor.post_process_image_to_image(output, inputs["original_sizes"])[0]

    start = time.perf_counter()
    for path in paths:
        image = load_image(path)
        reference = load_image(args.references / path.name) if args.references else None
        whole = enhance(image)
        if reference is not None:
            against_reference[None].append(psnr(whole, reference))
        for case in cases:
            output = tiled(image, *case)
            scores[case].append(psnr(output, whole))
            if reference is not None:
                against_reference[case].append(psnr(output, reference))
        print(f"{path.name}: " + ", ".join(f"{t}/{o} {'shared' if s else 'own'}: {scores[(t, o, s)][-1]:.2f} dB"
                                           for t, o, s in cases), flush=True)
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    print(f"\nmodel: {source}; images: {len(paths)} from {args.images}; {time.perf_counter() - start:.0f} s")
    if args.references:
        print(f"whole image vs references: {mean(against_reference[None]):.2f} dB")
    print("| tile / overlap | statistics | mean PSNR tiled vs whole (dB) | worst (dB) |"
          + (" mean PSNR vs references (dB) |" if args.references else "")
          + "\n|---|---|---:|---:|" + ("---:|" if args.references else ""))
    for (tile, overlap, shared), values in scores.items():
        row = f"| {tile} / {overlap} | {'shared (default)' if shared else 'own per tile'} | {mean(values):.2f} | {min(values):.2f} |"
        if args.references:
            row += f" {mean(against_reference[(tile, overlap, shared)]):.2f} |"
        print(row)
    if args.json:
        args.json.write_text(json.dumps({
            "model": source, "images": [p.name for p in paths],
            "scores": {f"{t}/{o}/{'shared' if s else 'own'}": v for (t, o, s), v in scores.items()},
            "against_references": {("whole" if c is None else f"{c[0]}/{c[1]}/{'shared' if c[2] else 'own'}"): v
                                   for c, v in against_reference.items() if v},
        }, indent=2))

if __name__ == "__main__":
    main()
