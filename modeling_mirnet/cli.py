"""`mirnet-enhance`: enhance low-light images (files or folders) with a MIRNet checkpoint.

    mirnet-enhance photo.jpg holiday/ -o enhanced/ --model org/mirnet-lol --tile-size 512

A file named on the command line is written to OUT/<name>.png; images found in a folder keep their place below it
(holiday/day1/a.jpg -> OUT/day1/a.png with -r). Outputs are 8-bit RGB PNGs. Two inputs that would write the same
output (a.jpg and a.png, or a/x.jpg and b/x.jpg given as folders) stop the run before anything is written.
Unreadable files are reported and the run goes on. Existing outputs are never overwritten unless --overwrite is
given: they are skipped, so a rerun of a killed job continues where it stopped (outputs are written atomically, a
half-written one never counts). One summary at the end: enhanced / skipped / failed, the failed files named.
A photo that is already well exposed (mean gray above 90 of 255) is enhanced too, with one note on stderr, in the
Space's words: MIRNet is made for dark photos. Files are decoded as the Space and the pipeline decode them
(`to_float_rgb`: 16-bit, palette, CMYK and EXIF-rotated photos included).

On many processes, GPUs or machines, with accelerate: every process takes its share of the photos, loads the model
on its own device and writes each output once; one progress bar counts the photos of all of them.

    accelerate launch --multi_gpu --num_processes 4 -m modeling_mirnet.cli photos/ -o enhanced/ --model org/mirnet-lol

(`--multi_gpu` is accelerate's multi-process launcher; on a machine without a GPU, or with --device cpu, the processes
run on the CPU.)

Exit status: 0 when every image was enhanced, 1 when some were skipped or failed, 2 on a usage or model error.
"""

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from .exposure import check_controls, check_exposure
from .image_processing_mirnet import ImageLoadError, load_image, to_float_rgb
from .memory import keep_freed_memory
from .metrics import well_exposed_note
from .tiling import check_tile_settings
from .inference import (
    DEFAULT_TILE_OVERLAP,
    IMAGE_SUFFIXES,
    PRECISIONS,
    DeviceError,
    Enhancer,
    ModelLoadError,
    OutOfMemory,
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
        "--precision", dest="precision", default="auto", choices=PRECISIONS,
        help="precision of the forward pass (autocast; the weights stay fp32): auto = bf16 on a GPU or on a CPU "
        "with native bf16, else fp32 (default auto)",
    )
    parser.add_argument(
        "--compile", action="store_true",
        help="torch.compile the network first (the first photo of each size compiles, later ones run faster): worth it "
        "for many photos of one size, or large photos with --tile-size (needs a C++ compiler on CPU)",
    )
    parser.add_argument("--tile-size", dest="tile_size", type=int, default=None,
                        help="tile size for large photos, e.g. 512 (default: whole image)")
    parser.add_argument(
        "--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP,
        help=f"overlap between tiles in pixels (default {DEFAULT_TILE_OVERLAP})",
    )
    parser.add_argument(
        "--brightness", type=float, default=0.0, metavar="STOPS",
        help="exposure shift on top of the model's own, in stops (e.g. -0.5 darker, 1 twice as bright in the shadows; "
        "highlights roll off rather than clip; default 0)",
    )
    parser.add_argument(
        "--exposure", type=float, default=None, metavar="STOPS",
        help="exposure-conditioned models: the exposure to render, in stops relative to the input (0 keeps its "
        "brightness, 1 twice as bright in linear light); default: the model's prediction for each photo",
    )
    parser.add_argument(
        "--strength", type=float, default=1.0,
        help="blend of the enhanced image with the input: 1 = enhanced (default), 0 = the input unchanged",
    )
    parser.add_argument("-r", "--recursive", action="store_true", help="also look inside sub-folders")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return parser


def error(message: str) -> int:
    """Report a usage or model error; the exit status for it."""
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


class SingleProcess:
    """What the CLI uses of accelerate's PartialState, for a plain run without accelerate installed."""

    num_processes, process_index, is_main_process, device = 1, 0, True, None

    @contextlib.contextmanager
    def split_between_processes(self, items):
        yield items


def process_state(device: str):
    """accelerate's PartialState (one process of `accelerate launch`, or the only one), else SingleProcess. The
    processes run on the CPU (gloo) when asked to (`--device cpu`, `accelerate launch --cpu` / ACCELERATE_USE_CPU)
    or when there is no GPU."""
    try:
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env
    except ImportError:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise SystemExit(f"{PROG}: launched on several processes, which needs accelerate: pip install accelerate") from None
        return SingleProcess()
    import torch

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or device == "cpu" or not torch.cuda.is_available())


def over_processes(state, value) -> list:
    """`value` from every process, in process order (each process gets the list); [value] for one process."""
    if state.num_processes == 1:
        return [value]
    from accelerate.utils import gather_object

    return gather_object([value])


def enhance_one(enhancer, path: Path, target: Path, args) -> tuple[str, str]:
    """Enhance `path` into `target` (written atomically): ("enhanced", note), ("skipped", why) or ("failed", why).
    The note is "" or, for a photo that is already well exposed, the sentence the Space shows (`well_exposed_note`)."""
    if target.exists() and not args.overwrite:
        return "skipped", f"{target} already exists (use --overwrite to replace it)"
    if target.exists() and os.path.samefile(target, path):
        return "skipped", "output would overwrite the input"
    try:
        image = load_image(path, enhancer.processor.max_pixels)
        enhanced = enhancer(image, args.tile_size, args.tile_overlap, brightness=args.brightness, strength=args.strength,
                            exposure=args.exposure)
    except ImageLoadError as err:
        return "failed", err.problem
    except OutOfMemory as err:
        return "failed", f"{err}" + (f" (--tile-size {err.suggested_tile})" if err.suggested_tile else "")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")  # a killed run leaves no half-written output behind
    enhanced.save(tmp, format="PNG")
    os.replace(tmp, target)
    # the pixels the model got (`to_float_rgb`, the package's one decoding, the Space's too), computed again only now
    # so they are not held while the network runs
    return "enhanced", well_exposed_note(to_float_rgb(image, enhancer.processor.max_pixels)) or ""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_controls(args.brightness, args.strength)
        if args.exposure is not None:
            check_exposure(args.exposure, 1)
    except ValueError as err:
        return error(f"--{err}")  # the message starts with the control's name
    if not args.model:
        return error("no model given: pass --model FOLDER_OR_HUB_ID or set MIRNET_MODEL")
    state = process_state(args.device)
    say = print if state.is_main_process else (lambda *a, **k: None)  # messages about the whole run: once
    jobs, problems = collect_inputs(args.inputs, args.recursive)
    for message in problems:
        say(f"failed: {message}", file=sys.stderr)
    if not jobs:
        say(f"{PROG}: no images to process", file=sys.stderr)
        return 2 if not problems else 1
    output_dir = Path(args.output)
    plan, clashes = plan_outputs(jobs, output_dir)
    if clashes:
        for message in clashes:
            say(f"{PROG}: {message}", file=sys.stderr)
        return error("two inputs would write the same output (listed above): rename one, or enhance them in separate runs")
    device = state.device if state.num_processes > 1 and args.device == "auto" else args.device  # one device per process
    try:
        enhancer = Enhancer.from_pretrained(args.model, device=device, precision=args.precision, compile=args.compile)
        if args.tile_size is not None:
            check_tile_settings(args.tile_size, args.tile_overlap, enhancer.model.config.size_divisor)
        if args.exposure is not None and not enhancer.conditioned:
            raise ValueError(f"--exposure: {args.model} was trained without exposure conditioning and renders its own "
                             "exposure; use --brightness to adjust it")
    except (DeviceError, ModelLoadError, ValueError) as err:
        return error(str(err))
    if enhancer.device.type == "cpu":
        keep_freed_memory()  # this process only enhances photos: reuse freed activations instead of faulting pages in
    where = f"{state.num_processes} processes, each" if state.num_processes > 1 else "one process"
    say(f"{PROG}: {len(plan)} image(s) with {args.model}, {where} on {enhancer.describe()}", file=sys.stderr)

    # Every process takes its contiguous share of the plan and they advance in rounds of one photo each, so the main
    # process's bar counts the photos of all of them (one small gather per round).
    with state.split_between_processes(plan) as share:
        share = list(share)
    rounds = math.ceil(len(plan) / state.num_processes)
    bar = tqdm(total=len(plan), desc="enhancing", unit="image", disable=not state.is_main_process)
    enhanced, skipped, failed = 0, 0, []
    started = time.perf_counter()
    for i in range(rounds):
        if i < len(share):
            path, target = share[i]
            outcome, why = enhance_one(enhancer, path, target, args)
            enhanced += outcome == "enhanced"
            skipped += outcome == "skipped"
            if outcome == "failed":
                failed.append(f"{path}: {why}")
            if why:  # once per file: a failure, a skip, or the well-exposed note of an enhanced photo
                tqdm.write(f"{'note' if outcome == 'enhanced' else outcome}: {path}: {why}", file=sys.stderr)
        bar.update(sum(over_processes(state, int(i < len(share)))))
    bar.close()
    seconds = time.perf_counter() - started
    totals = over_processes(state, (enhanced, skipped, failed))
    enhanced, skipped = sum(t[0] for t in totals), sum(t[1] for t in totals)
    failed = problems + [f for t in totals for f in t[2]]
    summary = f"enhanced {enhanced} image(s) into {output_dir} in {seconds:.1f} s"
    if skipped:
        summary += f", skipped {skipped} (already written)"
    if failed:
        summary += f", failed {len(failed)}: " + "; ".join(failed)
    say(summary)
    if state.num_processes > 1:  # leave together, the process group shut down (a rank exiting alone can abort in gloo)
        state.wait_for_everyone()
        state.destroy_process_group()
    return 0 if not skipped and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
