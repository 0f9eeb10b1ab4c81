"""Shared fixtures: tiny saved model folders, a prepared tiny dataset, images, and an isolated offline Hugging Face
home (helpers that are not fixtures live in helpers.py)."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from modeling_mirnet import MIRNetModel
from modeling_mirnet import data as dataset_tools
from modeling_mirnet.hub import save_for_hub

from helpers import tiny_config



@pytest.fixture(autouse=True)
def offline_hf_home(tmp_path_factory, monkeypatch):
    """No test may reach the network or the user's cache: a fresh HF_HOME, offline mode on."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(home / "hub"))
    yield home


@pytest.fixture
def tiny_model() -> MIRNetModel:
    torch.manual_seed(0)
    return MIRNetModel(tiny_config()).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny randomly initialised MIRNet saved as a Hub would hold it (weights, config, processor, code, pipeline)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "mirnet-tiny"
    save_for_hub(MIRNetModel(tiny_config()).eval(), folder)
    return folder


@pytest.fixture
def low_light_image() -> PIL.Image.Image:
    """A smooth dark image (gradients, not noise) so enhancement results are meaningful to compare."""
    y, x = np.mgrid[0:60, 0:84]
    rgb = np.stack([x / 84, y / 60, (x + y) / 144], -1) * 60
    return PIL.Image.fromarray(rgb.astype(np.uint8))


def make_pair_folder(folder: Path, count: int, size=(40, 36), seed=0) -> Path:
    """`count` random pairs in folder/low and folder/high: high is noise, low a darkened copy of it."""
    rng = np.random.default_rng(seed)
    for sub in ("low", "high"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        high = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        PIL.Image.fromarray(high).save(folder / "high" / f"{i}.png")
        PIL.Image.fromarray((high * 0.3).astype(np.uint8)).save(folder / "low" / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """A prepared dataset folder: 4 train, 2 validation, 2 test pairs."""
    root = tmp_path_factory.mktemp("data")
    pairs = dataset_tools.load_pairs(make_pair_folder(root / "raw", 8), "test")
    return dataset_tools.write_dataset(
        {"train": pairs.select(range(4)), "validation": pairs.select(range(4, 6)), "test": pairs.select(range(6, 8))},
        root / "prepared",
    )
