"""Per-image exposure of a model's outputs: mean gray level of the output over its reference's, beside PSNR.

    python scripts/exposure_report.py --model space/checkpoints/mirnet-lol --images datasets/lol_eval15

`--images` holds low/ and high/ with the same file names (the bundled eval15 copy has them). A ratio above 1 is an
output brighter than its reference. The GT-mean PSNR of `train/evaluate.py` removes exactly this error; this script
shows its direction and size per image (fp32, whole images).
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from modeling_mirnet import load_image
from modeling_mirnet.inference import Enhancer
from modeling_mirnet.metrics import mean_gray, psnr


def as_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder or Hub id")
    parser.add_argument("--images", required=True, type=Path, help="folder with low/ and high/")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    enhance = Enhancer.from_pretrained(args.model, device="cpu", precision="fp32")
    print("| image | exposure, output / reference | PSNR (dB) |\n|---|---:|---:|")
    for path in sorted((args.images / "low").iterdir()):
        output, reference = enhance(load_image(path)), load_image(args.images / "high" / path.name)
        ratio = float(mean_gray(as_tensor(output)) / mean_gray(as_tensor(reference)))
        print(f"| {path.name} | {ratio:.2f} | {psnr(output, reference):.2f} |")


if __name__ == "__main__":
    main()
