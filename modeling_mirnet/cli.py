"""`mirnet-enhance`: enhance low-light images (files or folders) with a MIRNet checkpoint.

    mirnet-enhance photo.jpg holiday/ -o enhanced/ --model org/mirnet-lol --tile 512

Each input is written to OUT/<name>.png (16-bit and odd modes are converted to 8-bit RGB). Unreadable files are
reported and skipped; the run goes on. Existing outputs are never overwritten unless --overwrite is given.
Exit status: 0 when every image was enhanced, 1 when some were skipped, 2 on a usage or model error.
"""

import argparse
import os
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .hub import ModelLoadError, enhance_image, load_mirnet
from .image_processing_mirnet import ImageLoadError, load_image

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}


def collect_inputs(paths: list[str], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Files named directly, plus image files inside named folders; and a message for each path that is missing."""
    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            pattern = path.rglob("*") if recursive else path.iterdir()
            files += sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{raw}: no such file or folder")
    return files, problems


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"mirnet-enhance: --device {name} requested but no CUDA GPU is available")
    return torch.device(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirnet-enhance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    parser.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    parser.add_argument(
        "--model",
        default=os.environ.get("MIRNET_MODEL"),
        help="model folder or Hub id (default: $MIRNET_MODEL); Hub ids work offline once cached",
    )
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--tile", type=int, default=None, help="tile size for large photos, e.g. 512 (default: whole image)")
    parser.add_argument("--tile-overlap", type=int, default=32, help="overlap between tiles in pixels (default 32)")
    parser.add_argument("-r", "--recursive", action="store_true", help="also look inside sub-folders")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.model:
        print("mirnet-enhance: no model given: pass --model FOLDER_OR_HUB_ID or set MIRNET_MODEL", file=sys.stderr)
        return 2
    files, problems = collect_inputs(args.inputs, args.recursive)
    for message in problems:
        print(f"skipped: {message}", file=sys.stderr)
    if not files:
        print("mirnet-enhance: no images to process", file=sys.stderr)
        return 2 if not problems else 1
    device = pick_device(args.device)
    try:
        model, processor = load_mirnet(args.model, device=device, dtype=getattr(torch, args.dtype))
    except ModelLoadError as err:
        print(f"mirnet-enhance: {err}", file=sys.stderr)
        return 2
    output_dir = Path(args.output)
    output_dir.mkdir(parents=True, exist_ok=True)

    done, skipped = 0, len(problems)
    for path in tqdm(files, desc="enhancing", unit="image"):
        target = output_dir / f"{path.stem}.png"
        if target.exists() and not args.overwrite:
            tqdm.write(f"skipped: {path}: {target} already exists (use --overwrite to replace it)", file=sys.stderr)
            skipped += 1
            continue
        if target.resolve() == path.resolve():
            tqdm.write(f"skipped: {path}: output would overwrite the input", file=sys.stderr)
            skipped += 1
            continue
        try:
            image = load_image(path, processor.max_pixels)
            enhanced = enhance_image(model, processor, image, args.tile, args.tile_overlap)
        except ImageLoadError as err:
            tqdm.write(f"skipped: {err}", file=sys.stderr)
            skipped += 1
            continue
        except (RuntimeError, MemoryError) as err:
            if "memory" not in str(err).lower() and not isinstance(err, MemoryError):
                raise
            hint = "try --tile 512" if args.tile is None else "try a smaller --tile"
            tqdm.write(f"skipped: {path}: out of memory ({hint})", file=sys.stderr)
            skipped += 1
            continue
        tmp = target.with_name(f".{target.name}.partial")
        enhanced.save(tmp, format="PNG")
        os.replace(tmp, target)  # never leave a half-written output behind
        done += 1
    print(f"enhanced {done} image(s) into {output_dir}" + (f", skipped {skipped}" if skipped else ""))
    return 0 if skipped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
