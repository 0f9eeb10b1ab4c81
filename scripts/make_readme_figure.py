"""The README's before/after figure: eval15 photos through the shipped model, beside their inputs and references.

    python scripts/make_readme_figure.py --model space/checkpoints/mirnet-lol --results results/mirnet_lol_eval15/results.json

Rows are chosen by the Space's rule (scripts/pick_space_examples.py), never by how good the output looks: the photo at
the median of the model's per-image PSNR, the one with the lowest, and a well-lit photo (the brightest reference given
as the input). Columns: input, MIRNet, reference; each caption gives the PSNR against the reference.
"""

import argparse
import json
import sys
from pathlib import Path

import PIL.Image
import PIL.ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pick_space_examples import pick  # noqa: E402

from modeling_mirnet.inference import Enhancer  # noqa: E402
from modeling_mirnet.metrics import psnr  # noqa: E402

TILE, CAPTION = (300, 200), 22


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="space/checkpoints/mirnet-lol")
    parser.add_argument("--results", type=Path, default=Path("results/mirnet_lol_eval15/results.json"))
    parser.add_argument("--method", default="mirnet-lol")
    parser.add_argument("--images", type=Path, default=Path("datasets/lol_eval15"))
    parser.add_argument("--output", type=Path, default=Path("docs/before_after.jpg"))
    args = parser.parse_args()
    enhance = Enhancer.from_pretrained(args.model, device="cpu", precision="auto")
    rows = []
    for example in pick(json.loads(args.results.read_text())["methods"][args.method]["images"], args.images):
        if example["input"].startswith("well_lit_lol_"):
            name = example["input"].removeprefix("well_lit_lol_")
            source = reference = PIL.Image.open(args.images / "high" / name).convert("RGB")
            title = f"well lit ({name}: its reference as the input)"
        else:
            name = example["input"].removeprefix("lol_").removesuffix("_low.png") + ".png"
            source = PIL.Image.open(args.images / "low" / name).convert("RGB")
            reference = PIL.Image.open(args.images / "high" / name).convert("RGB")
            title = f"eval15 {name} ({example['why'].split(' (')[0]})"
        output = enhance(source)
        first = "input (= reference)" if source is reference else f"input {psnr(source, reference):.1f} dB"
        rows.append((title, [(first, source), (f"MIRNet {psnr(output, reference):.1f} dB", output), ("reference", reference)]))
    width, height = 3 * TILE[0], len(rows) * (TILE[1] + 2 * CAPTION)
    figure = PIL.Image.new("RGB", (width, height), "white")
    draw = PIL.ImageDraw.Draw(figure)
    for r, (title, cells) in enumerate(rows):
        top = r * (TILE[1] + 2 * CAPTION)
        draw.text((6, top + 4), title, fill="black")
        for c, (caption, image) in enumerate(cells):
            figure.paste(image.resize(TILE, PIL.Image.Resampling.LANCZOS), (c * TILE[0], top + CAPTION))
            draw.text((c * TILE[0] + 6, top + CAPTION + TILE[1] + 4), caption, fill="black")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.output, quality=90, optimize=True)
    print(f"wrote {args.output} ({width}x{height})")


if __name__ == "__main__":
    main()
