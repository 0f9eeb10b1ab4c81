"""The one inference path (modeling_mirnet/inference.py): device, precision, model specs, tiles, out-of-memory,
per-call progress, and the Enhancer every caller (CLI, Space, pipeline, scripts) goes through."""

import json
import os
import platform
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import PIL.Image

from modeling_mirnet import MIRNetModel, mirnet_pipeline
from modeling_mirnet.model_specs import parse_model_specs
from modeling_mirnet.inference import (
    IMAGE_SUFFIXES,
    DeviceError,
    Enhancer,
    OutOfMemory,
    count_tiles,
    cpu_has_fast_bf16,
    enhance_image,
    find_cxx_compiler,
    is_out_of_memory,
    load_mirnet,
    looks_like_local_path,
    pick_device,
    resolve_dtype,
)

from helpers import random_image


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device(None) == pick_device("auto")
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        pick_device("gpu0")
    missing = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(DeviceError, match=f"device '{missing}' requested but") as err:
        pick_device(missing)
    assert isinstance(err.value, ValueError) and "mirnet-enhance" not in str(err.value)


def test_resolve_dtype(monkeypatch):
    assert resolve_dtype("fp32", "cpu") == resolve_dtype(torch.float32, "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == resolve_dtype(torch.bfloat16, "cpu") == torch.bfloat16
    monkeypatch.setenv("MIRNET_CPU_BF16", "1")
    assert resolve_dtype("auto", "cpu") == torch.bfloat16
    monkeypatch.setenv("MIRNET_CPU_BF16", "0")
    assert resolve_dtype("auto", "cpu") == torch.float32
    for name in ("fp16", "float32"):  # one name per precision
        with pytest.raises(ValueError, match=f"unknown precision '{name}': expected one of auto, fp32, bf16"):
            resolve_dtype(name, "cpu")


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="the reference is Linux's /proc/cpuinfo")
def test_fast_bf16_check_agrees_with_the_kernels_cpu_flags(monkeypatch):
    """`cpu_has_fast_bf16` asks torch (cpuinfo); the kernel's flag list is the independent reference."""
    monkeypatch.delenv("MIRNET_CPU_BF16", raising=False)
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    assert cpu_has_fast_bf16() == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})


def test_looks_like_local_path(tmp_path):
    assert not looks_like_local_path("org/mirnet-lol") and not looks_like_local_path("mirnet-lol")
    for name in ("./mirnet", "/models/x", "~/x", "runs/exp/model", str(tmp_path), "C:\\models\\x"):
        assert looks_like_local_path(name), name


def test_parse_model_specs():
    assert parse_model_specs(["org/mirnet-lol,org/mirnet-sice", "Mine=/models/x", " =org/other "]) == {
        "LoL": "org/mirnet-lol", "SICE": "org/mirnet-sice", "Mine": "/models/x", "other": "org/other"}
    # two folders that both read as "LoL": the second keeps its own name
    assert parse_model_specs(["a/mirnet-lol", "b/mirnet-lol-v2"]) == {"LoL": "a/mirnet-lol", "mirnet-lol-v2": "b/mirnet-lol-v2"}
    assert parse_model_specs("LoL=x") == {"LoL": "x"} and parse_model_specs(None) == {}
    # evaluation's convention (a bare source labelled by its last component) is one argument away
    assert parse_model_specs(["runs/lol_01/model"], label_for=lambda s: s.rstrip("/").split("/")[-1]) == {"model": "runs/lol_01/model"}
    with pytest.raises(ValueError, match="two models labelled 'LoL'"):
        parse_model_specs(["LoL=a", "LoL=b"])
    with pytest.raises(ValueError, match="no model after '='"):
        parse_model_specs(["LoL="])


def test_count_tiles():
    assert count_tiles(400, 600, None) == 1
    assert count_tiles(400, 600, 1024) == 1
    assert count_tiles(400, 600, 512) == 2  # rows: one tile of 400; columns: 0 and 88
    assert count_tiles(3000, 4000, 512, 32) == 7 * 9


def test_image_suffixes():
    assert {".png", ".jpg", ".jpeg", ".tif", ".webp"} <= set(IMAGE_SUFFIXES)
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


def test_enhancer_is_the_path_behind_enhance_image(tiny_model_dir, tmp_path):
    model, processor = load_mirnet(tiny_model_dir)
    image = random_image(30, 41)
    image.save(tmp_path / "in.png")
    inputs = processor(image)
    with torch.inference_mode():
        expected = processor.post_process_image_to_image(model.enhance(inputs["pixel_values"]), [image.size[::-1]])[0]
    for result in (Enhancer(model, processor)(image), Enhancer(model, processor)(tmp_path / "in.png"),
                   enhance_image(model, processor, image)):
        np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))
    enhancer = Enhancer.from_pretrained(tiny_model_dir, device="cpu", precision="bf16")
    assert enhancer.precision == "bf16" and enhancer.describe().startswith("CPU (") and enhancer.describe().endswith("bf16 autocast")
    assert model.dtype == torch.float32  # autocast: the weights stay float32
    bf16 = enhancer(image)
    assert np.abs(np.asarray(bf16).astype(int) - np.asarray(expected)).max() <= 4


@pytest.mark.parametrize("raised", [
    MemoryError(),
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes"),
])
def test_out_of_memory_becomes_one_error_with_a_tile_hint(tiny_model, monkeypatch, raised):
    def enhance(*args, **kwargs):
        raise raised

    monkeypatch.setattr(tiny_model, "enhance", enhance)
    enhancer = Enhancer(tiny_model)
    with pytest.raises(OutOfMemory, match=r"out of memory on cpu enhancing a 4000x3000 image as a whole: try tiles of 512 px") as err:
        enhancer.forward(torch.zeros(1, 3, 3000, 4000))
    assert err.value.suggested_tile == 512
    with pytest.raises(OutOfMemory, match=r"in tiles of 512 px: try tiles of 256 px"):
        enhancer.forward(torch.zeros(1, 3, 3000, 4000), tile_size=512)
    with pytest.raises(OutOfMemory, match=r"in tiles of 96 px: use a smaller image or a device with more memory") as err:
        enhancer.forward(torch.zeros(1, 3, 3000, 4000), tile_size=96)
    assert err.value.suggested_tile is None


def test_other_errors_pass_through(tiny_model):
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("memory"))
    with pytest.raises(ValueError, match="tile_size must be"):
        Enhancer(tiny_model).forward(torch.zeros(1, 3, 64, 64), tile_size=30)


def test_progress_belongs_to_each_call_even_on_a_shared_model(tiny_model):
    """Two tiled requests on one model at once: each callback sees its own tiles only (a forward hook would see
    both), and each call's tiles use its own photo's shared statistics (passed as an argument, not model state)."""
    enhancer = Enhancer(tiny_model)
    sizes = {"small": (1, 3, 64, 64), "large": (1, 3, 96, 160)}
    inputs = {name: torch.rand(size, generator=torch.Generator().manual_seed(i)) for i, (name, size) in enumerate(sizes.items())}
    alone = {name: enhancer.forward(x, tile_size=32, tile_overlap=8) for name, x in inputs.items()}
    calls = {name: [] for name in sizes}
    outputs = {}
    barrier = threading.Barrier(2)

    def run(name):
        def on_tile(done, total):
            calls[name].append((done, total))
            if done == 1:
                barrier.wait(timeout=30)  # make sure both calls are in flight together

        outputs[name] = enhancer.forward(inputs[name], tile_size=32, tile_overlap=8, on_tile=on_tile)

    threads = [threading.Thread(target=run, args=(name,)) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for name, (*_, height, width) in sizes.items():
        total = count_tiles(height, width, 32, 8)
        assert calls[name] == [(done, total) for done in range(1, total + 1)], name
        torch.testing.assert_close(outputs[name], alone[name], rtol=0, atol=0)


def test_load_mirnet_accepts_auto_and_reports_bad_devices(tiny_model_dir):
    model, _ = load_mirnet(tiny_model_dir, device="auto")
    assert isinstance(model, MIRNetModel)
    with pytest.raises(DeviceError):
        load_mirnet(tiny_model_dir, device="banana")


@pytest.mark.skipif(find_cxx_compiler() is None, reason="torch.compile's inductor needs a C++ compiler on CPU")
def test_compiled_enhancer_matches_eager_whole_and_tiled(tiny_model_dir):
    """`Enhancer(compile=True)` (torch.compile, inductor, frozen weights) computes what the eager model computes, on a
    whole image and in tiles (one tile shape: one compilation), and says it is compiled."""
    eager = Enhancer.from_pretrained(tiny_model_dir, device="cpu", precision="fp32")
    compiled = Enhancer.from_pretrained(tiny_model_dir, device="cpu", precision="fp32", compile=True)
    assert "torch.compile" in compiled.describe() and "torch.compile" not in eager.describe()
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(3))
    try:
        first = compiled.forward(x)
    except Exception as err:  # the machine cannot build inductor's C++ (e.g. no Python headers): not this package's bug
        if "CppCompileError" in repr(err) or "C++ compile error" in str(err):
            pytest.skip(f"torch.compile cannot build C++ here: {str(err).splitlines()[0]}")
        raise
    torch.testing.assert_close(first, eager.forward(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(compiled.forward(x, tile_size=32, tile_overlap=8), eager.forward(x, tile_size=32, tile_overlap=8),
                               rtol=0, atol=1e-5)


def test_compile_without_a_cxx_compiler_is_one_clear_error(tiny_model_dir, monkeypatch):
    import modeling_mirnet.inference as inference

    monkeypatch.setattr(inference, "find_cxx_compiler", lambda: None)
    with pytest.raises(DeviceError, match="needs a C\\+\\+ compiler"):
        Enhancer.from_pretrained(tiny_model_dir, device="cpu", compile=True)


FAULTS_SCRIPT = """
import json, resource, sys, torch
from modeling_mirnet.memory import keep_freed_memory
kept = keep_freed_memory()
def faults_of_a_64_mib_tensor():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20).fill_(1.0)  # 64 MiB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_a_64_mib_tensor()
print(json.dumps({"kept": kept, "faults": min(faults_of_a_64_mib_tensor() for _ in range(3))}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory tunes glibc's malloc only")
@pytest.mark.parametrize("setting", ["0", "1"])
def test_keep_freed_memory_reuses_pages_instead_of_faulting_them_in_again(setting):
    done = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], capture_output=True, text=True,
                          env={**os.environ, "MIRNET_KEEP_FREED_MEMORY": setting})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["kept"] is (setting == "1")
    if setting == "1":
        assert result["faults"] < 1000  # the freed 64 MiB came back from the heap
    else:
        assert result["faults"] > 16000  # glibc maps >= 32 MiB blocks fresh: one fault per 4 KiB page


def test_keep_freed_memory_is_the_callers_choice(tiny_model, tiny_model_dir, tmp_path, monkeypatch):
    """The library (Enhancer, the pipeline) never changes process-wide malloc settings; the CLI does, on CPU."""
    calls = []
    import modeling_mirnet.cli as cli
    from modeling_mirnet import memory

    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append("library"))

    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("cli"))
    Enhancer(tiny_model)
    mirnet_pipeline(tiny_model)
    assert calls == []
    PIL.Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    assert cli.main([str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    assert calls == ["cli"]
