"""Architecture: shapes, parameter counts of the official structure, residual, errors."""

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForImageToImage

from modeling_mirnet import MIRNetConfig, MIRNetModel, enhancement_loss
from modeling_mirnet.modeling_mirnet import BORDER_MARGIN, SKFF, ResidualUpSample, checkerboard_free, mirrored_margin
from modeling_mirnet.tiling import tile_starts

from helpers import tiny_config

OFFICIAL_V1_PARAMS = 31_787_419  # swz30/MIRNet MIRNet() with its shared DAUs and one shared PReLU


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_default_config_is_the_official_v1():
    config = MIRNetConfig()
    assert (config.num_rrg, config.num_mrb, config.num_features, config.num_streams, config.num_dau_columns) == (3, 2, 64, 3, 2)
    assert config.stream_channels == [64, 128, 256]
    assert config.size_divisor == 4


def test_parameter_count_matches_official_structure():
    with torch.device("meta"):
        shared = MIRNetModel(MIRNetConfig())
        unshared = MIRNetModel(MIRNetConfig(share_dau_columns=False))
    # one PReLU per DAU instead of the official single shared one: 18 DAUs -> 17 extra scalars
    assert count(shared) == OFFICIAL_V1_PARAMS + 17
    assert round(count(unshared) / 1e6, 2) == 42.24


def test_auto_classes_are_registered():
    config = AutoConfig.for_model("mirnet", num_features=8, num_rrg=1, num_mrb=1)
    assert isinstance(config, MIRNetConfig)
    assert type(AutoModel.from_config(config)) is MIRNetModel
    assert type(AutoModelForImageToImage.from_config(config)) is MIRNetModel


@pytest.mark.parametrize(
    "overrides", [{}, {"num_streams": 2, "num_dau_columns": 3}, {"num_streams": 4, "share_dau_columns": False}, {"bias": True}]
)
def test_forward_shapes(overrides):
    model = MIRNetModel(tiny_config(**overrides)).eval()
    x = torch.rand(2, 3, 32, 48)
    out = model(x, output_hidden_states=True)
    assert out.reconstruction.shape == x.shape and out.loss is None
    assert len(out.hidden_states) == 1 + model.config.num_rrg
    reconstruction, hidden_states = model(x, output_hidden_states=True, return_dict=False)
    torch.testing.assert_close(reconstruction, out.reconstruction)
    assert len(hidden_states) == len(out.hidden_states)


def test_network_predicts_a_residual_added_to_the_input():
    model = MIRNetModel(tiny_config()).eval()
    torch.nn.init.zeros_(model.conv_out.weight)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(model(x).reconstruction, x)


def test_skff_weights_are_a_softmax_across_streams():
    skff = SKFF(channels=8, num_streams=3)
    same = torch.rand(1, 8, 4, 4)
    # identical streams: whatever the attention, a convex combination of equal tensors is that tensor
    torch.testing.assert_close(skff([same, same, same]), same)
    a, b, c = torch.zeros(1, 8, 4, 4), torch.ones(1, 8, 4, 4), 2 * torch.ones(1, 8, 4, 4)
    fused = skff([a, b, c])
    assert fused.min() > 0 and fused.max() < 2  # strictly inside: every stream gets positive weight


def test_checkerboard_free_upsampling_turns_a_flat_input_into_a_flat_output():
    """The projected transposed conv gives no 2-pixel pattern on a flat input (away from the border), stays as close
    as the constraint allows (projecting twice changes nothing more), and the whole model keeps its forward shape."""
    torch.manual_seed(0)
    up = ResidualUpSample(8, 4).eval()
    for module in up.modules():
        if isinstance(module, torch.nn.ConvTranspose2d):
            torch.nn.init.normal_(module.weight)
    flat = torch.full((1, 8, 12, 12), 0.7)

    def phase_spread(output):
        inner = output[0, :, 4:-4, 4:-4]
        phases = torch.stack([inner[:, i::2, j::2].mean(dim=(1, 2)) for i in (0, 1) for j in (0, 1)])
        return (phases.max(0).values - phases.min(0).values).max().item()

    with torch.no_grad():
        assert phase_spread(up(flat)) > 0.1
        up.remove_checkerboard_()
        assert phase_spread(up(flat)) < 1e-5
    weight = up.top[2].weight
    assert torch.allclose(checkerboard_free(weight), weight, atol=1e-6)

    model = MIRNetModel(tiny_config()).eval()
    model.remove_checkerboard_()
    assert all(torch.allclose(checkerboard_free(m.weight), m.weight, atol=1e-6)
               for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d))


def test_losses():
    pred, target = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert enhancement_loss(pred, target, "l1").item() == pytest.approx(0.5)
    assert enhancement_loss(pred, target, "rmse").item() == pytest.approx(0.5)
    assert enhancement_loss(pred, target, "charbonnier", eps=1e-3).item() == pytest.approx((0.25 + 1e-6) ** 0.5)
    with pytest.raises(ValueError, match="unknown loss_type"):
        enhancement_loss(pred, target, "ssim")
    # Charbonnier against its definition on random images: mean(sqrt((output - label)^2 + eps^2))
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    expected = torch.sqrt((pred - target) ** 2 + 1e-3**2).mean()
    assert enhancement_loss(pred, target, "charbonnier", eps=1e-3).item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradients_flow():
    model = MIRNetModel(tiny_config()).train()
    x = torch.rand(1, 3, 16, 16)
    enhancement_loss(model(x).reconstruction, torch.rand_like(x)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(3, 32, 32), "shape"),
        (torch.rand(1, 1, 32, 32), "channels"),
        (torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8), "floating point"),
        (torch.rand(1, 3, 30, 32), "multiples of 4"),
        (torch.rand(1, 3, 4, 32), "at least 8"),
    ],
)
def test_bad_pixel_values_give_clear_errors(tiny_model, bad, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_rrg": 0}, "num_rrg"),
        ({"num_streams": 1.5}, "num_streams"),
        ({"num_dau_columns": 0}, "num_dau_columns"),
        ({"height": 4}, "`height` is the official code's name; MIRNetConfig calls it `num_streams`"),
        ({"width": 3}, "`width` is the official code's name; MIRNetConfig calls it `num_dau_columns`"),
        ({"kernel_size": 4}, "odd"),
        ({"loss_type": "mse"}, "loss_type"),
        ({"num_features": 4, "reduction": 8}, "reduction"),
        ({"channel_factor": 0.5}, "channel_factor"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MIRNetConfig(**kwargs)


def test_config_round_trip(tmp_path):
    config = tiny_config(num_dau_columns=3, loss_type="l1")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MIRNetConfig)
    assert (loaded.num_dau_columns, loaded.loss_type, loaded.num_features) == (3, "l1", 8)


def test_a_config_json_with_the_official_names_says_which_to_use(tmp_path):
    """`height`/`width` (the official names) are refused from config.json too, naming the field to use."""
    tiny_config().save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    old = json.loads(path.read_text())
    old["height"] = old.pop("num_streams")
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="calls it `num_streams`"):
        AutoConfig.from_pretrained(tmp_path)


def test_tile_starts_cover_the_whole_length():
    for length, tile, stride in [(100, 32, 24), (64, 64, 32), (40, 64, 32), (97, 16, 8)]:
        starts = tile_starts(length, tile, stride)
        covered = set()
        for s in starts:
            covered |= set(range(s, min(s + tile, length)))
        assert covered == set(range(length))
        assert starts[-1] + min(tile, length) == length


def test_enhance_mirrors_a_margin_around_the_photo(tiny_model):
    """enhance = the network on the photo mirrored by BORDER_MARGIN pixels on every side, cropped back; margin=0 is the
    network on the photo as it is; the margin shrinks (to a multiple that keeps the size divisible) for tiny photos."""
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        plain = tiny_model(x).reconstruction
        m = BORDER_MARGIN
        mirrored = tiny_model(F.pad(x, (m, m, m, m), mode="reflect")).reconstruction[..., m:-m, m:-m]
    torch.testing.assert_close(tiny_model.enhance(x, margin=0), plain, rtol=0, atol=0)
    torch.testing.assert_close(tiny_model.enhance(x), mirrored, rtol=0, atol=0)
    assert tiny_model.enhance(x).shape == x.shape and not torch.equal(mirrored, plain)
    divisor = tiny_model.config.size_divisor
    assert mirrored_margin(24, 40, 8, 4) == 8 and mirrored_margin(8, 40, 8, 4) == 6 and mirrored_margin(8, 8, 8, 8) == 4
    tiny = torch.rand(1, 3, 2 * divisor, 2 * divisor)  # the smallest input the network takes
    assert tiny_model.enhance(tiny).shape == tiny.shape
    with pytest.raises(ValueError, match="margin must be >= 0"):
        tiny_model.enhance(x, margin=-2)
