"""Tiled inference for large photos."""


import pytest
import torch

from modeling_mirnet import MIRNetModel, tiled_forward
from modeling_mirnet.modeling_mirnet import BORDER_MARGIN
from modeling_mirnet.tiling import SharedStatistics, thumbnail
from modeling_mirnet.inference import count_tiles
from modeling_mirnet.metrics import psnr

from helpers import tiny_config


def test_blending_reconstructs_exactly_when_tiles_agree():
    # with conv_out zeroed the network is the identity: any blending error would show
    model = MIRNetModel(tiny_config()).eval()
    torch.nn.init.zeros_(model.conv_out.weight)
    x = torch.rand(1, 3, 72, 100)
    with torch.no_grad():
        out = tiled_forward(model, x, tile_size=32, tile_overlap=8)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)


def test_tiled_is_close_to_whole(tiny_model):
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    image = torch.stack([x, y, (x + y) / 2])[None] * 0.3
    whole = tiny_model.enhance(image).clamp(0, 1)
    tiled = tiny_model.enhance(image, tile_size=64, tile_overlap=16).clamp(0, 1)
    assert tiled.shape == whole.shape
    to_array = lambda t: t[0].permute(1, 2, 0).numpy()  # noqa: E731
    assert psnr(to_array(tiled), to_array(whole)) > 35
    # a tile at least as large as the image with its mirrored margins is the whole-image path
    whole_tile = 128 + 2 * BORDER_MARGIN
    torch.testing.assert_close(tiny_model.enhance(image, tile_size=whole_tile), tiny_model.enhance(image), rtol=0, atol=0)


def test_tiling_bounds_the_size_the_network_sees(tiny_model, monkeypatch):
    seen = []
    original = MIRNetModel.forward

    def spy(self, pixel_values, *args, **kwargs):
        seen.append(tuple(pixel_values.shape[-2:]))
        return original(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(MIRNetModel, "forward", spy)
    tiny_model.enhance(torch.rand(1, 3, 80, 120), tile_size=48, tile_overlap=8, margin=0)
    assert seen and max(h for h, _ in seen) <= 48 and max(w for _, w in seen) <= 48
    # first the whole image downscaled into one tile (its global statistics), then rows at 0, 32 x cols at 0, 40, 72
    assert seen[0] == (32, 48) and len(seen) == 1 + 2 * 3
    seen.clear()
    tiny_model.enhance(torch.rand(1, 3, 80, 120), tile_size=48, tile_overlap=8, margin=0, shared_statistics=False)
    assert len(seen) == 2 * 3
    seen.clear()  # the mirrored margin makes the photo larger (96 x 136), not the tiles
    tiny_model.enhance(torch.rand(1, 3, 80, 120), tile_size=48, tile_overlap=8)
    assert max(max(size) for size in seen) <= 48 and len(seen) == 1 + 3 * 4 == 1 + count_tiles(80, 120, 48, 8)


def test_thumbnail_fits_one_tile_in_multiples_of_the_divisor():
    x = torch.rand(1, 3, 3000, 4000)
    assert thumbnail(x, 512, 8).shape[-2:] == (384, 512)
    assert thumbnail(torch.rand(1, 3, 40, 4000), 512, 8).shape[-2:] == (16, 512)  # never below 2 x divisor
    small = torch.rand(1, 3, 64, 96)
    assert thumbnail(small, 512, 8) is small


def test_replayed_statistics_are_the_recorded_ones(tiny_model):
    x, other = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96) * 0.2
    shared = SharedStatistics()
    with torch.no_grad():
        recorded = tiny_model(x, shared_statistics=shared).reconstruction
        replayed = tiny_model(x, shared_statistics=shared.replay()).reconstruction
        steered = tiny_model(other, shared_statistics=shared.replay()).reconstruction  # other pixels, x's statistics
        own = tiny_model(other).reconstruction
    torch.testing.assert_close(replayed, recorded, rtol=0, atol=0)
    assert shared.pooled and all(p.shape[-2:] == (1, 1) for p in shared.pooled)
    assert not torch.equal(steered, own)


def test_replay_refuses_what_it_cannot_match(tiny_model):
    with pytest.raises(RuntimeError, match="before anything was recorded"):
        SharedStatistics().replay()
    shared = SharedStatistics()
    with torch.no_grad():
        tiny_model(torch.rand(1, 3, 64, 64), shared_statistics=shared)
        with pytest.raises(RuntimeError, match="does not match the recorded one"):
            tiny_model(torch.rand(2, 3, 64, 64), shared_statistics=shared.replay())


@pytest.mark.parametrize("tile, overlap, message", [(30, 8, "tile_size"), (32, 16, "tile_overlap"), (32, 6, "tile_overlap")])
def test_bad_tile_settings(tiny_model, tile, overlap, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.enhance(torch.rand(1, 3, 64, 64), tile_size=tile, tile_overlap=overlap)


@pytest.mark.parametrize("height, width, tile, overlap", [(80, 120, 48, 8), (96, 128, 64, 16), (40, 200, 64, 8), (64, 64, 64, 8), (36, 52, None, 32)])
def test_progress_is_per_call_and_count_tiles_predicts_it(tiny_model, height, width, tile, overlap):
    calls = []
    tiny_model.enhance(torch.rand(1, 3, height, width), tile_size=tile, tile_overlap=overlap, on_tile=lambda *c: calls.append(c))
    total = count_tiles(height, width, tile, overlap)
    assert calls == [(done, total) for done in range(1, total + 1)]
