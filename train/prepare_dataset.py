#!/usr/bin/env python
"""Turn the raw LoL and SICE downloads into Hub-layout datasets for train.py and evaluate.py.

    python train/prepare_dataset.py lol  --root /path/to/LOLdataset --output data/lol  [--push-to-hub org/lol]
    python train/prepare_dataset.py lol  --root ../shared/data/lol --output data/lol-test --test-only
    python train/prepare_dataset.py sice --root /path/to/SICE/Dataset_Part1 --output data/sice [--max-side 1200]

The output folder holds `data/{train,validation,test}-00000-of-00001.parquet` (columns `low`: the under-exposed
input, `high`: the reference, `name`: the source file name; image bytes embedded) and a dataset card `README.md`.
`datasets.load_dataset(OUTPUT)` reads it, and `--push-to-hub` uploads it as a dataset repo that every script here
accepts by its id.

LoL (Wei et al., 2018), as distributed: `our485/{low,high}/*.png` and `eval15/{low,high}/*.png`.
    The seed study's split: the our485 pairs in the order `sorted(os.listdir(...))` gives, i.e. file names sorted
    as strings ("1.png", "10.png", "100.png", ...); the first 300 -> train, the other 185 -> validation; the 15
    eval15 pairs -> test. Files are stored byte for byte.

SICE Part 1 (Cai et al., 2018), as distributed: numbered sequence folders `<seq>/*.JPG` (one scene at several
exposures) and `Label/<seq>.JPG` (the reference).
    Input = the lowest exposure of each sequence: the smallest EXIF ExposureTime when every image of the sequence
    has one, otherwise the lowest mean luminance. Sequences sorted by number; split in LoL's proportions
    300:185:15: n_test = max(1, round(n * 15/500)), n_validation = max(1, round(n * 185/500)) (Python's round,
    half to even), the rest train, in that order (train = the lowest numbers); at least 3 sequences are needed.
    Resizing policy: SICE photos are up to 6000x4000, far larger than LoL's 600x400; both images of a pair are
    downscaled by the same factor so the longer side is at most --max-side (default 1200; 0 keeps the full size),
    with Lanczos filtering, and stored as PNG.

Missing folders, unpaired names, unreadable images and low/high size mismatches stop the run with a message naming
the file (exit status 2). An existing non-empty --output is refused unless --overwrite is given, and the dataset is
written to a temporary folder first, so a failed run never leaves a half-written dataset or touches an old one.
"""

# ----------------------------------------------------------------------------------------------------------------
# 1. Imports
# ----------------------------------------------------------------------------------------------------------------
import argparse
import io
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_utils import DataError, list_images, pair_files, write_dataset  # noqa: E402

from modeling_mirnet.image_processing_mirnet import ImageLoadError, load_image  # noqa: E402

LOL_SPLIT = {"train": 300, "validation": 185, "test": 15}
EXPOSURE_TIME_TAG, EXIF_IFD_TAG = 33434, 0x8769


# ----------------------------------------------------------------------------------------------------------------
# 2. Checking pairs (shared by both datasets)
# ----------------------------------------------------------------------------------------------------------------
def open_checked(path: Path) -> PIL.Image.Image:
    """The fully decoded image, or DataError naming the file and the problem."""
    try:
        return load_image(path)
    except ImageLoadError as err:
        raise DataError(str(err)) from None


def check_pair(low_path: Path, high_path: Path) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """Both images decoded, and of the same size (else DataError naming both files and sizes)."""
    low, high = open_checked(low_path), open_checked(high_path)
    if low.size != high.size:
        raise DataError(
            f"size mismatch: {low_path} is {low.size[0]}x{low.size[1]} but its reference {high_path} is "
            f"{high.size[0]}x{high.size[1]}"
        )
    return low, high


# ----------------------------------------------------------------------------------------------------------------
# 3. LoL
# ----------------------------------------------------------------------------------------------------------------
def lol_splits(root: str | os.PathLike, num_train: int = LOL_SPLIT["train"], test_only: bool = False) -> dict:
    """{split: [(name, low path, high path), ...]} with the seed study's split (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected LoL's our485/ and eval15/ inside)")
    splits = {}
    if not test_only:
        if not (root / "our485").is_dir():
            raise DataError(
                f"{root / 'our485'}: missing folder (LoL's 485 training pairs); pass --test-only to write only the "
                "test split from eval15/"
            )
        # sorted(os.listdir(low folder)) order, as the seed code listed the files: full file names as strings
        pairs = sorted(pair_files(root / "our485"), key=lambda pair: pair[1].name)
        if not 0 < num_train < len(pairs):
            raise DataError(f"--num-train {num_train}: must be between 1 and {len(pairs) - 1} (our485 has {len(pairs)} pairs)")
        splits["train"], splits["validation"] = pairs[:num_train], pairs[num_train:]
    splits["test"] = pair_files(root / "eval15")
    for pairs in splits.values():
        for _, low, high in pairs:
            check_pair(low, high)
    return splits


def file_rows(pairs: list[tuple[str, Path, Path]]):
    """Rows storing the files byte for byte."""
    for name, low, high in pairs:
        yield {"low": {"bytes": low.read_bytes(), "path": low.name}, "high": {"bytes": high.read_bytes(), "path": high.name}, "name": low.name}


# ----------------------------------------------------------------------------------------------------------------
# 4. SICE
# ----------------------------------------------------------------------------------------------------------------
def exposure_time(path: Path) -> float | None:
    """EXIF ExposureTime in seconds, or None when the file does not record it (reads the header only)."""
    try:
        with PIL.Image.open(path) as image:
            exif = image.getexif()
            value = exif.get_ifd(EXIF_IFD_TAG).get(EXPOSURE_TIME_TAG, exif.get(EXPOSURE_TIME_TAG))
    except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
        raise DataError(f"{path}: not an image file PIL can read ({type(err).__name__})") from None
    try:
        return float(value) if value is not None and float(value) > 0 else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def mean_luminance(path: Path) -> float:
    """Mean of the image's L channel (the file is fully decoded by load_image, then averaged on a reduced copy)."""
    image = open_checked(path)
    image.thumbnail((512, 512))
    return float(np.asarray(image.convert("L"), dtype=np.float64).mean())


def lowest_exposure(paths: list[Path]) -> Path:
    """The darkest exposure of a sequence: by EXIF ExposureTime when all images have it, else by mean luminance."""
    times = [exposure_time(p) for p in paths]
    if all(t is not None for t in times):
        return min(zip(times, paths))[1]
    return min(paths, key=mean_luminance)


def sice_sequences(root: str | os.PathLike, skip_incomplete: bool = False) -> list[tuple[str, Path, Path]]:
    """(sequence, lowest exposure, label) for every numbered sequence of SICE Part 1, sorted by number."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected SICE Part 1: numbered sequence folders and Label/)")
    label_dirs = [d for d in root.iterdir() if d.is_dir() and d.name.lower() == "label"]
    if not label_dirs:
        raise DataError(f"{root}: no Label/ folder (SICE Part 1 keeps the reference images in Label/<sequence>.JPG)")
    labels = list_images(label_dirs[0])
    sequences = sorted((d for d in root.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    if not sequences:
        raise DataError(f"{root}: no numbered sequence folders (expected {root}/1/, {root}/2/, ...)")
    rows, incomplete = [], []
    for folder in sequences:
        exposures = list(list_images(folder).values())
        label = labels.get(folder.name)
        if not exposures or label is None:
            incomplete.append(f"{folder.name} ({'no images' if not exposures else 'no label in ' + str(label_dirs[0])})")
            continue
        rows.append((folder.name, lowest_exposure(exposures), label))
    if incomplete:
        message = f"{len(incomplete)} incomplete sequence(s): {', '.join(incomplete[:10])}"
        if not skip_incomplete:
            raise DataError(message + " (pass --skip-incomplete to leave them out)")
        print(f"warning: skipped {message}", file=sys.stderr)
    if len(rows) < 3:
        raise DataError(f"{root}: {len(rows)} usable sequence(s); at least 3 are needed for train/validation/test")
    return rows


def split_like_lol(items: list) -> dict[str, list]:
    """Train / validation / test in LoL's 300:185:15 proportions, in order."""
    total = sum(LOL_SPLIT.values())
    n_test = max(1, round(len(items) * LOL_SPLIT["test"] / total))
    n_validation = max(1, round(len(items) * LOL_SPLIT["validation"] / total))
    n_train = len(items) - n_validation - n_test
    return {"train": items[:n_train], "validation": items[n_train : n_train + n_validation], "test": items[n_train + n_validation :]}


def resized_png(image: PIL.Image.Image, size: tuple[int, int]) -> bytes:
    if image.size != size:
        image = image.resize(size, PIL.Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def target_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` scaled so its longer side is at most `max_side` (0: unchanged), aspect ratio kept."""
    width, height = size
    if not max_side or max(width, height) <= max_side:
        return size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def sice_rows(sequences: list[tuple[str, Path, Path]], max_side: int):
    """Rows with both images of each pair resized by the same factor and stored as PNG."""
    for seq, low_path, label_path in sequences:
        low, high = check_pair(low_path, label_path)
        size = target_size(low.size, max_side)
        name = f"{seq}/{low_path.name}"
        yield {"low": {"bytes": resized_png(low, size), "path": f"{seq}_low.png"}, "high": {"bytes": resized_png(high, size), "path": f"{seq}_label.png"}, "name": name}


# ----------------------------------------------------------------------------------------------------------------
# 5. Writing: temporary folder, dataset card, atomic rename
# ----------------------------------------------------------------------------------------------------------------
def check_output(output: Path, overwrite: bool, source: Path) -> None:
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise DataError(f"{output}: folder exists and is not empty; pass --overwrite to replace it")
    resolved, src = output.resolve(), source.resolve()
    if resolved == src or resolved in src.parents:
        raise DataError(f"{output}: would replace the source data in {source}; choose another --output")


def dataset_card(title: str, description: str, counts: dict[str, int], command: str) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        pretty_name=title,
        task_categories=["image-to-image"],
        tags=["low-light-image-enhancement", "image-restoration"],
        configs=[{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in counts]}],
    )
    rows = "\n".join(f"| {split} | {n} |" for split, n in counts.items())
    body = f"""# {title}

{description}

| split | pairs |
|---|---:|
{rows}

Columns: `low` (the under-exposed input image), `high` (the reference image), `name` (the source file name).

Made with the `mirnet-hf` project's `train/prepare_dataset.py`:

```bash
{command}
```

Licence: this is a repackaging of a third-party research dataset; see the original dataset's terms before use.
"""
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def generate(rows, features, cache_dir: Path, split: str):
    """`Dataset.from_generator`, re-raising a DataError from the rows (datasets wraps it in DatasetGenerationError)."""
    import datasets

    try:
        return datasets.Dataset.from_generator(rows, features=features, cache_dir=str(cache_dir), split=datasets.NamedSplit(split))
    except Exception as err:
        cause = err
        while cause is not None and not isinstance(cause, DataError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise DataError(str(cause)) from None


def write_prepared(rows_by_split: dict, output: Path, card: str, overwrite: bool) -> dict[str, int]:
    """Write the splits (generators of rows) and the card into a temporary folder, then move it to `output`."""
    import datasets

    features = datasets.Features({"low": datasets.Image(), "high": datasets.Image(), "name": datasets.Value("string")})
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        cache = staging / ".cache"  # a private Arrow cache: never a stale copy of an earlier run
        splits = {split: generate(rows, features, cache / split, split) for split, rows in rows_by_split.items()}
        write_dataset(splits, staging / "dataset")
        counts = {split: len(part) for split, part in splits.items()}
        (staging / "dataset" / "README.md").write_text(card)
        if output.exists():
            if not overwrite and any(output.iterdir()):  # checked before; re-checked in case it changed meanwhile
                raise DataError(f"{output}: folder exists and is not empty; pass --overwrite to replace it")
            shutil.rmtree(output)
        os.replace(staging / "dataset", output)
        return counts
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare(rows_by_split: dict, counts: dict, output: Path, title: str, description: str, command: str, overwrite: bool):
    return write_prepared(rows_by_split, output, dataset_card(title, description, counts, command), overwrite)


def prepare_lol(root, output, num_train: int = LOL_SPLIT["train"], test_only: bool = False, overwrite: bool = False, command: str = "") -> dict[str, int]:
    """Write LoL (see the module docstring) to `output`; returns the number of pairs per split."""
    root, output = Path(root), Path(output)
    check_output(output, overwrite, root)
    splits = lol_splits(root, num_train, test_only)
    description = (
        "LoL (LOw-Light dataset, Wei et al., BMVC 2018): 600x400 indoor photos, each a low-light shot and a "
        "normal-light reference. Split as in the seed study MIRNet-HF builds on: our485 sorted by file name as "
        "strings, the first 300 pairs train and the rest validation; eval15 is the test split. Files stored byte for byte."
    )
    counts = {split: len(pairs) for split, pairs in splits.items()}
    rows = {split: (lambda pairs=pairs: file_rows(pairs)) for split, pairs in splits.items()}
    if not command:  # called from Python: the equivalent command line
        options = ["--test-only"] if test_only else ["--num-train", str(num_train)]
        command = shlex.join(["python", "train/prepare_dataset.py", "lol", "--root", str(root), "--output", str(output), *options])
    return prepare(rows, counts, output, "LoL (low-light pairs)", description, command, overwrite)


def prepare_sice(root, output, max_side: int = 1200, skip_incomplete: bool = False, overwrite: bool = False, command: str = "") -> dict[str, int]:
    """Write SICE Part 1 (lowest exposure -> label; see the module docstring) to `output`."""
    root, output = Path(root), Path(output)
    if max_side < 0:
        raise DataError(f"--max-side {max_side}: must be a positive number of pixels, or 0 to keep the full size")
    check_output(output, overwrite, root)
    splits = split_like_lol(sice_sequences(root, skip_incomplete))
    resize = f"downscaled (Lanczos, one factor per pair) to a longer side of at most {max_side} px" if max_side else "kept at full size"
    description = (
        "SICE Part 1 (Cai et al., IEEE TIP 2018): multi-exposure sequences with a reference image per scene. Input = "
        "the lowest exposure of each sequence (smallest EXIF ExposureTime, else lowest mean luminance); reference = "
        f"Label/<sequence>. Sequences sorted by number, split in LoL's 300:185:15 proportions (of n sequences: "
        "test = max(1, round(n*15/500)), validation = max(1, round(n*185/500)), the lowest-numbered rest train). "
        f"Images {resize}, stored as PNG. `name` is `<sequence>/<input file>`."
    )
    counts = {split: len(seqs) for split, seqs in splits.items()}
    rows = {split: (lambda seqs=seqs: sice_rows(seqs, max_side)) for split, seqs in splits.items()}
    if not command:  # called from Python: the equivalent command line
        options = ["--max-side", str(max_side)] + (["--skip-incomplete"] if skip_incomplete else [])
        command = shlex.join(["python", "train/prepare_dataset.py", "sice", "--root", str(root), "--output", str(output), *options])
    return prepare(rows, counts, output, "SICE Part 1, lowest exposure (low-light pairs)", description, command, overwrite)


def push_to_hub(folder: Path, repo_id: str, private: bool = False) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset", commit_message="Add dataset (train/prepare_dataset.py)")
    return f"https://huggingface.co/datasets/{repo_id}"


# ----------------------------------------------------------------------------------------------------------------
# 6. Command line
# ----------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="dataset", required=True)
    lol = sub.add_parser("lol", help="LoL: our485 -> train/validation, eval15 -> test")
    lol.add_argument("--num-train", type=int, default=LOL_SPLIT["train"], help="our485 pairs for train (default 300; the rest validate)")
    lol.add_argument("--test-only", action="store_true", help="write only the test split from eval15/")
    sice = sub.add_parser("sice", help="SICE Part 1: lowest exposure -> Label")
    sice.add_argument("--max-side", type=int, default=1200, help="longer side after downscaling (default 1200; 0 = full size)")
    sice.add_argument("--skip-incomplete", action="store_true", help="leave out sequences without images or label (listed)")
    for p in (lol, sice):
        p.add_argument("--root", required=True, type=Path, help="the dataset as downloaded")
        p.add_argument("--output", required=True, type=Path, help="folder to write (refused if non-empty without --overwrite)")
        p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
        p.add_argument("--push-to-hub", metavar="REPO_ID", help="also upload the folder as a Hub dataset repo")
        p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = shlex.join(["python", "train/prepare_dataset.py", *argv])
    try:
        if args.dataset == "lol":
            counts = prepare_lol(args.root, args.output, args.num_train, args.test_only, args.overwrite, command)
        else:
            counts = prepare_sice(args.root, args.output, args.max_side, args.skip_incomplete, args.overwrite, command)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))
    if args.push_to_hub:
        try:
            print(f"pushed to {push_to_hub(args.output, args.push_to_hub, args.private)}")
        except Exception as err:  # noqa: BLE001 - offline, no token, no write access: the local dataset is complete regardless
            print(f"error: upload to {args.push_to_hub} failed ({type(err).__name__}: {err}); {args.output} is written", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
