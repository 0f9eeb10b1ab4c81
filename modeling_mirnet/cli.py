"""`mirnet-enhance`: enhance low-light images (files or folders) with a MIRNet checkpoint.

    mirnet-enhance photo.jpg holiday/ -o enhanced/ --model org/mirnet-lol --tile 512

A file named on the command line is written to OUT/<name>.png; images found in a folder keep their place below it
(holiday/day1/a.jpg -> OUT/day1/a.png with -r). Outputs are 8-bit RGB PNGs. Two inputs that would write the same
output (a.jpg and a.png, or a/x.jpg and b/x.jpg given as folders) stop the run before anything is written.
Unreadable files are reported and skipped; the run goes on. Existing outputs are never overwritten unless
--overwrite is given.
Exit status: 0 when every image was enhanced, 1 when some were skipped, 2 on a usage or model error.
"""

import argparse
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

from .image_processing_mirnet import ImageLoadError
from .inference import (
    DEFAULT_TILE_OVERLAP,
    IMAGE_SUFFIXES,
    PRECISIONS,
    DeviceError,
    Enhancer,
    ModelLoadError,
    OutOfMemory,
    pick_device,  # noqa: F401  (re-exported: train/evaluate.py imports it from here)
)

PROG = "mirnet-enhance"


def collect_inputs(paths: list[str], recursive: bool = False) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(input file, output path relative to the output folder) for each file named directly (<name>.png) and each
    image file inside a named folder (its path below that folder, as .png); and a message for each missing path."""
    jobs, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            files = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            jobs += [(p, p.relative_to(path).with_suffix(".png")) for p in files]
        elif path.is_file():
            jobs.append((path, Path(path.name).with_suffix(".png")))
        else:
            problems.append(f"{raw}: no such file or folder")
    return jobs, problems


def plan_outputs(jobs: list[tuple[Path, Path]], output_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(input, output file) pairs, an input named twice counted once; and a message for each output file that
    two different inputs would write (so nothing is lost to a name clash)."""
    targets: dict[str, tuple[Path, list[Path]]] = {}
    for source, relative in jobs:
        target = output_dir / relative
        _, sources = targets.setdefault(os.path.normcase(os.path.abspath(target)), (target, []))
        if all(not os.path.samefile(source, seen) for seen in sources):
            sources.append(source)
    plan = [(sources[0], target) for target, sources in targets.values() if len(sources) == 1]
    clashes = [
        f"{target} would be written from {' and '.join(map(str, sources))}"
        for target, sources in targets.values() if len(sources) > 1
    ]
    return plan, clashes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    parser.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    parser.add_argument(
        "--model",
        default=os.environ.get("MIRNET_MODEL"),
        help="model folder or Hub id (default: $MIRNET_MODEL); Hub ids work offline once cached",
    )
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--dtype", default="auto", choices=PRECISIONS,
        help="precision of the forward pass (autocast; the weights stay fp32): auto = bf16 on a GPU or on a CPU "
        "with native bf16, else fp32 (default auto)",
    )
    parser.add_argument(
        "--compile", action="store_true",
        help="torch.compile the network first (one to two minutes per image size on 2 CPU cores, then faster): worth it "
        "for many photos of one size, or large photos with --tile (needs a C++ compiler on CPU)",
    )
    parser.add_argument("--tile", type=int, default=None, help="tile size for large photos, e.g. 512 (default: whole image)")
    parser.add_argument(
        "--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP,
        help=f"overlap between tiles in pixels (default {DEFAULT_TILE_OVERLAP})",
    )
    parser.add_argument("-r", "--recursive", action="store_true", help="also look inside sub-folders")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return parser


def error(message: str) -> int:
    """Report a usage or model error; the exit status for it."""
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.model:
        return error("no model given: pass --model FOLDER_OR_HUB_ID or set MIRNET_MODEL")
    jobs, problems = collect_inputs(args.inputs, args.recursive)
    for message in problems:
        print(f"skipped: {message}", file=sys.stderr)
    if not jobs:
        print(f"{PROG}: no images to process", file=sys.stderr)
        return 2 if not problems else 1
    output_dir = Path(args.output)
    plan, clashes = plan_outputs(jobs, output_dir)
    if clashes:
        for message in clashes:
            print(f"{PROG}: {message}", file=sys.stderr)
        return error("two inputs would write the same output (listed above): rename one, or enhance them in separate runs")
    try:
        enhancer = Enhancer.from_pretrained(args.model, device=args.device, precision=args.dtype, compile=args.compile)
    except (DeviceError, ModelLoadError) as err:
        return error(str(err))
    print(f"{PROG}: {len(plan)} image(s) with {args.model} on {enhancer.describe()}", file=sys.stderr)

    done, skipped = 0, len(problems)
    bar = tqdm(plan, desc="enhancing", unit="image")
    for path, target in bar:
        if target.exists() and not args.overwrite:
            tqdm.write(f"skipped: {path}: {target} already exists (use --overwrite to replace it)", file=sys.stderr)
            skipped += 1
            continue
        if target.exists() and os.path.samefile(target, path):
            tqdm.write(f"skipped: {path}: output would overwrite the input", file=sys.stderr)
            skipped += 1
            continue
        try:
            enhanced = enhancer(path, args.tile, args.tile_overlap, on_tile=lambda n, total: bar.set_postfix_str(
                f"tile {n}/{total}" if total > 1 else ""))
        except ImageLoadError as err:
            tqdm.write(f"skipped: {err}", file=sys.stderr)
            skipped += 1
            continue
        except OutOfMemory as err:
            hint = f" (--tile {err.suggested_tile})" if err.suggested_tile else ""
            tqdm.write(f"skipped: {path}: {err}{hint}", file=sys.stderr)
            skipped += 1
            continue
        except ValueError as err:  # bad --tile / --tile-overlap for this model: the same for every image
            bar.close()
            return error(str(err))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial")
        enhanced.save(tmp, format="PNG")
        os.replace(tmp, target)  # never leave a half-written output behind
        done += 1
    bar.close()
    print(f"enhanced {done} image(s) into {output_dir}" + (f", skipped {skipped}" if skipped else ""))
    return 0 if skipped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
