"""Conversion of official checkpoints (issue 4, point 3), checked against outputs of the official code.

tests/data/official_mirnet_vectors.safetensors holds, per case, an official-format state_dict (shared DAU and PReLU
tensors included), an input and the official output in float64 (scripts/make_official_test_vector.py).
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel

from modeling_mirnet.convert_official_checkpoint import (
    ConversionError,
    config_from_state_dict,
    convert_checkpoint,
    main as convert_main,
)

VECTORS = Path(__file__).parent / "data" / "official_mirnet_vectors.safetensors"


def load_case(name):
    with safe_open(str(VECTORS), "pt") as f:
        prefix = f"{name}.state_dict."
        state_dict = {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
        return state_dict, f.get_tensor(f"{name}.input"), f.get_tensor(f"{name}.expected"), json.loads(f.metadata()["cases"])[name]


@pytest.mark.parametrize("case", ["h3w2", "h4w3", "h2w1_bias"])
def test_converted_model_matches_official_output(case):
    state_dict, pixel_values, expected, official_kwargs = load_case(case)
    # as a .pth from the official training script stores it: under 'state_dict', with DataParallel's prefix
    model = convert_checkpoint({"state_dict": {f"module.{k}": v for k, v in state_dict.items()}})
    config = model.config
    assert (config.num_features, config.num_rrg, config.num_mrb, config.height, config.width) == (
        official_kwargs["n_feat"], official_kwargs["n_RRG"], official_kwargs["n_MSRB"], official_kwargs["height"], official_kwargs["width"],
    )
    assert config.bias is official_kwargs.get("bias", False)
    with torch.no_grad():
        ours = model(pixel_values).reconstruction.double()
    assert (ours - expected).abs().max().item() < 1e-5
    # and in float64 the port is exact to rounding
    with torch.no_grad():
        ours64 = model.double()(pixel_values.double()).reconstruction
    assert (ours64 - expected).abs().max().item() < 1e-10


def test_prelu_slopes_are_copied_per_dau():
    state_dict, *_ = load_case("h3w2")
    model = convert_checkpoint(state_dict)
    official = state_dict["body.0.body.0.blocks.1.0.body.1.weight"]
    torch.testing.assert_close(model.rrgs[0].mrbs[0].daus[0][1].body[1].weight.data, official)


def test_mismatched_shared_dau_is_rejected():
    state_dict, *_ = load_case("h3w2")
    state_dict = dict(state_dict)
    key = "body.0.body.0.blocks.0.1.body.0.weight"
    state_dict[key] = state_dict[key] + 1
    with pytest.raises(ConversionError, match="shared DAU"):
        convert_checkpoint(state_dict)


@pytest.mark.parametrize("bad", [{"foo": torch.zeros(1)}, {"state_dict": {"conv_in.weight": torch.zeros(8, 3, 3, 3)}}, [1, 2]])
def test_not_a_mirnet_checkpoint(bad):
    with pytest.raises(ConversionError, match="MIRNet"):
        convert_checkpoint(bad)


def test_config_is_read_from_tensors():
    state_dict, *_ = load_case("h4w3")
    config = config_from_state_dict(state_dict)
    assert config.stream_channels == [8, 16, 32, 64]
    assert config.bias is False and config.share_dau_columns is True


def test_convert_cli_writes_a_loadable_folder(tmp_path):
    state_dict, pixel_values, expected, _ = load_case("h3w2")
    checkpoint = tmp_path / "model_lol.pth"
    torch.save({"epoch": 3, "state_dict": state_dict}, checkpoint)
    convert_main([str(checkpoint), str(tmp_path / "out")])
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_mirnet.py"} <= {p.name for p in (tmp_path / "out").iterdir()}
    model = AutoModel.from_pretrained(tmp_path / "out")
    with torch.no_grad():
        assert (model(pixel_values).reconstruction.double() - expected).abs().max().item() < 1e-5
