"""`mirnet-enhance`: processes what it can, reports what it cannot, never clobbers."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from modeling_mirnet import MIRNetModel
from modeling_mirnet.cli import main
from modeling_mirnet.inference import Enhancer, load_mirnet
from modeling_mirnet.hub import save_for_hub

from helpers import random_image, tiny_config


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
    assert "enhanced 2 image(s)" in captured.out and "failed 2: " in captured.out and "notes.png" in captured.out
    # every message names the file once
    for line in [*captured.err.splitlines(), *captured.out.split("; ")]:
        assert line.count("notes.png") <= 1 and line.count("cut.png") <= 1, line


def test_a_well_exposed_photo_gets_one_note_in_the_spaces_words(tiny_model_dir, tmp_path, capsys):
    from modeling_mirnet.metrics import WELL_EXPOSED_MEAN_GRAY

    folder = tmp_path / "in"
    folder.mkdir()
    level = round(255 * WELL_EXPOSED_MEAN_GRAY)  # 89: at the threshold, not above it; 92 is above
    PIL.Image.fromarray(np.full((20, 30, 3), level, dtype=np.uint8)).save(folder / "edge.png")
    PIL.Image.fromarray(np.full((20, 30, 3), level + 3, dtype=np.uint8)).save(folder / "sunny.png")
    PIL.Image.fromarray(np.full((20, 30), 200 * 257, dtype=np.uint16)).save(folder / "bright16.png")  # 16-bit, bright
    PIL.Image.fromarray(np.full((20, 30), 30 * 257, dtype=np.uint16)).save(folder / "dark16.png")  # 16-bit, dark
    random_image(20, 30).convert("L").point(lambda v: v // 8).save(folder / "night.png")
    assert main([str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)]) == 0  # a note is no failure
    notes = [line for line in capsys.readouterr().err.splitlines() if "well exposed" in line]
    assert notes == [f"note: {folder / 'bright16.png'}: already well exposed (mean gray 200 of 255): MIRNet is made for dark photos",
                     f"note: {folder / 'sunny.png'}: already well exposed (mean gray 92 of 255): MIRNet is made for dark photos"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bright16.png", "dark16.png", "edge.png", "night.png", "sunny.png"]


def test_a_tiled_run_writes_the_photo_size_and_nearly_the_whole_image_result(tiny_model_dir, tmp_path):
    """Tiles of 32 px write the photo's size and nearly the whole-image result (the tiles share its statistics)."""
    random_image(40, 70).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / "t"), "--model", str(tiny_model_dir), "--tile-size", "32", "--tile-overlap", "8"]) == 0
    assert PIL.Image.open(tmp_path / "t" / "a.png").size == (70, 40)
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / "w"), "--model", str(tiny_model_dir)]) == 0
    tiled, whole = (np.asarray(PIL.Image.open(tmp_path / d / "a.png")).astype(int) for d in ("t", "w"))
    assert tiled.shape == whole.shape == (40, 70, 3)
    # Measured on this tiny random model: max 12 and mean 0.56 (fp32) / 0.58 (bf16) 8-bit levels between the two,
    # where the whole-image output differs from the input by up to 111 (mean 22). Tolerances: about twice that.
    difference = np.abs(tiled - whole)
    assert difference.max() <= 24 and difference.mean() <= 1.5, (difference.max(), difference.mean())


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
    """The `mirnet-enhance` entry point that `pip install` put beside this interpreter, not `python -m`."""
    script = shutil.which("mirnet-enhance", path=str(Path(sys.executable).parent))
    assert script, f"no mirnet-enhance script in {Path(sys.executable).parent}: pip install -e ."
    random_image(16, 24).save(tmp_path / "a.png")
    run = lambda *args: subprocess.run([script, *args], capture_output=True, text=True, timeout=300)  # noqa: E731
    result = run(str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir), "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "a.png").exists() and "fp32" in result.stderr
    # usage and model errors exit with status 2, as the README promises
    assert run(str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "missing")).returncode == 2
    assert run(str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir), "--precision", "fp16").returncode == 2


def test_bad_device_and_tile_settings_exit_2(tiny_model_dir, tmp_path, capsys):
    random_image(40, 40).save(tmp_path / "a.png")
    args = [str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cuda:7" if not __import__("torch").cuda.is_available() else "cuda:99"]) == 2
    err = capsys.readouterr().err
    assert "mirnet-enhance: device 'cuda:" in err and "requested but" in err
    assert main([*args, "--device", "banana"]) == 2
    assert "unknown device 'banana'" in capsys.readouterr().err
    assert main([*args, "--tile-size", "30"]) == 2
    assert "tile_size must be a multiple of 4" in capsys.readouterr().err
    assert not (tmp_path / "o" / "a.png").exists()


def test_compile_without_a_cxx_compiler_exits_2(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import modeling_mirnet.inference as inference

    monkeypatch.setattr(inference, "find_cxx_compiler", lambda: None)
    random_image(40, 40).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir), "--compile"]) == 2
    assert "mirnet-enhance: compiling the model (compile=True, --compile) needs a C++ compiler" in capsys.readouterr().err
    assert not (tmp_path / "o" / "a.png").exists()


def test_folders_keep_their_structure(tiny_model_dir, tmp_path):
    for sub in ("a", "b", "b/deeper"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        random_image(16, 20).save(tmp_path / "in" / sub / "x.jpg")
    random_image(16, 20).save(tmp_path / "single.png")
    assert main([str(tmp_path / "in"), str(tmp_path / "single.png"), "-r", "-o", str(tmp_path / "out"),
                 "--model", str(tiny_model_dir)]) == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a/x.png", "b/deeper/x.png", "b/x.png", "single.png"]


@pytest.mark.parametrize("layout", ["two suffixes", "two folders"])
def test_outputs_that_would_collide_stop_the_run_before_writing(tiny_model_dir, tmp_path, capsys, layout):
    if layout == "two suffixes":
        (tmp_path / "in").mkdir()
        random_image(16, 16).save(tmp_path / "in" / "x.jpg")
        random_image(16, 16, seed=1).save(tmp_path / "in" / "x.png")
        inputs = [str(tmp_path / "in")]
    else:
        for folder in ("a", "b"):
            (tmp_path / folder).mkdir()
            random_image(16, 16).save(tmp_path / folder / "x.jpg")
        inputs = [str(tmp_path / "a"), str(tmp_path / "b")]
    random_image(16, 16).save(tmp_path / "other.png")
    status = main([*inputs, str(tmp_path / "other.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--overwrite"])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{tmp_path / 'out' / 'x.png'} would be written from" in err and "rename one" in err
    assert not (tmp_path / "out").exists()  # nothing written, not even the image that did not clash


def test_the_same_input_named_twice_is_enhanced_once(tiny_model_dir, tmp_path):
    (tmp_path / "in").mkdir()
    random_image(16, 16).save(tmp_path / "in" / "x.png")
    assert main([str(tmp_path / "in"), str(tmp_path / "in" / "x.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)]) == 0


def test_out_of_memory_is_reported_with_a_tile_hint_and_the_run_goes_on(tiny_model_dir, tmp_path, capsys, monkeypatch):
    random_image(16, 16).save(tmp_path / "small.png")
    random_image(200, 300).save(tmp_path / "large.png")
    original = MIRNetModel.enhance

    def enhance(self, pixel_values, *args, **kwargs):
        if pixel_values.shape[-1] > 40:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB")
        return original(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(MIRNetModel, "enhance", enhance)
    status = main([str(tmp_path / "small.png"), str(tmp_path / "large.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert status == 1 and (tmp_path / "o" / "small.png").exists() and not (tmp_path / "o" / "large.png").exists()
    assert "failed: " in err and "out of memory on cpu enhancing a 300x200 image as a whole: try tiles of 128 px (--tile-size 128)" in err


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_dtype_is_autocast_with_fp32_weights(tiny_model_dir, tmp_path, dtype, monkeypatch):
    """--precision sets the dtype the convolutions compute in (autocast); the weights stay float32 throughout."""
    seen = []
    original = MIRNetModel.enhance

    def enhance(self, pixel_values, *args, **kwargs):
        conv = next(m for m in self.modules() if isinstance(m, torch.nn.Conv2d))
        outputs = []
        hook = conv.register_forward_hook(lambda module, args, output: outputs.append(output.dtype))
        try:
            result = original(self, pixel_values, *args, **kwargs)
        finally:
            hook.remove()
        seen.append(({p.dtype for p in self.parameters()}, set(outputs)))
        return result

    monkeypatch.setattr(MIRNetModel, "enhance", enhance)
    random_image(24, 32).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "-o", str(tmp_path / dtype), "--model", str(tiny_model_dir), "--precision", dtype]) == 0
    computed = torch.bfloat16 if dtype == "bf16" else torch.float32
    assert seen == [({torch.float32}, {computed})]
    monkeypatch.setattr(MIRNetModel, "enhance", original)
    model, processor = load_mirnet(tiny_model_dir)
    expected = Enhancer(model, processor, precision=dtype)(tmp_path / "a.png")
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / dtype / "a.png")), np.asarray(expected))


def test_brightness_and_strength_flags_match_the_package(tiny_model_dir, tmp_path, capsys):
    """--brightness / --strength give what Enhancer(..., brightness=, strength=) gives; out of range is exit 2."""
    image = random_image(30, 44, seed=5)
    image.save(tmp_path / "dark.png")
    assert main([str(tmp_path / "dark.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--precision", "fp32",
                 "--brightness", "0.75", "--strength", "0.6"]) == 0
    expected = Enhancer.from_pretrained(str(tiny_model_dir), device="cpu", precision="fp32")(image, brightness=0.75, strength=0.6)
    plain = Enhancer.from_pretrained(str(tiny_model_dir), device="cpu", precision="fp32")(image)
    written = np.asarray(PIL.Image.open(tmp_path / "out" / "dark.png"))
    assert np.array_equal(written, np.asarray(expected)) and not np.array_equal(written, np.asarray(plain))
    assert main([str(tmp_path / "dark.png"), "-o", str(tmp_path / "o2"), "--model", str(tiny_model_dir), "--brightness", "9"]) == 2
    assert "--brightness must be a number of stops between -3 and 3" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_exposure_flag_renders_what_the_package_renders_and_is_refused_by_unconditioned_models(tiny_model_dir, tmp_path, capsys):
    """--exposure gives what Enhancer(..., exposure=) gives on a conditioned model; out of range, or a model without
    exposure conditioning, is exit 2 with the reason and nothing written."""
    torch.manual_seed(0)
    conditioned = tmp_path / "conditioned"
    save_for_hub(MIRNetModel(tiny_config(exposure_conditioning=True)).eval(), conditioned)
    image = random_image(30, 44, seed=5)
    image.save(tmp_path / "dark.png")
    assert main([str(tmp_path / "dark.png"), "-o", str(tmp_path / "out"), "--model", str(conditioned), "--precision", "fp32",
                 "--exposure", "1.5"]) == 0
    enhancer = Enhancer.from_pretrained(str(conditioned), device="cpu", precision="fp32")
    written = np.asarray(PIL.Image.open(tmp_path / "out" / "dark.png"))
    assert np.array_equal(written, np.asarray(enhancer(image, exposure=1.5)))
    assert not np.array_equal(written, np.asarray(enhancer(image, exposure=0.0)))
    capsys.readouterr()
    assert main([str(tmp_path / "dark.png"), "-o", str(tmp_path / "o2"), "--model", str(conditioned), "--exposure", "12"]) == 2
    assert "--exposure must be a number of stops between -10 and 10" in capsys.readouterr().err
    assert main([str(tmp_path / "dark.png"), "-o", str(tmp_path / "o3"), "--model", str(tiny_model_dir), "--exposure", "1"]) == 2
    assert "trained without exposure conditioning" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


# accelerate's multi-process launcher (torchrun); ACCELERATE_USE_CPU keeps both ranks on the CPU (gloo backend)
LAUNCH_2 = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29541", "-m", "modeling_mirnet.cli"]


@pytest.mark.slow
def test_two_processes_write_each_output_once_as_one_process_would_and_resume(tiny_model_dir, tmp_path):
    """`accelerate launch -m modeling_mirnet.cli` on 2 CPU processes (gloo): each photo enhanced once (the totals are
    summed over the processes), outputs equal to a single-process run, a bad file named and the rest done, and a
    second run skips everything."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        random_image(24 + 4 * i, 32, seed=i).save(folder / f"p{i}.png")
    (folder / "broken.png").write_text("not an image")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    common = ["--model", str(tiny_model_dir), "--precision", "fp32"]
    first = subprocess.run([*LAUNCH_2, str(folder), "-o", str(tmp_path / "two"), *common], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 1, first.stderr[-3000:]
    summary = [line for line in first.stdout.splitlines() if line.startswith("enhanced ")]
    assert len(summary) == 1 and summary[0].startswith("enhanced 5 image(s)") and "failed 1: " in summary[0] and "broken.png" in summary[0]
    assert "2 processes" in first.stderr
    assert main([str(folder), "-o", str(tmp_path / "one"), *common]) == 1
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == [f"p{i}.png" for i in range(5)]  # no partial files left behind
    for name in written:
        assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / "two" / name)), np.asarray(PIL.Image.open(tmp_path / "one" / name)))
    (tmp_path / "two" / "p3.png").unlink()  # as if the job had been killed before writing it
    (tmp_path / "two" / ".p3.png.partial").write_bytes(b"half")
    second = subprocess.run([*LAUNCH_2, str(folder), "-o", str(tmp_path / "two"), *common], capture_output=True, text=True, env=env, timeout=300)
    assert "enhanced 1 image(s)" in second.stdout and "skipped 4 (already written)" in second.stdout, second.stderr[-3000:]
    assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / "two" / "p3.png")), np.asarray(PIL.Image.open(tmp_path / "one" / "p3.png")))
    third = subprocess.run([*LAUNCH_2, str(folder), "-o", str(tmp_path / "two"), *common], capture_output=True, text=True, env=env, timeout=300)
    assert "enhanced 0 image(s)" in third.stdout and "skipped 5 (already written)" in third.stdout, third.stderr[-3000:]
