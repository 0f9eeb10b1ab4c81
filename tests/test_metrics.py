"""Device-side metrics (float32 torch) against the float64 references, and the shared scoring loop."""

import math

import numpy as np
import PIL.Image
import pytest
import torch

from modeling_mirnet import MIRNetConfig, MIRNetModel
from modeling_mirnet.evaluation import ImagePairs, decode_pairs, score_images, score_pairs
from modeling_mirnet.image_processing_mirnet import pad_to_multiple
from modeling_mirnet.metrics import gt_mean_scale, psnr, psnr_batch, quantize, ssim, ssim_batch


def photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise: flat regions (where float32 SSIM statistics lose precision) and texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 80 * np.sin(x / 37.0)[..., None] * np.cos(y / 23.0)[..., None] * np.array([1.0, 0.8, 0.6])
    return np.clip(base + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)


def as_batch(*arrays: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays]).float().div(255)


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_metrics_agree_with_the_float64_reference(seed):
    reference = photo_like(120, 160, seed)
    rng = np.random.default_rng(seed + 10)
    dark = np.clip(reference * 0.55 + rng.normal(0, 9, reference.shape), 0, 255).astype(np.uint8)
    bright = np.clip(reference.astype(float) * 1.2 + 10, 0, 255).astype(np.uint8)
    outputs, references = as_batch(dark, bright), as_batch(reference, reference)
    p, s = psnr_batch(outputs, references), ssim_batch(outputs, references)
    for i, output in enumerate((dark, bright)):
        assert float(p[i]) == pytest.approx(psnr(output, reference), abs=1e-3)  # dB
        assert float(s[i]) == pytest.approx(ssim(output, reference), abs=1e-5)


def test_gt_mean_scaling_removes_a_pure_exposure_error():
    reference = photo_like(64, 64, 3).astype(np.float64) / 255 * 0.8
    scaled = torch.from_numpy(reference).permute(2, 0, 1)[None].float()
    darker = scaled * 0.5
    assert float(psnr_batch(darker, scaled)) < 20
    assert float(psnr_batch(gt_mean_scale(darker, scaled), scaled)) > 60  # same image up to a gain: exact after scaling
    assert torch.equal(gt_mean_scale(scaled, scaled), scaled)


def test_quantize_matches_the_image_processor_rounding():
    values = torch.tensor([-0.1, 0.0, 0.5 / 255, 1.5 / 255, 0.49999, 1.2]).view(1, 1, 1, -1)
    assert quantize(values).mul(255).flatten().tolist() == pytest.approx([0, 0, 0, 2, 127, 255])  # round half to even


def test_metrics_name_a_size_mismatch():
    with pytest.raises(ValueError, match="differ in size"):
        psnr_batch(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_batch(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return MIRNetModel(MIRNetConfig(num_features=8, num_rrg=1, num_mrb=1, reduction=4)).eval()


def make_pairs(sizes, seed=0) -> ImagePairs:
    rng = np.random.default_rng(seed)
    rows = []
    for i, (h, w) in enumerate(sizes):
        high = photo_like(h, w, seed + i)
        low = (high * rng.uniform(0.1, 0.4)).astype(np.uint8)
        rows.append({"low": PIL.Image.fromarray(low), "high": PIL.Image.fromarray(high), "name": f"{i}.png"})
    return decode_pairs(rows)


def test_score_pairs_equals_scoring_each_output_by_hand(tiny_model):
    # mixed sizes (batched by size) and one that needs padding to a multiple of 4
    pairs = make_pairs([(32, 48), (30, 45), (32, 48)])
    outputs = {}
    scores = score_pairs(tiny_model, pairs, batch_size=2, loss_type="charbonnier", on_output=outputs.__setitem__)
    for i in range(len(pairs)):
        low = pairs.lows[i][None].float().div(255)
        expected = tiny_model.enhance(pad_to_multiple([low], 4)[0])[..., : low.shape[-2], : low.shape[-1]]  # with the margin
        expected8 = quantize(expected).mul(255).round().to(torch.uint8)[0]
        assert torch.equal(outputs[i], expected8)
        by_hand = score_images(expected8[None], pairs.highs[i][None])
        for key in ("psnr", "psnr_gt_mean", "ssim"):
            assert scores[key][i] == pytest.approx(by_hand[key][0], abs=1e-5)
        output_np, high_np = expected8.permute(1, 2, 0).numpy(), pairs.highs[i].permute(1, 2, 0).numpy()
        assert scores["psnr"][i] == pytest.approx(psnr(output_np, high_np), abs=1e-3)
        assert scores["loss"][i] > 0 and math.isfinite(scores["loss"][i])


def test_score_pairs_batch_size_does_not_change_the_scores(tiny_model):
    pairs = make_pairs([(32, 48)] * 3, seed=5)
    one = score_pairs(tiny_model, pairs, batch_size=1)
    three = score_pairs(tiny_model, pairs, batch_size=3)
    for key in one:
        assert one[key] == pytest.approx(three[key], abs=1e-4)


def test_score_pairs_keeps_the_training_mode(tiny_model):
    tiny_model.train()
    try:
        score_pairs(tiny_model, make_pairs([(16, 16)]), compute_ssim=False)
        assert tiny_model.training
    finally:
        tiny_model.eval()


def test_decode_pairs_names_a_pair_of_different_sizes():
    rows = [{"low": PIL.Image.new("RGB", (8, 8)), "high": PIL.Image.new("RGB", (8, 9)), "name": "odd.png"}]
    with pytest.raises(ValueError, match="odd.png"):
        decode_pairs(rows)
