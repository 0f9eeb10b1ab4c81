"""Choose the Space's examples by a fixed rule (space/README.md) from an evaluation of the shipped model, and copy them.

    python scripts/pick_space_examples.py --results results/mirnet_lol_eval15/results.json --images datasets/lol_eval15

The rule never looks at how good MIRNet looks: 1. the eval15 photo at the median of MIRNet's per-image PSNR (a typical
result), with its reference; 2. the photo with the lowest PSNR (a hard one); 3. a well-lit photo, the brightest
eval15 reference given as the input (what the model does to a photo that needs nothing). Writes the images and
space/examples/examples.json (their order and why each is there); the app shows them in that order.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from modeling_mirnet.metrics import mean_gray

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "space" / "examples"


def mean_gray_255(path: Path) -> float:
    """The image's mean Rec.601 gray level, 0-255 (`modeling_mirnet.metrics.mean_gray`)."""
    rgb = torch.from_numpy(np.asarray(PIL.Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return 255 * float(mean_gray(rgb))


def pick(per_image: list[dict], images: Path) -> list[dict]:
    ranked = sorted(per_image, key=lambda row: row["psnr"])
    typical, hard = ranked[(len(ranked) - 1) // 2], ranked[0]
    brightest = max((p for p in (images / "high").iterdir() if p.suffix == ".png"), key=mean_gray_255)
    stem = lambda row: Path(row["name"]).stem  # noqa: E731
    return [
        {"input": f"lol_{stem(typical)}_low.png", "reference": f"lol_{stem(typical)}_high.png",
         "why": f"median of MIRNet's per-image PSNR on eval15 ({typical['psnr']:.2f} dB)"},
        {"input": f"lol_{stem(hard)}_low.png", "reference": None, "why": f"lowest PSNR on eval15 ({hard['psnr']:.2f} dB)"},
        {"input": f"well_lit_lol_{brightest.stem}.png", "reference": None,
         "why": f"well lit: the brightest eval15 reference (mean gray {mean_gray_255(brightest):.0f}) as the input"},
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="results.json written by train/evaluate.py")
    parser.add_argument("--method", default="mirnet-lol", help="the method in results.json to rank by")
    parser.add_argument("--images", type=Path, required=True, help="the evaluated folder (low/ and high/)")
    args = parser.parse_args()
    per_image = json.loads(args.results.read_text())["methods"][args.method]["images"]
    chosen = pick(per_image, args.images)
    for old in EXAMPLES.glob("*.png"):
        old.unlink()
    for row in chosen:
        if row["input"].startswith("well_lit_lol_"):
            shutil.copyfile(args.images / "high" / (row["input"].removeprefix("well_lit_lol_")), EXAMPLES / row["input"])
            continue
        name = row["input"].removeprefix("lol_").removesuffix("_low.png") + ".png"
        shutil.copyfile(args.images / "low" / name, EXAMPLES / row["input"])
        if row["reference"]:
            shutil.copyfile(args.images / "high" / name, EXAMPLES / row["reference"])
    (EXAMPLES / "examples.json").write_text(json.dumps({"rule": "scripts/pick_space_examples.py", "results": str(args.results),
                                                        "examples": chosen}, indent=1) + "\n")
    for row in chosen:
        print(f"{row['input']}: {row['why']}")


if __name__ == "__main__":
    main()
