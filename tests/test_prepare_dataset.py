"""train/prepare_dataset.py on generated LoL- and SICE-shaped folders, and --webp-quality's lossy copy."""

import io
import re
import shutil
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pyarrow.parquet as pq
import pytest

from modeling_mirnet import data as data_utils
from modeling_mirnet import metrics

TRAIN = Path(__file__).resolve().parents[1] / "train"

from helpers import load_script

prep = load_script("train/prepare_dataset.py", "prepare_dataset")


def image(seed: int, size=(24, 16), level: int = 255) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, level + 1, (size[1], size[0], 3), dtype=np.uint8))


def make_lol(root: Path, n_train: int = 12, n_test: int = 3) -> Path:
    for part, count, offset in (("our485", n_train, 1), ("eval15", n_test, 100)):
        for sub in ("low", "high"):
            (root / part / sub).mkdir(parents=True, exist_ok=True)
        for i in range(offset, offset + count):
            image(i, level=40).save(root / part / "low" / f"{i}.png")
            image(1000 + i).save(root / part / "high" / f"{i}.png")
    return root


def save_jpeg(img: PIL.Image.Image, path: Path, exposure: float | None = None) -> None:
    exif = PIL.Image.Exif()
    if exposure is not None:
        exif.get_ifd(0x8769)[33434] = exposure
    img.save(path, "JPEG", quality=95, exif=exif)


def make_sice(root: Path, n: int = 5, with_exif: bool = True, big: int | None = None) -> Path:
    """Sequences 1..n with three exposures each; the darkest is named 'b.JPG' so name order cannot find it."""
    (root / "Label").mkdir(parents=True)
    for seq in range(1, n + 1):
        folder = root / str(seq)
        folder.mkdir()
        size = (big, big * 2 // 3) if big and seq == 1 else (24, 16)
        for name, brightness, exposure in (("a", 0.5, 1 / 60), ("b", 0.1, 1 / 500), ("c", 1.0, 1 / 15)):
            level = np.full((size[1], size[0], 3), int(200 * brightness), dtype=np.uint8)
            save_jpeg(PIL.Image.fromarray(level), folder / f"{name}.JPG", exposure if with_exif else None)
        save_jpeg(image(seq, size), root / "Label" / f"{seq}.JPG")
    return root


def test_lol_uses_the_seed_split_and_round_trips(tmp_path):
    root = make_lol(tmp_path / "LOL")
    out = tmp_path / "lol"
    assert prep.main(["lol", "--root", str(root), "--output", str(out), "--num-train", "7"]) == 0
    loaded = datasets.load_dataset(str(out), download_mode="force_redownload")  # the folder as users load it
    assert {s: len(loaded[s]) for s in loaded} == {"train": 7, "validation": 5, "test": 3}
    # file names sorted as strings, as the study's sorted(os.listdir()) did
    assert list(loaded["train"]["name"]) == ["1.png", "10.png", "11.png", "12.png", "2.png", "3.png", "4.png"]
    assert list(loaded["validation"]["name"]) == ["5.png", "6.png", "7.png", "8.png", "9.png"]
    # stored byte for byte: pixels equal the source files
    example = data_utils.load_pairs(out, "train")[1]
    assert example["name"] == "10.png"
    assert np.array_equal(np.asarray(example["low"]), np.asarray(PIL.Image.open(root / "our485" / "low" / "10.png")))
    assert np.array_equal(np.asarray(example["high"]), np.asarray(PIL.Image.open(root / "our485" / "high" / "10.png")))
    card = (out / "README.md").read_text()
    assert "config_name: default" in card and "path: data/validation-*" in card and "--num-train 7" in card


def test_same_named_datasets_never_share_a_cache(tmp_path):
    """`datasets` caches a carded folder by its name; load_pairs must read each folder's own files."""
    for count in (2, 3):
        root = make_lol(tmp_path / f"raw{count}", n_test=count)
        prep.prepare_lol(root, tmp_path / f"run{count}" / "lol", test_only=True)
        assert len(data_utils.load_pairs(tmp_path / f"run{count}" / "lol", "test")) == count


def test_lol_test_only_writes_eval15(tmp_path, capsys):
    root = make_lol(tmp_path / "LOL")
    shutil.rmtree(root / "our485")  # as in shared/data/lol: eval15 only
    out = tmp_path / "lol"
    assert prep.main(["lol", "--root", str(root), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "our485: missing folder" in err and "--test-only" in err and not out.exists()
    assert prep.prepare_lol(root, out, test_only=True) == {"test": 3}
    assert sorted(p.name for p in (out / "data").iterdir()) == ["test-00000-of-00001.parquet"]
    assert list(data_utils.load_pairs(out, "test")["name"]) == ["100.png", "101.png", "102.png"]
    card = (out / "README.md").read_text()  # called from Python: the card still shows the equivalent command
    assert "path: data/test-*" in card and "data/train-*" not in card and "lol --root" in card and "--test-only" in card


def test_sice_picks_the_lowest_exposure_and_splits_like_lol(tmp_path):
    root = make_sice(tmp_path / "SICE", n=10)
    out = tmp_path / "sice"
    # 10 sequences: test max(1, round(10*15/500)) = 1, validation round(10*185/500) = 4, train the other 5
    assert prep.prepare_sice(root, out) == {"train": 5, "validation": 4, "test": 1}
    train = data_utils.load_pairs(out, "train")
    assert list(train["name"]) == ["1/b.JPG", "2/b.JPG", "3/b.JPG", "4/b.JPG", "5/b.JPG"]  # numeric order, shortest exposure
    assert list(data_utils.load_pairs(out, "test")["name"]) == ["10/b.JPG"]  # 10 after 9: not string order
    low = np.asarray(train[0]["low"], dtype=float).mean()
    assert abs(low - 20) < 3  # the darkest exposure's pixels (level 20), not another one's (100, 200)


def test_sice_without_exif_falls_back_to_luminance(tmp_path):
    root = make_sice(tmp_path / "SICE", n=3, with_exif=False)
    assert prep.exposure_time(root / "1" / "a.JPG") is None
    assert prep.lowest_exposure(sorted((root / "1").iterdir())).name == "b.JPG"
    # one image of the sequence without EXIF: luminance decides, whatever the others record
    mixed = make_sice(tmp_path / "SICE_mixed", n=3)
    save_jpeg(PIL.Image.new("RGB", (24, 16), (250, 250, 250)), mixed / "1" / "d.JPG", exposure=1 / 8000)
    save_jpeg(PIL.Image.new("RGB", (24, 16), (5, 5, 5)), mixed / "1" / "e.JPG")
    assert prep.lowest_exposure(sorted((mixed / "1").iterdir())).name == "e.JPG"
    # EXIF decides when present, even against the luminance
    exif_root = make_sice(tmp_path / "SICE_exif", n=3)
    assert prep.exposure_time(exif_root / "1" / "b.JPG") == pytest.approx(1 / 500)  # PIL wrote and reads it back
    save_jpeg(PIL.Image.new("RGB", (24, 16), (250, 250, 250)), exif_root / "1" / "d.JPG", exposure=1 / 8000)
    assert prep.lowest_exposure(sorted((exif_root / "1").iterdir())).name == "d.JPG"


def test_sice_resizes_both_images_by_one_factor(tmp_path):
    root = make_sice(tmp_path / "SICE", n=3, big=300)
    out = tmp_path / "sice"
    prep.prepare_sice(root, out, max_side=120)
    first = data_utils.load_pairs(out, "train")[0]
    assert first["low"].size == first["high"].size == (120, 80)
    assert data_utils.load_pairs(out, "validation")[0]["low"].size == (24, 16)  # small images are kept as they are


def test_split_proportions_match_lol():
    counts = {k: len(v) for k, v in prep.split_like_lol(list(range(500))).items()}
    assert counts == {"train": 300, "validation": 185, "test": 15}
    counts = {k: len(v) for k, v in prep.split_like_lol(list(range(360))).items()}  # SICE Part 1's size
    assert counts == {"train": 216, "validation": 133, "test": 11}


def corrupt(path: Path) -> list[str]:
    path.write_bytes(b"not an image")
    return [str(path)]


def truncated(path: Path) -> list[str]:
    path.write_bytes(path.read_bytes()[:100])
    return [str(path)]


def mismatch(path: Path) -> list[str]:
    image(0, size=(20, 16)).save(path)
    return [str(path), "20x16", "24x16"]


def orphan(path: Path) -> list[str]:
    image(0).save(path.with_name("orphan.png"))
    return ["orphan"]


@pytest.mark.parametrize("damage", [corrupt, truncated, mismatch, orphan])
def test_bad_lol_files_are_named(tmp_path, capsys, damage):
    root = make_lol(tmp_path / "LOL")
    expected = damage(root / "eval15" / "low" / "101.png")
    out = tmp_path / "lol"
    assert prep.main(["lol", "--root", str(root), "--output", str(out), "--num-train", "7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and all(e in err for e in expected) and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".lol.partial-*"))  # nothing half-written


@pytest.mark.parametrize("where", ["Label/2.JPG", "2/a.JPG", "3/c.JPG"])
def test_bad_sice_files_are_named(tmp_path, capsys, where):
    """A corrupt label (found while writing rows), or exposure (read for EXIF), is reported by name."""
    root = make_sice(tmp_path / "SICE", n=4)
    (root / where).write_bytes(b"not an image")
    out = tmp_path / "sice"
    assert prep.main(["sice", "--root", str(root), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]  # after datasets' progress bars
    assert len(error_lines) == 1 and str(root / where) in error_lines[0] and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".sice.partial-*"))


def test_sice_size_mismatch_is_named(tmp_path, capsys):
    root = make_sice(tmp_path / "SICE", n=3)
    save_jpeg(image(0, size=(30, 20)), root / "Label" / "3.JPG")
    assert prep.main(["sice", "--root", str(root), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "size mismatch" in err and str(root / "Label" / "3.JPG") in err and "30x20" in err and "24x16" in err
    assert prep.main(["sice", "--root", str(root), "--output", str(tmp_path / "out"), "--max-side", "-1"]) == 2
    assert "--max-side -1" in capsys.readouterr().err


def test_missing_folders_are_named(tmp_path, capsys):
    root = make_lol(tmp_path / "LOL")
    (root / "our485" / "high").rename(root / "our485" / "gt")
    assert prep.main(["lol", "--root", str(root), "--output", str(tmp_path / "out")]) == 2
    assert "our485/high: missing folder" in capsys.readouterr().err
    assert prep.main(["sice", "--root", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err


def test_incomplete_sice_sequence_is_reported_or_skipped(tmp_path, capsys):
    root = make_sice(tmp_path / "SICE", n=4)
    (root / "Label" / "2.JPG").unlink()
    assert prep.main(["sice", "--root", str(root), "--output", str(tmp_path / "a")]) == 2
    assert "2 (no label" in capsys.readouterr().err
    assert prep.main(["sice", "--root", str(root), "--output", str(tmp_path / "b"), "--skip-incomplete"]) == 0
    assert "skipped 1 incomplete" in capsys.readouterr().err
    assert sum(len(s) for s in data_utils.load_pairs(tmp_path / "b").values()) == 3


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    root = make_lol(tmp_path / "LOL")
    out = tmp_path / "lol"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert prep.main(["lol", "--root", str(root), "--output", str(out), "--test-only"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "precious.txt").read_text() == "keep me"
    assert prep.main(["lol", "--root", str(root), "--output", str(out), "--test-only", "--overwrite"]) == 0
    assert not (out / "precious.txt").exists() and len(data_utils.load_pairs(out, "test")) == 3


# --webp-quality: the optional lossy copy (WebP; the report gives each split's PSNR against the originals)
REPORT_LINE = re.compile(r"^  (\w+): high \(reference\) ([\d.]+) / ([\d.]+), low \(input\) ([\d.]+) / ([\d.]+)$", re.M)


def stored_rows(out: Path, split: str) -> list[dict]:
    """The Parquet rows as written: {"low": {"bytes", "path"}, "high": {...}, "name"}, bytes not decoded."""
    return pq.read_table(out / "data" / f"{split}-00000-of-00001.parquet").to_pylist()


def is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP" and PIL.Image.open(io.BytesIO(data)).format == "WEBP"


def test_webp_quality_stores_a_lossy_copy_and_reports_how_far_it_moved(tmp_path, capsys):
    root = make_lol(tmp_path / "LOL")
    out = tmp_path / "lol_q90"
    assert prep.main(["lol", "--root", str(root), "--output", str(out), "--num-train", "7", "--webp-quality", "90"]) == 0
    printed = capsys.readouterr().out
    assert "webp quality 90" in printed and "data range 255" in printed
    reported = {m[0]: tuple(float(v) for v in m[1:]) for m in REPORT_LINE.findall(printed)}
    assert list(reported) == ["train", "validation", "test", "all"]
    # recompute: every stored image is WebP; PSNR of its decoded pixels against the original file's
    source = {"train": "our485", "validation": "our485", "test": "eval15"}
    recomputed = {}
    for split, part in source.items():
        scores = {"high": [], "low": []}
        for row in stored_rows(out, split):
            for column in ("high", "low"):
                data = row[column]["bytes"]
                assert is_webp(data), (split, row["name"], column)
                original = PIL.Image.open(root / part / column / row["name"])
                scores[column].append(metrics.psnr(PIL.Image.open(io.BytesIO(data)), original))
        recomputed[split] = scores
    recomputed["all"] = {c: [v for s in source for v in recomputed[s][c]] for c in ("high", "low")}
    for split, (high_mean, high_worst, low_mean, low_worst) in reported.items():
        high, low = recomputed[split]["high"], recomputed[split]["low"]
        assert (high_mean, high_worst, low_mean, low_worst) == pytest.approx(
            (np.mean(high), min(high), np.mean(low), min(low)), abs=0.0051  # printed to 2 decimals
        ), split
        assert np.isfinite([high_mean, low_mean]).all() and high_worst <= high_mean and low_worst <= low_mean
    # the card: quality, and the same figures as printed
    card = (out / "README.md").read_text()
    assert "WebP quality 90" in card and 'quality=90' in card and "--webp-quality 90" in card and "Files stored byte for byte" not in card
    assert "high (reference) mean" in card and "high worst" in card
    for split, (high_mean, high_worst, low_mean, low_worst) in reported.items():
        assert f"| {split} | {high_mean:.2f} | {high_worst:.2f} | {low_mean:.2f} | {low_worst:.2f} |" in card
    # it reads like any prepared dataset
    assert [e["name"] for e in data_utils.load_pairs(out, "test")] == ["100.png", "101.png", "102.png"]
    # the default is still lossless: the files themselves, so the pixels are identical
    lossless = tmp_path / "lol"
    assert prep.main(["lol", "--root", str(root), "--output", str(lossless), "--num-train", "7"]) == 0
    assert "webp quality" not in capsys.readouterr().out and "WebP" not in (lossless / "README.md").read_text()
    for split, part in source.items():
        for row in stored_rows(lossless, split):
            for column in ("high", "low"):
                path = root / part / column / row["name"]
                assert row[column]["bytes"] == path.read_bytes()
                stored = np.asarray(PIL.Image.open(io.BytesIO(row[column]["bytes"])))
                assert np.array_equal(stored, np.asarray(PIL.Image.open(path)))


def test_sice_webp_quality_encodes_the_resized_images(tmp_path, capsys):
    root = make_sice(tmp_path / "SICE", n=3, big=300)
    out = tmp_path / "sice"
    assert prep.main(["sice", "--root", str(root), "--output", str(out), "--max-side", "120", "--webp-quality", "80"]) == 0
    reported = {m[0]: m[1:] for m in REPORT_LINE.findall(capsys.readouterr().out)}
    assert list(reported) == ["train", "validation", "test", "all"]
    first = stored_rows(out, "train")[0]
    assert all(is_webp(first[c]["bytes"]) for c in ("low", "high"))
    assert PIL.Image.open(io.BytesIO(first["high"]["bytes"])).size == (120, 80)  # resized first, then encoded
    card = (out / "README.md").read_text()
    assert "WebP quality 80" in card and "--webp-quality 80" in card and "stored as PNG" not in card


@pytest.mark.parametrize("dataset", ["lol", "sice"])
@pytest.mark.parametrize("value", ["0", "101", "-5", "9.5", "high"])
def test_webp_quality_must_be_an_integer_from_1_to_100(tmp_path, capsys, dataset, value):
    with pytest.raises(SystemExit) as exit_info:
        prep.main([dataset, "--root", str(tmp_path), "--output", str(tmp_path / "out"), "--webp-quality", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--webp-quality" in err and "1" in err and "100" in err and repr(value) in err, err
    assert not (tmp_path / "out").exists()


def test_webp_quality_is_checked_from_python_too(tmp_path):
    root = make_lol(tmp_path / "LOL", n_train=2, n_test=1)
    for bad in (0, 101, 9.5, "90", True):
        with pytest.raises(data_utils.DataError, match="--webp-quality"):
            prep.prepare_lol(root, tmp_path / "out", test_only=True, webp_quality=bad)
    assert not (tmp_path / "out").exists()
