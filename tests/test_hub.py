"""Saving and loading like a Hub repo: local package, remote code, fake Hub cache, pipeline."""

import copy
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, AutoModel, pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from modeling_mirnet import MIRNetImageProcessor, MIRNetImageToImagePipeline, MIRNetModel, mirnet_pipeline
from modeling_mirnet.hub import push_folder_to_hub, save_for_hub
from modeling_mirnet.inference import ModelLoadError, load_mirnet

from helpers import random_image, run_without_package, tiny_config

# What travels with a checkpoint: the model's three files, its pipeline, and what the model itself needs (tiles,
# the exposure curve) - never the package's runtime (devices, precision, out-of-memory handling, the tools)
CODE_FILES = {"configuration_mirnet.py", "modeling_mirnet.py", "image_processing_mirnet.py", "pipeline_mirnet.py",
              "tiling.py", "exposure.py"}


def test_saved_folder_has_weights_config_processor_and_code(tiny_model_dir):
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json"} <= files
    assert {name for name in files if name.endswith(".py")} == CODE_FILES
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_mirnet.MIRNetConfig",
        "AutoModel": "modeling_mirnet.MIRNetModel",
        "AutoModelForImageToImage": "modeling_mirnet.MIRNetModel",
    }
    assert config["custom_pipelines"]["image-to-image"]["impl"] == "pipeline_mirnet.MIRNetImageToImagePipeline"
    processor_config = json.loads((tiny_model_dir / "preprocessor_config.json").read_text())
    assert processor_config["auto_map"] == {"AutoImageProcessor": "image_processing_mirnet.MIRNetImageProcessor"}


def test_round_trip_with_package_installed(tiny_model_dir):
    model = AutoModel.from_pretrained(tiny_model_dir)
    processor = AutoImageProcessor.from_pretrained(tiny_model_dir)
    assert isinstance(model, MIRNetModel) and isinstance(processor, MIRNetImageProcessor)
    assert not model.training
    reference = MIRNetModel.from_pretrained(tiny_model_dir)
    x = torch.rand(1, 3, 16, 24)
    torch.testing.assert_close(model(x).reconstruction, reference(x).reconstruction, rtol=0, atol=0)


def test_resaving_a_loaded_model_keeps_the_code(tiny_model_dir, tmp_path):
    model = AutoModel.from_pretrained(tiny_model_dir)
    save_for_hub(model, tmp_path / "again")
    assert {p.name for p in (tmp_path / "again").iterdir() if p.suffix == ".py"} == CODE_FILES


def test_remote_code_in_a_process_without_the_package(tiny_model_dir, tmp_path):
    """What a user of `org/mirnet-lol` gets: trust_remote_code=True, no `modeling_mirnet` importable."""
    model = MIRNetModel.from_pretrained(tiny_model_dir)
    x = torch.rand(1, 3, 24, 32)
    torch.save({"x": x, "y": model(x).reconstruction.detach()}, tmp_path / "io.pt")
    result = run_without_package(
        """
        import sys, torch
        from transformers import AutoModel, AutoImageProcessor, pipeline
        from PIL import Image
        folder, io = sys.argv[1], torch.load(sys.argv[2])
        model = AutoModel.from_pretrained(folder, trust_remote_code=True)
        assert type(model).__name__ == "MIRNetModel" and not model.training
        assert torch.equal(model(io["x"]).reconstruction, io["y"])
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
        assert type(processor).__name__ == "MIRNetImageProcessor"
        enhance = pipeline("image-to-image", model=folder, trust_remote_code=True)
        out = enhance(Image.new("RGB", (37, 21), (10, 20, 30)))
        tiled = enhance(Image.new("RGB", (70, 40), (10, 20, 30)), tile_size=32, tile_overlap=8, precision="bf16")
        print("OK", out.size, out.mode, tiled.size)
        """,
        tiny_model_dir, tmp_path / "io.pt", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK (37, 21) RGB (70, 40)" in result.stdout


def test_the_test_process_really_lacks_the_package_but_has_torch(tmp_path):
    result = run_without_package("import torch, transformers; import modeling_mirnet", cwd=tmp_path)
    assert result.returncode == 1 and "No module named 'modeling_mirnet'" in result.stderr


def test_save_for_hub_leaves_the_model_config_as_it_was(tiny_model_dir, tmp_path):
    model = AutoModel.from_pretrained(tiny_model_dir)  # a loaded config has an auto_map of its own
    before = copy.deepcopy(model.config.to_dict())
    save_for_hub(model, tmp_path / "again")
    assert model.config.to_dict() == before
    fresh = MIRNetModel(tiny_config())
    assert getattr(fresh.config, "auto_map", None) is None
    save_for_hub(fresh, tmp_path / "fresh")
    assert getattr(fresh.config, "auto_map", None) is None and getattr(fresh.config, "custom_pipelines", None) is None
    assert json.loads((tmp_path / "fresh" / "config.json").read_text())["auto_map"]["AutoModelForImageToImage"]


def test_importing_the_package_registers_no_pipeline_task():
    assert "image-to-image" not in PIPELINE_REGISTRY.get_supported_tasks()


def test_mirnet_pipeline_without_trust_remote_code(tiny_model_dir, low_light_image):
    enhance = mirnet_pipeline(tiny_model_dir, device="cpu")
    assert isinstance(enhance, MIRNetImageToImagePipeline)
    remote = pipeline("image-to-image", model=str(tiny_model_dir), trust_remote_code=True)
    np.testing.assert_array_equal(np.asarray(enhance(low_light_image)), np.asarray(remote(low_light_image)))
    model, _ = load_mirnet(tiny_model_dir)
    progress = []
    tiled = mirnet_pipeline(model, tile_size=32, tile_overlap=8)(low_light_image, on_tile=lambda *p: progress.append(p))
    assert tiled.size == low_light_image.size and progress[-1] == (12, 12)  # 60x84: 3 x 4 tiles of 32 px
    # precision: a constructor default or a call parameter; bf16 autocast stays within a few 8-bit levels here
    bf16 = mirnet_pipeline(model, precision="bf16")(low_light_image)
    fp32 = enhance(low_light_image, precision="fp32")
    assert np.abs(np.asarray(bf16).astype(int) - np.asarray(fp32)).max() <= 4
    # the brightness and strength controls: call parameters, the same result as the package's Enhancer
    from modeling_mirnet.inference import Enhancer

    adjusted = enhance(low_light_image, brightness=-0.5, strength=0.8)
    expected = Enhancer(model, precision="fp32")(low_light_image, brightness=-0.5, strength=0.8)
    assert np.array_equal(np.asarray(adjusted), np.asarray(expected)) and not np.array_equal(np.asarray(adjusted), np.asarray(fp32))
    with pytest.raises(ValueError, match="strength must be"):
        enhance(low_light_image, strength=2)


def make_fake_hub_cache(folder, cache, repo_id="org/mirnet-lol"):
    """Lay out `folder` as the Hub cache would hold `repo_id` after a download. The commit hash is the folder's
    content hash: transformers keeps remote code in a modules cache per commit, outside HF_HOME's reach once imported,
    so a fixed hash would run the code of an earlier version of this package."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    commit = digest.hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_hub_id_loads_offline_from_the_cache(tiny_model_dir, offline_hf_home):
    make_fake_hub_cache(tiny_model_dir, offline_hf_home / "hub")
    model, processor = load_mirnet("org/mirnet-lol")
    assert isinstance(model, MIRNetModel) and processor.size_divisor == 4
    enhance = pipeline("image-to-image", model="org/mirnet-lol", trust_remote_code=True)
    assert enhance(random_image(30, 41)).size == (41, 30)
    with pytest.raises(ModelLoadError, match="org/unknown-model: cannot load"):
        load_mirnet("org/unknown-model")


def test_load_errors_name_the_source(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model folder"):
        load_mirnet(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="empty: cannot load a MIRNet model"):
        load_mirnet(tmp_path / "empty")


def test_pipeline_returns_enhanced_image_of_original_size(tiny_model_dir, low_light_image):
    enhance = pipeline("image-to-image", model=str(tiny_model_dir), trust_remote_code=True)
    # trust_remote_code loads the pipeline class saved beside the weights
    assert type(enhance).__name__ == MIRNetImageToImagePipeline.__name__
    out = enhance(low_light_image)
    assert out.size == low_light_image.size and out.mode == "RGB"
    model, processor = load_mirnet(tiny_model_dir)
    inputs = processor(low_light_image)
    expected = processor.post_process_image_to_image(model.enhance(inputs["pixel_values"]), [low_light_image.size[::-1]])[0]
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
    tiled = enhance(low_light_image, tile_size=32, tile_overlap=8)
    assert tiled.size == low_light_image.size


def test_push_uploads_the_saved_folder(tiny_model_dir, monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, repo_type, private, exist_ok):
            calls["repo"] = (repo_id, repo_type, private, exist_ok)

        def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
            calls.setdefault("files", []).append((repo_type, sorted(os.listdir(folder_path))))
            return "commit-url"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert push_folder_to_hub(tiny_model_dir, "org/mirnet-lol", token="t") == "commit-url"
    assert calls["repo"] == ("org/mirnet-lol", "model", False, True)
    assert len(calls["files"]) == 1 and calls["files"][0][0] == "model"  # one commit
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "modeling_mirnet.py"} <= set(calls["files"][0][1])
    # the same helper uploads a dataset folder (train/prepare_dataset.py --push-to-hub): no model files required
    calls.clear()
    (tiny_model_dir.parent / "dataset").mkdir(exist_ok=True)
    push_folder_to_hub(tiny_model_dir.parent / "dataset", "org/lol", repo_type="dataset")
    assert calls["repo"] == ("org/lol", "dataset", False, True) and calls["files"][0][0] == "dataset"


def test_push_refuses_an_incomplete_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        push_folder_to_hub(tmp_path, "org/x")
