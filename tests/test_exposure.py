"""The exposure pieces of training and its do-no-harm benchmark: the linear-light gain, the GT-mean loss and the
4-pixel grid score."""

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from modeling_mirnet.exposure import linear_to_srgb, scale_exposure, srgb_to_linear
from modeling_mirnet.metrics import grid_score, mean_gray
from modeling_mirnet.losses import enhancement_loss, exposure_divergence

from helpers import load_script

REPO = Path(__file__).resolve().parent.parent


def smooth_image(height=96, width=128, seed=0) -> torch.Tensor:
    """A (1, 3, H, W) image in [0.2, 0.8] without any periodic structure: upsampled noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 8, width // 8, generator=g)
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return (0.2 + 0.6 * fine + 0.02 * torch.rand(1, 3, height, width, generator=g)).clamp(0, 1)


def test_srgb_round_trip_and_one_stop_doubles_linear_light():
    x = torch.linspace(0, 1, 1001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6)
    image = smooth_image() * 0.3
    brighter = scale_exposure(image, 1.0)
    assert torch.allclose(srgb_to_linear(brighter), 2 * srgb_to_linear(image), atol=1e-5)
    assert torch.allclose(scale_exposure(image, 0.0), image, atol=1e-6)
    # per-image stops; highlights clip at 1
    batch = torch.cat([image, image])
    out = scale_exposure(batch, torch.tensor([-1.0, 1.0]))
    assert mean_gray(out[:1]) < mean_gray(image) < mean_gray(out[1:])
    clipped = scale_exposure(torch.full((1, 3, 4, 4), 0.9), 2.0)
    assert torch.all((clipped <= 1) & (clipped > 1 - 1e-6))


def test_gt_mean_loss_weighs_exposure_when_far_and_structure_when_close():
    target = smooth_image()
    charbonnier = lambda a, b: enhancement_loss(a, b, "charbonnier")  # noqa: E731
    # far off in exposure (half as bright): the weight is ~1, the loss is the plain loss
    dark = target * 0.5
    assert enhancement_loss(dark, target, "gt_mean").item() == pytest.approx(charbonnier(dark, target).item(), rel=1e-3)
    # the same structure at a slightly different exposure: the loss is mostly that of the rescaled output (small)
    close = target * 0.97
    assert enhancement_loss(close, target, "gt_mean") < 0.5 * charbonnier(close, target)
    # and it still trains the exposure: the gradient pushes a too-dark output up
    prediction = (target * 0.8).requires_grad_()
    enhancement_loss(prediction, target, "gt_mean").backward()
    assert prediction.grad.sum() < 0


def test_exposure_divergence_is_zero_for_equal_means_and_grows_with_their_ratio():
    a = torch.tensor([0.4, 0.4, 0.4, 0.4])
    b = torch.tensor([0.4, 0.44, 0.6, 0.8])
    d = exposure_divergence(a, b, 0.1)
    assert d[0].item() == pytest.approx(0.0, abs=1e-7)
    assert torch.all(d[1:] > d[:-1])
    # scale-free: only the ratio of the two means matters
    assert torch.allclose(exposure_divergence(a * 2, b * 2, 0.1), d, atol=1e-6)


def test_grid_score_finds_a_four_pixel_grid_and_not_a_smooth_photo():
    image = smooth_image(seed=1)
    gridded = image.clone()
    gridded[..., ::4, :] += 0.03  # a faint line every 4 rows
    clean, grid = grid_score(torch.cat([image, gridded]))
    assert clean < 2.5 < 10 < grid
    vertical = image.clone()
    vertical[..., :, 1::4] -= 0.03
    assert grid_score(vertical) > 10
    # a grid of another period is not counted
    other = image.clone()
    other[..., ::6, :] += 0.03
    assert grid_score(other) < 2.5


def test_well_lit_benchmark_feeds_references_and_reports_the_goals(tiny_model_dir, tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("low", "high"):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
    for i in range(3):
        high = rng.integers(60, 200, (32, 48, 3), dtype=np.uint8)
        PIL.Image.fromarray(high).save(tmp_path / "pairs" / "high" / f"{i}.png")
        PIL.Image.fromarray(high // 4).save(tmp_path / "pairs" / "low" / f"{i}.png")
    out = tmp_path / "well_lit.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "well_lit.py"), "--model", f"tiny={tiny_model_dir}",
                             "--dataset", str(tmp_path / "pairs"), "--split", "test", "--precision", "fp32", "--json", str(out)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| tiny |" in result.stdout and "PSNR(output, input) >= 28 dB" in result.stdout
    import json

    report = json.loads(out.read_text())
    assert report["names"] == ["0.png", "1.png", "2.png"]
    rows = report["per_image"]["tiny"]
    # the model's outputs against the references it was given, recomputed here
    from modeling_mirnet.inference import Enhancer
    from modeling_mirnet.metrics import psnr

    enhance = Enhancer.from_pretrained(str(tiny_model_dir), device="cpu", precision="fp32")
    image = PIL.Image.open(tmp_path / "pairs" / "high" / "1.png")
    assert rows["psnr"][1] == pytest.approx(psnr(enhance(image), image), abs=1e-3)
    assert all(math.isfinite(v) and v > 0 for v in rows["ratio"])
    added = max(g / i for g, i in zip(rows["grid"], rows["input_grid"]))
    assert report["summary"]["models"]["tiny"]["worst_grid_added"] == pytest.approx(added)


# ------------------------------------------------------------------------------------------ brightness and strength
from modeling_mirnet.exposure import adjust_brightness, apply_controls, check_controls  # noqa: E402


def test_brightness_is_monotone_neutral_at_zero_and_rolls_off_highlights():
    image = smooth_image(seed=2)
    assert adjust_brightness(image, 0.0) is image
    means = [float(mean_gray(adjust_brightness(image, s))) for s in (-2, -1, -0.25, 0, 0.25, 1, 2)]
    assert means == sorted(means) and len(set(means)) == len(means)
    ramp = torch.linspace(0, 1, 256).view(1, 1, 1, -1).expand(1, 3, 1, -1)
    for stops in (1.0, 3.0):
        out = adjust_brightness(ramp, stops)
        assert torch.all(out[..., 1:] >= out[..., :-1])  # the tone curve stays monotone in the input
        assert out[..., -1].min() > 1 - 1e-5 and out[..., 0].max() < 1e-6  # black and white stay where they are
        assert (out[..., :-1] < 1 - 1e-4).all()  # nothing below white is clipped to white
    # darkening is a plain exposure change: half the linear light everywhere, white included
    darker = adjust_brightness(ramp, -1.0)
    assert torch.allclose(srgb_to_linear(darker), srgb_to_linear(ramp) / 2, atol=1e-5)
    # shadows get the full gain in linear light: one stop doubles a deep shadow's linear value
    shadow = torch.full((1, 3, 2, 2), 0.05)
    assert float(srgb_to_linear(adjust_brightness(shadow, 1.0)).mean() / srgb_to_linear(shadow).mean()) == pytest.approx(2, rel=0.01)


def test_strength_blends_from_the_input_to_the_enhanced_image():
    original, enhanced = smooth_image(seed=3) * 0.2, smooth_image(seed=3)
    assert torch.equal(apply_controls(enhanced, original), enhanced)
    assert torch.allclose(apply_controls(enhanced, original, strength=0.0), original)
    halves = [float(mean_gray(apply_controls(enhanced, original, strength=s))) for s in (0, 0.25, 0.5, 1)]
    assert halves == sorted(halves) and halves[2] == pytest.approx((halves[0] + halves[3]) / 2, rel=1e-5)


@pytest.mark.parametrize("brightness, strength, message", [(3.5, 1, "brightness must be"), (float("nan"), 1, "brightness must be"),
                                                           (0, -0.1, "strength must be"), (0, 1.5, "strength must be")])
def test_controls_out_of_range_are_refused_by_name(brightness, strength, message):
    with pytest.raises(ValueError, match=message):
        check_controls(brightness, strength)


def test_the_model_card_carries_the_well_lit_figures():
    from modeling_mirnet.model_card import well_lit_section

    assert well_lit_section(None) == ""
    text = well_lit_section({"count": 145, "command": "python benchmarks/well_lit.py --model x=y", "median_psnr": 31.234,
                             "median_ratio": 1.0123, "worst_grid": 2.01, "median_grid": 1.2, "worst_input_grid": 2.3,
                             "worst_grid_added": 1.456})
    assert "145 references" in text and "| 31.23 dB | 1.012 | 2.01 (1.20; 2.30) | 1.46x |" in text and "`python benchmarks/well_lit.py --model x=y`" in text


def test_benchmark_rewrite_keeps_every_other_scripts_section():
    """benchmark.py rewrites BENCHMARKS.md but keeps the sections the other scripts wrote (the well-lit one among
    them), whole and in order; an unclosed or mismatched marker is not a section."""
    script_sections = load_script("benchmarks/benchmark.py", "mirnet_benchmark").script_sections
    text = ("# CPU\nours\n<!-- well-lit:start -->\n## Well-lit\n| a |\n<!-- well-lit:end -->\nfree text\n"
            "<!-- model-size:start -->\nx\n<!-- model-size:end -->\n<!-- half:start -->\nno end\n<!-- other:end -->\n")
    assert script_sections(text) == ["<!-- well-lit:start -->\n## Well-lit\n| a |\n<!-- well-lit:end -->",
                                     "<!-- model-size:start -->\nx\n<!-- model-size:end -->"]
    published = (REPO / "BENCHMARKS.md").read_text()
    names = re.findall(r"<!-- ([\w-]+):start -->", published)
    assert "well-lit" in names and [s.split(":start")[0][5:] for s in script_sections(published)] == names
