#!/usr/bin/env python
"""Turn the raw LoL and SICE downloads into Hub-layout datasets for train.py and evaluate.py.

    python train/prepare_dataset.py lol  --root /path/to/LOLdataset --output data/lol  [--push-to-hub org/lol]
    python train/prepare_dataset.py lol  --root /path/to/LOL --output data/lol-test --test-only
    python train/prepare_dataset.py sice --root /path/to/SICE/Dataset_Part1 --output data/sice [--max-side 1200]
    python train/prepare_dataset.py lol  --root /path/to/LOLdataset --output data/lol-webp95 --webp-quality 95

The output folder holds `data/{train,validation,test}-00000-of-00001.parquet` (columns `low`: the under-exposed
input, `high`: the reference, `name`: the source file name; image bytes embedded) and a dataset card `README.md`.
`datasets.load_dataset(OUTPUT)` reads it, and `--push-to-hub` uploads it as a dataset repo that every script here
accepts by its id.

LoL (Wei et al., 2018), as distributed: `our485/{low,high}/*.png` and `eval15/{low,high}/*.png`.
    The study's split: the our485 pairs in the order `sorted(os.listdir(...))` gives, i.e. file names sorted
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

Lossy copy (--webp-quality Q, either dataset; default: off, the images are stored losslessly as described above):
    for where size matters (a Hub dataset repo, less data to copy to a training machine). Every image, low and
    high, is stored as WebP at quality Q (PIL `save(format="WEBP", quality=Q)`, Q an integer 1..100) instead of the
    lossless bytes: the file itself for LoL, the resized PNG's pixels for SICE. The script prints how far the
    images moved -- PSNR of the stored WebP against those originals (dB, data range 255, RGB), the mean over the
    images and the worst, per split and over all splits, for the references (high) and the inputs (low) -- and the
    dataset card records the quality and the same figures. Scores measured on such a copy are against slightly
    altered references: compare them only with scores on the same copy.

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

from modeling_mirnet.data import DataError, list_images, pair_files, write_dataset

from modeling_mirnet.image_processing_mirnet import ImageLoadError, load_image

LOL_SPLIT = {"train": 300, "validation": 185, "test": 15}
EXPOSURE_TIME_TAG, EXIF_IFD_TAG = 33434, 0x8769
WEBP_QUALITY_RANGE = (1, 100)


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
    """{split: [(name, low path, high path), ...]} with the study's split (see the module docstring)."""
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


def webp_file_rows(pairs: list[tuple[str, Path, Path]], quality: int, moved: dict[str, list[float]]):
    """Rows storing each file's pixels as WebP at `quality`; each image's PSNR against the file goes to `moved`."""
    for name, low_path, high_path in pairs:
        low, high = check_pair(low_path, high_path)
        yield {
            "low": {"bytes": webp_bytes(low, quality, moved["low"]), "path": f"{low_path.stem}.webp"},
            "high": {"bytes": webp_bytes(high, quality, moved["high"]), "path": f"{high_path.stem}.webp"},
            "name": low_path.name,
        }


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


def resized_rgb(image: PIL.Image.Image, size: tuple[int, int]) -> PIL.Image.Image:
    if image.size != size:
        image = image.resize(size, PIL.Image.Resampling.LANCZOS)
    return image.convert("RGB")


def resized_png(image: PIL.Image.Image, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    resized_rgb(image, size).save(buffer, format="PNG")
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


def webp_sice_rows(sequences: list[tuple[str, Path, Path]], max_side: int, quality: int, moved: dict[str, list[float]]):
    """As sice_rows, but the resized pixels (what the PNG holds) stored as WebP at `quality`; PSNRs to `moved`."""
    for seq, low_path, label_path in sequences:
        low, high = check_pair(low_path, label_path)
        size = target_size(low.size, max_side)
        low, high = resized_rgb(low, size), resized_rgb(high, size)
        yield {
            "low": {"bytes": webp_bytes(low, quality, moved["low"]), "path": f"{seq}_low.webp"},
            "high": {"bytes": webp_bytes(high, quality, moved["high"]), "path": f"{seq}_label.webp"},
            "name": f"{seq}/{low_path.name}",
        }


# ----------------------------------------------------------------------------------------------------------------
# 5. The lossy copy (--webp-quality): encoding, and how far the images moved
# ----------------------------------------------------------------------------------------------------------------
def check_webp_quality(quality) -> int | None:
    """`quality` (None: lossless, the default) as an int in 1..100, else DataError."""
    low, high = WEBP_QUALITY_RANGE
    if quality is None:
        return None
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not low <= quality <= high:
        raise DataError(f"--webp-quality {quality!r}: must be an integer from {low} (smallest files) to {high} (closest to the originals)")
    return int(quality)


def webp_quality_arg(text: str) -> int:
    """argparse type for --webp-quality: an integer 1..100 (argparse reports anything else and exits with status 2)."""
    try:
        return check_webp_quality(int(text))
    except (ValueError, DataError):
        low, high = WEBP_QUALITY_RANGE
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer from {low} (smallest files) to {high} (closest to the originals)") from None


def webp_bytes(image: PIL.Image.Image, quality: int, moved: list[float]) -> bytes:
    """`image` (as RGB) encoded as WebP at `quality`; appends to `moved` the PSNR of the decoded WebP against it."""
    from modeling_mirnet.metrics import psnr

    original = image.convert("RGB")
    buffer = io.BytesIO()
    original.save(buffer, format="WEBP", quality=quality)
    data = buffer.getvalue()
    with PIL.Image.open(io.BytesIO(data)) as stored:
        moved.append(psnr(stored.convert("RGB"), original))
    return data


def psnr_summary(values: list[float]) -> tuple[float, float]:
    """(mean, worst) of per-image PSNRs in dB (inf when the images are unchanged)."""
    return float(np.mean(values)), float(min(values))


def moved_table(moved: dict[str, dict[str, list[float]]]) -> list[tuple[str, float, float, float, float]]:
    """(split, high mean, high worst, low mean, low worst) per split, then "all" (every image of every split)."""
    rows = []
    for split, columns in [*moved.items(), ("all", {c: [v for m in moved.values() for v in m[c]] for c in ("high", "low")})]:
        rows.append((split, *psnr_summary(columns["high"]), *psnr_summary(columns["low"])))
    return rows


def moved_report(quality: int, moved: dict) -> str:
    """The printed lines: PSNR of the stored images against the originals, per split and overall."""
    lines = [f"webp quality {quality}: PSNR of the stored images against the originals (dB, data range 255; mean / worst)"]
    for split, high_mean, high_worst, low_mean, low_worst in moved_table(moved):
        lines.append(f"  {split}: high (reference) {high_mean:.2f} / {high_worst:.2f}, low (input) {low_mean:.2f} / {low_worst:.2f}")
    return "\n".join(lines)


def moved_card_section(quality: int, moved: dict) -> str:
    """The dataset card's account of the lossy encoding (quality and PSNR table)."""
    rows = "\n".join(
        f"| {split} | {high_mean:.2f} | {high_worst:.2f} | {low_mean:.2f} | {low_worst:.2f} |"
        for split, high_mean, high_worst, low_mean, low_worst in moved_table(moved)
    )
    return f"""## Lossy copy: WebP quality {quality}

Every image (`low` and `high`) is stored as WebP at quality {quality} (PIL `save(format="WEBP", quality={quality})`),
not losslessly. How far the images moved: PSNR of the stored image against the original (dB, data range 255, RGB),
mean over the images and worst image. Scores measured on this copy are against slightly altered references: compare
them only with scores measured on the same copy.

| split | high (reference) mean | high worst | low (input) mean | low worst |
|---|---:|---:|---:|---:|
{rows}
"""


# ----------------------------------------------------------------------------------------------------------------
# 6. Writing: temporary folder, dataset card, atomic rename
# ----------------------------------------------------------------------------------------------------------------
def check_output(output: Path, overwrite: bool, source: Path) -> None:
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise DataError(f"{output}: folder exists and is not empty; pass --overwrite to replace it")
    resolved, src = output.resolve(), source.resolve()
    if resolved == src or resolved in src.parents:
        raise DataError(f"{output}: would replace the source data in {source}; choose another --output")


def dataset_card(title: str, description: str, counts: dict[str, int], command: str, extra: str = "") -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        pretty_name=title,
        task_categories=["image-to-image"],
        tags=["low-light-image-enhancement", "image-restoration"],
        configs=[{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in counts]}],
    )
    rows = "\n".join(f"| {split} | {n} |" for split, n in counts.items())
    extra_block = f"\n{extra}" if extra else ""  # lossless: no section, the card as before
    body = f"""# {title}

{description}

| split | pairs |
|---|---:|
{rows}

Columns: `low` (the under-exposed input image), `high` (the reference image), `name` (the source file name).
{extra_block}
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


def write_prepared(rows_by_split: dict, output: Path, card, overwrite: bool) -> dict[str, int]:
    """Write the splits (generators of rows) and the card into a temporary folder, then move it to `output`.

    `card`: the card's text, or a function returning it, called once every split is written.
    """
    import datasets

    features = datasets.Features({"low": datasets.Image(), "high": datasets.Image(), "name": datasets.Value("string")})
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        cache = staging / ".cache"  # a private Arrow cache: never a stale copy of an earlier run
        splits = {split: generate(rows, features, cache / split, split) for split, rows in rows_by_split.items()}
        write_dataset(splits, staging / "dataset")
        counts = {split: len(part) for split, part in splits.items()}
        (staging / "dataset" / "README.md").write_text(card() if callable(card) else card)
        if output.exists():
            if not overwrite and any(output.iterdir()):  # checked before; re-checked in case it changed meanwhile
                raise DataError(f"{output}: folder exists and is not empty; pass --overwrite to replace it")
            shutil.rmtree(output)
        os.replace(staging / "dataset", output)
        return counts
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare(rows_by_split: dict, counts: dict, output: Path, title: str, description: str, command: str, overwrite: bool,
            webp_quality: int | None = None, moved: dict | None = None):
    """Write the dataset; with `webp_quality`, print how far the images moved (`moved`, filled by the rows) and add
    it to the card."""
    if webp_quality is None:
        return write_prepared(rows_by_split, output, dataset_card(title, description, counts, command), overwrite)

    def card() -> str:
        return dataset_card(title, description, counts, command, moved_card_section(webp_quality, moved))

    counts = write_prepared(rows_by_split, output, card, overwrite)
    print(moved_report(webp_quality, moved))
    return counts


def prepare_lol(
    root, output, num_train: int = LOL_SPLIT["train"], test_only: bool = False, overwrite: bool = False, command: str = "",
    webp_quality: int | None = None,
) -> dict[str, int]:
    """Write LoL (see the module docstring) to `output`; returns the number of pairs per split.

    `webp_quality`: None (default) stores the files byte for byte; 1..100 stores them as lossy WebP at that quality.
    """
    root, output = Path(root), Path(output)
    webp_quality = check_webp_quality(webp_quality)
    check_output(output, overwrite, root)
    splits = lol_splits(root, num_train, test_only)
    description = (
        "LoL (LOw-Light dataset, Wei et al., BMVC 2018): 600x400 indoor photos, each a low-light shot and a "
        "normal-light reference. Split as in the study MIRNet-HF builds on: our485 sorted by file name as "
        "strings, the first 300 pairs train and the rest validation; eval15 is the test split. Files stored byte for byte."
    )
    counts = {split: len(pairs) for split, pairs in splits.items()}
    moved = {split: {"low": [], "high": []} for split in splits}  # per-image PSNRs, filled by webp_file_rows
    if webp_quality is None:
        rows = {split: (lambda pairs=pairs: file_rows(pairs)) for split, pairs in splits.items()}
    else:
        description = description.replace(
            "Files stored byte for byte.", f"Images stored as lossy WebP at quality {webp_quality} (see below), not byte for byte."
        )
        rows = {split: (lambda pairs=pairs, m=moved[split]: webp_file_rows(pairs, webp_quality, m)) for split, pairs in splits.items()}
    if not command:  # called from Python: the equivalent command line
        options = ["--test-only"] if test_only else ["--num-train", str(num_train)]
        options += ["--webp-quality", str(webp_quality)] if webp_quality is not None else []
        command = shlex.join(["python", "train/prepare_dataset.py", "lol", "--root", str(root), "--output", str(output), *options])
    return prepare(rows, counts, output, "LoL (low-light pairs)", description, command, overwrite, webp_quality, moved)


def prepare_sice(
    root, output, max_side: int = 1200, skip_incomplete: bool = False, overwrite: bool = False, command: str = "",
    webp_quality: int | None = None,
) -> dict[str, int]:
    """Write SICE Part 1 (lowest exposure -> label; see the module docstring) to `output`.

    `webp_quality`: None (default) stores the resized images as PNG; 1..100 stores them as lossy WebP at that quality.
    """
    root, output = Path(root), Path(output)
    if max_side < 0:
        raise DataError(f"--max-side {max_side}: must be a positive number of pixels, or 0 to keep the full size")
    webp_quality = check_webp_quality(webp_quality)
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
    moved = {split: {"low": [], "high": []} for split in splits}  # per-image PSNRs, filled by webp_sice_rows
    if webp_quality is None:
        rows = {split: (lambda seqs=seqs: sice_rows(seqs, max_side)) for split, seqs in splits.items()}
    else:
        description = description.replace("stored as PNG.", f"stored as lossy WebP at quality {webp_quality} (see below).")
        rows = {split: (lambda seqs=seqs, m=moved[split]: webp_sice_rows(seqs, max_side, webp_quality, m)) for split, seqs in splits.items()}
    if not command:  # called from Python: the equivalent command line
        options = ["--max-side", str(max_side)] + (["--skip-incomplete"] if skip_incomplete else [])
        options += ["--webp-quality", str(webp_quality)] if webp_quality is not None else []
        command = shlex.join(["python", "train/prepare_dataset.py", "sice", "--root", str(root), "--output", str(output), *options])
    return prepare(rows, counts, output, "SICE Part 1, lowest exposure (low-light pairs)", description, command, overwrite, webp_quality, moved)


def push_to_hub(folder: Path, repo_id: str, private: bool = False) -> str:
    from modeling_mirnet.hub import push_folder_to_hub

    push_folder_to_hub(folder, repo_id, private=private, repo_type="dataset")
    return f"https://huggingface.co/datasets/{repo_id}"


# ----------------------------------------------------------------------------------------------------------------
# 7. Command line
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
        p.add_argument(
            "--webp-quality", metavar="Q", type=webp_quality_arg, default=None,
            help="store a lossy copy: every image as WebP at quality Q (1..100); prints and records in the card how far "
            "the images moved (PSNR against the originals). Default: lossless",
        )
        p.add_argument("--push-to-hub", metavar="REPO_ID", help="also upload the folder as a Hub dataset repo")
        p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = shlex.join(["python", "train/prepare_dataset.py", *argv])
    try:
        if args.dataset == "lol":
            counts = prepare_lol(args.root, args.output, args.num_train, args.test_only, args.overwrite, command, args.webp_quality)
        else:
            counts = prepare_sice(args.root, args.output, args.max_side, args.skip_incomplete, args.overwrite, command, args.webp_quality)
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
