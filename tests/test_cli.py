"""`mirnet-enhance` (issue 4, points 7 and 8): processes what it can, reports what it cannot, never clobbers."""

import subprocess
import sys

import numpy as np
import PIL.Image

from modeling_mirnet.cli import main

from conftest import random_image


def make_inputs(folder):
    folder.mkdir()
    random_image(30, 44, seed=1).save(folder / "dark1.png")
    random_image(21, 16, seed=2).save(folder / "dark2.jpg")
    (folder / "notes.png").write_text("not an image")
    good = (folder / "dark1.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 3])
    (folder / "readme.txt").write_text("ignored: not an image extension")
    return folder


def test_enhances_good_files_and_skips_bad_ones(tiny_model_dir, tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    status = main([str(inputs), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)])
    captured = capsys.readouterr()
    assert status == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dark1.png", "dark2.png"]
    assert PIL.Image.open(tmp_path / "out" / "dark1.png").size == (44, 30)
    assert "notes.png: not an image file" in captured.err
    assert "cut.png: cannot decode image" in captured.err
    assert "enhanced 2 image(s)" in captured.out and "skipped 2" in captured.out


def test_tiled_and_whole_runs_write_the_same_size(tiny_model_dir, tmp_path):
    random_image(40, 70).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / "t"), "--model", str(tiny_model_dir), "--tile", "32", "--tile-overlap", "8"]) == 0
    assert PIL.Image.open(tmp_path / "t" / "a.png").size == (70, 40)


def test_existing_outputs_are_kept_unless_overwrite(tiny_model_dir, tmp_path, capsys):
    random_image(16, 16).save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"precious")
    assert main([str(tmp_path / "a.png"), "-o", str(out), "--model", str(tiny_model_dir)]) == 1
    assert (out / "a.png").read_bytes() == b"precious"
    assert "already exists" in capsys.readouterr().err
    assert main([str(tmp_path / "a.png"), "-o", str(out), "--model", str(tiny_model_dir), "--overwrite"]) == 0
    assert np.asarray(PIL.Image.open(out / "a.png")).shape == (16, 16, 3)


def test_model_and_path_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MIRNET_MODEL", raising=False)
    random_image(16, 16).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / "o")]) == 2
    assert "no model given" in capsys.readouterr().err
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "missing")]) == 2
    assert "no such model folder" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing-here"), "-o", str(tmp_path / "o"), "--model", "x"]) == 1
    assert "nothing-here: no such file or folder" in capsys.readouterr().err


def test_console_script_is_installed(tiny_model_dir, tmp_path):
    random_image(16, 24).save(tmp_path / "a.png")
    result = subprocess.run(
        [sys.executable, "-m", "modeling_mirnet.cli", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "a.png").exists()
