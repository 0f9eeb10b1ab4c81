"""Conversion of official checkpoints, checked against outputs of the official code.

tests/data/official_mirnet_vectors.safetensors holds, per case, an official-format state_dict (shared DAU and PReLU
tensors included), an input and the official output in float64 (scripts/make_official_test_vector.py).
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel

from modeling_mirnet import MIRNetModel, mirnet_pipeline
from modeling_mirnet.convert_official_checkpoint import (
    ConversionError,
    config_from_state_dict,
    convert_checkpoint,
    import_official_code,
    main as convert_main,
    official_to_ours,
)
from modeling_mirnet.hub import save_for_hub

from helpers import random_image, run_without_package, tiny_config

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
    assert (config.num_features, config.num_rrg, config.num_mrb, config.num_streams, config.num_dau_columns) == (
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


def test_official_code_is_imported_by_path_without_its_utils_init(tmp_path, monkeypatch):
    """benchmark.py and make_official_test_vector.py load the official network this way: `utils/__init__.py` (which
    needs cv2 there) must not run, its submodules must import; a folder without the network file is named."""
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "__init__.py").write_text("raise ImportError('No module named cv2')\n")
    (tmp_path / "utils" / "antialias.py").write_text("FILTER = (1, 2, 1)\n")
    (tmp_path / "networks").mkdir()
    (tmp_path / "networks" / "MIRNet_model.py").write_text("from utils.antialias import FILTER\nclass MIRNet: pass\n")
    monkeypatch.setitem(sys.modules, "utils", None)  # the import registers its own; restored afterwards
    module = import_official_code(tmp_path)
    assert module.FILTER == (1, 2, 1) and isinstance(module.MIRNet(), module.MIRNet)
    with pytest.raises(ConversionError, match=r"empty: no networks/MIRNet_model.py"):
        import_official_code(tmp_path / "empty")


def test_config_is_read_from_tensors():
    state_dict, *_ = load_case("h4w3")
    config = config_from_state_dict(state_dict)
    assert config.stream_channels == [8, 16, 32, 64]
    assert config.bias is False and config.share_dau_columns is True


def test_convert_cli_writes_a_loadable_folder(tmp_path):
    state_dict, pixel_values, expected, _ = load_case("h3w2")
    checkpoint = tmp_path / "model_lol.pth"
    torch.save({"epoch": 3, "state_dict": state_dict}, checkpoint)
    assert convert_main([str(checkpoint), str(tmp_path / "out")]) == 0
    model = AutoModel.from_pretrained(tmp_path / "out")
    with torch.no_grad():
        assert (model(pixel_values).reconstruction.double() - expected).abs().max().item() < 1e-5


def test_convert_cli_writes_exactly_what_save_for_hub_writes(tmp_path):
    state_dict, *_ = load_case("h3w2")
    torch.save(state_dict, tmp_path / "model.pth")
    assert convert_main([str(tmp_path / "model.pth"), str(tmp_path / "converted")]) == 0
    save_for_hub(convert_checkpoint(state_dict), tmp_path / "saved")
    converted, saved = (sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("converted", "saved"))
    assert converted == saved and "pipeline_mirnet.py" in converted
    for name in converted:
        assert (tmp_path / "converted" / name).read_bytes() == (tmp_path / "saved" / name).read_bytes(), name
    config = json.loads((tmp_path / "converted" / "config.json").read_text())
    assert config["custom_pipelines"]["image-to-image"]["impl"] == "pipeline_mirnet.MIRNetImageToImagePipeline"
    assert config["auto_map"]["AutoModelForImageToImage"] == "modeling_mirnet.MIRNetModel"


def test_converted_folder_serves_the_pipeline_without_the_package(tmp_path):
    """convert -> pipeline("image-to-image", trust_remote_code=True) where modeling_mirnet is not installed."""
    state_dict, *_ = load_case("h3w2")
    torch.save(state_dict, tmp_path / "model.pth")
    assert convert_main([str(tmp_path / "model.pth"), str(tmp_path / "converted")]) == 0
    image = random_image(21, 37)
    image.save(tmp_path / "in.png")
    np.save(tmp_path / "expected.npy", np.asarray(mirnet_pipeline(tmp_path / "converted", device="cpu")(image)))
    result = run_without_package(
        """
        import sys
        import numpy as np
        from PIL import Image
        from transformers import pipeline
        enhance = pipeline("image-to-image", model=sys.argv[1], trust_remote_code=True)
        out = np.asarray(enhance(Image.open(sys.argv[2])))
        assert np.array_equal(out, np.load(sys.argv[3])), "differs from the package's output"
        print("OK", type(enhance).__name__, out.shape)
        """,
        tmp_path / "converted", tmp_path / "in.png", tmp_path / "expected.npy", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK MIRNetImageToImagePipeline (21, 37, 3)" in result.stdout


def test_push_to_hub_uploads_the_folder_in_one_commit(tmp_path, monkeypatch):
    calls = []

    class FakeApi:  # any other HfApi method (a second upload, a commit) would fail here
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, repo_type, private, exist_ok):
            calls.append(("create_repo", repo_id))
            assert repo_type == "model"

        def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
            calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
            assert repo_type == "model"
            return "https://huggingface.co/org/mirnet-lol/commit/0"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    state_dict, *_ = load_case("h3w2")
    torch.save(state_dict, tmp_path / "model.pth")
    assert convert_main([str(tmp_path / "model.pth"), str(tmp_path / "out"), "--push-to-hub", "org/mirnet-lol"]) == 0
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[1][2] == sorted(p.name for p in (tmp_path / "out").iterdir())


def official_format(model: MIRNetModel, like: dict[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    """`model`'s weights under the official key names of `like` (a case of the same structure, `factor` times
    narrower): the converter's renaming run backwards, resampler names (`down.8_2`) scaled to the new widths."""
    ours = model.state_dict()
    official = {}
    for key, tensor in like.items():
        key = re.sub(r"\.(down|up)\.(\d+)_", lambda m: f".{m.group(1)}.{int(int(m.group(2)) * factor)}_", key)
        official[key] = tensor if key.endswith(".filt") else ours[official_to_ours(key, model.config)[0]].clone()
    return official


def test_twelve_features_read_the_reductions_right():
    """n_feat=12: channel attention squeezes 12/24/48 channels to 1/3/6, SKFF to 4/4/6: reductions 8 and 8."""
    h3w2, pixel_values, *_ = load_case("h3w2")  # n_feat 8, 2 RRGs, 1 MRB, height 3, width 2
    torch.manual_seed(0)
    ours = MIRNetModel(tiny_config(num_features=12, num_rrg=2, share_dau_columns=True)).eval()
    converted = convert_checkpoint(official_format(ours, h3w2, 12 / 8))
    assert (converted.config.num_features, converted.config.reduction, converted.config.skff_reduction) == (12, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(converted(pixel_values).reconstruction, ours(pixel_values).reconstruction, rtol=0, atol=0)


def test_squeeze_sizes_that_fit_no_reduction_are_a_clear_error():
    state_dict = dict(load_case("h3w2")[0])
    key = "body.0.body.0.blocks.1.0.CA.conv_du.0.weight"  # 16 -> 2 channels: make it 16 -> 5 (8 -> 1 still wants 8)
    state_dict[key] = torch.zeros(5, 16, 1, 1)
    with pytest.raises(ConversionError, match=r"^the channel attention squeeze sizes \(8->1, 16->5, 32->4 channels\) fit no single"):
        convert_checkpoint(state_dict)


def test_float64_weights_are_stored_as_float32_with_a_note(tmp_path, capsys):
    state_dict, pixel_values, expected, _ = load_case("h3w2")
    torch.save({k: v.double() for k, v in state_dict.items()}, tmp_path / "model64.pth")
    assert convert_main([str(tmp_path / "model64.pth"), str(tmp_path / "out")]) == 0
    assert "checkpoint holds float64 weights; they are stored as float32 (rounded)" in capsys.readouterr().out
    model = AutoModel.from_pretrained(tmp_path / "out")
    assert model.dtype == torch.float32
    with torch.no_grad():
        assert (model(pixel_values).reconstruction.double() - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("content, message", [(None, "cannot read a PyTorch checkpoint"), ({"foo": torch.zeros(1)}, "not an official MIRNet")])
def test_convert_cli_errors_exit_2(tmp_path, capsys, content, message):
    checkpoint = tmp_path / "model.pth"
    if content is not None:
        torch.save(content, checkpoint)
    assert convert_main([str(checkpoint), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirnet-convert: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
