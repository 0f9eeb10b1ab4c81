"""Paired low/high image datasets: the layout train/prepare_dataset.py writes and train.py / evaluate.py read.

The one dataset layout every script reads (what `prepare_dataset.py` writes and `push_to_hub` uploads):

    <folder or Hub dataset repo>/
        data/train-00000-of-00001.parquet
        data/validation-00000-of-00001.parquet
        data/test-00000-of-00001.parquet
        README.md                                   (dataset card)

with the columns `low` (Image: the under-exposed input), `high` (Image: the reference) and `name` (string:
the source file name). `datasets.load_dataset(folder)` reads it as a DatasetDict. A raw folder of pairs,
`<folder>/low/*.png` + `<folder>/high/*.png` with matching names (LoL's `eval15/` as distributed), is accepted
too and read as a single split.
"""

import os
from pathlib import Path

from .inference import IMAGE_SUFFIXES, looks_like_local_path

COLUMNS = ("low", "high", "name")
SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """A dataset that cannot be used: the message names the folder or file and the problem."""


def list_images(folder: Path) -> dict[str, Path]:
    """Image files directly in `folder`, keyed by their name without suffix."""
    return {p.stem: p for p in sorted(Path(folder).iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def pair_files(root: str | os.PathLike, low_dir: str = "low", high_dir: str = "high") -> list[tuple[str, Path, Path]]:
    """(name, low path, high path) for every pair in `root/low` and `root/high`, sorted by name as strings.

    Raises DataError when a folder is missing or empty, or when a file has no partner (listing the names).
    """
    root = Path(root)
    low_root, high_root = root / low_dir, root / high_dir
    for folder in (low_root, high_root):
        if not folder.is_dir():
            raise DataError(f"{folder}: missing folder (expected {root}/{low_dir}/ and {root}/{high_dir}/ with paired images)")
    lows, highs = list_images(low_root), list_images(high_root)
    if not lows:
        raise DataError(f"{low_root}: no images found")
    only_low, only_high = sorted(set(lows) - set(highs)), sorted(set(highs) - set(lows))
    if only_low or only_high:
        problems = []
        if only_low:
            problems.append(f"{len(only_low)} in {low_root} without a reference: {', '.join(only_low[:5])}")
        if only_high:
            problems.append(f"{len(only_high)} in {high_root} without an input: {', '.join(only_high[:5])}")
        raise DataError("unpaired images: " + "; ".join(problems))
    return [(name, lows[name], highs[name]) for name in sorted(lows)]


def is_pair_folder(path: str | os.PathLike) -> bool:
    """True for a raw `low/` + `high/` folder (rather than a prepared Parquet dataset)."""
    return (Path(path) / "low").is_dir() and (Path(path) / "high").is_dir()


def resolve_dataset(name_or_path: str | os.PathLike) -> Path:
    """A local folder as is; a Hub dataset id downloaded (or taken from the cache when offline) to a local folder."""
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        return Path(name)
    if looks_like_local_path(name):
        raise DataError(f"{name}: no such dataset folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, repo_type="dataset"))
    except Exception as err:  # offline, unknown repo, no access: say which and why
        raise DataError(
            f"{name}: not a local folder and cannot be fetched from the Hub ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "Pass the path of a folder written by train/prepare_dataset.py instead."
        ) from None


def load_pairs(name_or_path: str | os.PathLike, split: str | None = None):
    """A `datasets.DatasetDict` (or one split as a `Dataset`) with RGB `low`/`high` images and `name`.

    `name_or_path`: a folder written by prepare_dataset.py, a Hub dataset id in the same layout, or a raw
    `low/` + `high/` folder (read as the single split "test").
    """
    import datasets

    folder = resolve_dataset(name_or_path)
    if is_pair_folder(folder):
        pairs = pair_files(folder)
        features = datasets.Features({"low": datasets.Image(), "high": datasets.Image(), "name": datasets.Value("string")})
        table = {"low": [str(p[1]) for p in pairs], "high": [str(p[2]) for p in pairs], "name": [p[1].name for p in pairs]}
        dataset = datasets.DatasetDict({"test": datasets.Dataset.from_dict(table, features=features)})
    else:
        # Read the Parquet files by path: `load_dataset(folder)` on a folder whose card declares `configs` keys its
        # cache on the folder's name and the card only, and can return a stale copy of another folder's data.
        files = {s: sorted(str(p) for p in folder.glob(f"data/{s}-*.parquet")) for s in SPLITS}
        files = {s: f for s, f in files.items() if f}
        try:
            dataset = datasets.load_dataset("parquet", data_files=files) if files else datasets.load_dataset(str(folder))
        except Exception as err:
            raise DataError(f"{name_or_path}: cannot be read as a dataset ({type(err).__name__}: {err})") from None
    for split_name, part in dataset.items():
        missing = [c for c in COLUMNS if c not in part.column_names]
        if missing:
            raise DataError(
                f"{name_or_path}: split {split_name!r} lacks column(s) {', '.join(missing)} "
                f"(has {', '.join(part.column_names)}); expected low, high, name"
            )
    dataset = dataset.cast_column("low", datasets.Image(mode="RGB")).cast_column("high", datasets.Image(mode="RGB"))
    if split is None:
        return dataset
    if split not in dataset:
        raise DataError(f"{name_or_path}: no split {split!r} (has {', '.join(dataset)})")
    return dataset[split]


def write_dataset(splits: dict, folder: str | os.PathLike) -> Path:
    """Write `{split: datasets.Dataset}` (columns low, high, name) in the layout above, image bytes embedded.

    Images backed by file paths are read into the Parquet files, so the folder stands alone (and is what
    `DatasetDict.push_to_hub` uploads).
    """
    from datasets.table import embed_table_storage

    folder = Path(folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, part in splits.items():
        embedded = part.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True).with_format(None)
        embedded.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder
