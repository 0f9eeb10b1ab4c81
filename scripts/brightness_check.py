"""How the brightness control moves eval15 photos that the model leaves too dark or too bright.

    python scripts/brightness_check.py --model space/checkpoints/mirnet-lol --images datasets/lol_eval15 --photos 23:0.5,1 179:-0.5,-1

For each photo and each shift (stops): the output's mean gray over its reference's and the PSNR against the reference,
for the control (`modeling_mirnet.exposure.adjust_brightness`) and for a plain linear-light gain, and the share of
pixels each clips to white. The evidence behind the control's form (docs/usage.md, "Brightness and strength").
"""

import argparse
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from modeling_mirnet.exposure import adjust_brightness, scale_exposure
from modeling_mirnet.inference import Enhancer
from modeling_mirnet.metrics import mean_gray, psnr_batch


def as_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(PIL.Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="space/checkpoints/mirnet-lol")
    parser.add_argument("--images", type=Path, default=Path("datasets/lol_eval15"))
    parser.add_argument("--photos", nargs="+", default=["23:0.5,1", "179:-0.5,-1"], help="NAME:STOPS,STOPS...")
    args = parser.parse_args()
    enhance = Enhancer.from_pretrained(args.model, device="cpu", precision="fp32")
    print("| photo | stops | output / reference mean gray: control, plain gain | PSNR (dB): control, plain gain | clipped to white: control, plain gain |")
    print("|---|---:|---|---|---|")
    for spec in args.photos:
        name, stops = spec.split(":")
        reference = as_tensor(args.images / "high" / f"{name}.png")
        inputs = enhance.preprocess(args.images / "low" / f"{name}.png")
        height, width = reference.shape[-2:]
        output = enhance.forward(inputs["pixel_values"]).clamp(0, 1)[..., :height, :width]
        for s in [0.0, *map(float, stops.split(","))]:
            control, gain = adjust_brightness(output, s), scale_exposure(output, s)
            ratios = [float(mean_gray(x) / mean_gray(reference)) for x in (control, gain)]
            psnrs = [float(psnr_batch(x, reference)) for x in (control, gain)]
            clipped = [float((x >= 254.5 / 255).float().mean() * 100) for x in (control, gain)]
            print(f"| {name} | {s:+g} | {ratios[0]:.2f}, {ratios[1]:.2f} | {psnrs[0]:.2f}, {psnrs[1]:.2f} | "
                  f"{clipped[0]:.2f} %, {clipped[1]:.2f} % |")


if __name__ == "__main__":
    main()
