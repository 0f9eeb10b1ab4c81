"""Exposure as an input: the curve that renders a requested exposure, the conditioned network and its head, tiles,
the controls users set, checkpoints with remote code, and training with each pair's exposure."""

import json

import numpy as np
import pytest
import torch

from modeling_mirnet import MIRNetConfig, MIRNetModel
from modeling_mirnet.exposure import check_exposure, curve_stops, exposure_stops, mean_luminance, render_exposure
from modeling_mirnet.hub import save_for_hub
from modeling_mirnet.inference import Enhancer
from modeling_mirnet.modeling_mirnet import TYPICAL_LOG2_LUMINANCE
from modeling_mirnet.tiling import SharedStatistics

from helpers import random_image, run_without_package, tiny_config


def dark(height=40, width=56, seed=0, level=0.15):
    torch.manual_seed(seed)
    return torch.rand(2, 3, height, width) * level


def conditioned_model(zero_residual=False) -> MIRNetModel:
    torch.manual_seed(0)
    model = MIRNetModel(tiny_config(exposure_conditioning=True)).eval()
    if zero_residual:  # the network adds nothing: the output is the curve's
        torch.nn.init.zeros_(model.conv_out.weight)
    return model


# ---------------------------------------------------------------------------------------------------- the curve
@pytest.mark.parametrize("stops", [-1.5, 0.0, 0.7, 3.0, 6.0])
def test_the_curve_renders_exactly_the_requested_exposure(stops):
    images = dark()
    requested = torch.tensor([stops, stops / 2])
    rendered = render_exposure(images, curve_stops(images, requested))
    torch.testing.assert_close(exposure_stops(rendered, images), requested, atol=2e-3, rtol=0)
    assert rendered.min() >= 0 and rendered.max() <= 1  # rolls off: never clips beyond white


def test_the_curve_keeps_white_white_darkens_by_a_plain_gain_and_is_the_identity_at_zero():
    images = dark(level=1.0)
    torch.testing.assert_close(render_exposure(images, torch.zeros(2)), images, atol=1e-5, rtol=0)
    assert torch.equal(curve_stops(images, torch.tensor([-1.0, -2.0])), torch.tensor([-1.0, -2.0]))
    white = torch.ones(1, 3, 8, 8)
    torch.testing.assert_close(render_exposure(white, torch.tensor([4.0])), white)
    brighter = [mean_luminance(render_exposure(images, torch.full((2,), s))) for s in (0.5, 1.0, 2.0)]
    assert torch.all(brighter[0] < brighter[1]) and torch.all(brighter[1] < brighter[2])


@pytest.mark.parametrize("bad, message", [(float("nan"), "between -10 and 10"), (12.0, "between -10 and 10"),
                                          ([1.0, 2.0, 3.0], "one value per image (2)")])
def test_bad_exposures_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_exposure(bad, 2)


# ------------------------------------------------------------------------------------------------- the network
def test_the_default_config_is_the_official_architecture_unchanged():
    config = MIRNetConfig()
    assert config.exposure_conditioning is False
    model = MIRNetModel(tiny_config())
    assert model.exposure_head is None and model.conv_in.in_channels == 3
    assert not any(name.startswith("exposure_head") for name in model.state_dict())
    conditioned = conditioned_model()
    assert conditioned.conv_in.in_channels == 4
    extra = set(conditioned.state_dict()) - set(model.state_dict())
    assert extra and all(name.startswith("exposure_head.") for name in extra)


def test_exposure_is_required_by_a_conditioned_model_and_refused_by_others():
    x = dark()
    with pytest.raises(ValueError, match="exposure-conditioned: pass `exposure`"):
        conditioned_model()(x)
    with pytest.raises(ValueError, match="has no exposure input"):
        MIRNetModel(tiny_config()).eval()(x, exposure=1.0)
    with pytest.raises(ValueError, match="has no exposure head"):
        MIRNetModel(tiny_config()).predict_exposure(x)


def test_the_network_adds_a_residual_to_the_curves_output():
    model, x = conditioned_model(zero_residual=True), dark()
    exposure = torch.tensor([2.0, 4.0])
    out = model(x, exposure=exposure).reconstruction
    torch.testing.assert_close(out, render_exposure(x, curve_stops(x, exposure)))
    different = conditioned_model()(x, exposure=exposure).reconstruction
    assert not torch.allclose(different, out, atol=1e-3)  # a trained-from-scratch residual changes it


def test_the_head_starts_as_one_constant_brightness_for_every_photo():
    model, x = conditioned_model(), dark()
    predicted = model.predict_exposure(x)
    assert predicted.shape == (2,)
    expected = TYPICAL_LOG2_LUMINANCE - torch.log2(mean_luminance(torch.nn.functional.interpolate(
        x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)))
    torch.testing.assert_close(predicted, expected, atol=1e-4, rtol=0)


def test_tiles_get_exactly_the_whole_photos_curve():
    model = conditioned_model(zero_residual=True)
    x = dark(80, 120, level=0.6) * torch.linspace(0.05, 1, 120)  # dark on the left, bright on the right: tiles differ
    whole = model.enhance(x, exposure=3.0)
    tiled = model.enhance(x, exposure=3.0, tile_size=48, tile_overlap=8)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)  # each tile alone would solve its own gain
    own = model.enhance(x, exposure=3.0, tile_size=48, tile_overlap=8, shared_statistics=False)
    assert (own - whole).abs().max() > 0.02
    recorded = SharedStatistics(curve_stops(x, torch.tensor([3.0, 3.0])))
    torch.testing.assert_close(model(x[:, :, :48, :48], exposure=3.0, shared_statistics=recorded).reconstruction,
                               model.enhance(x, exposure=3.0, margin=0)[:, :, :48, :48], atol=1e-6, rtol=0)


def test_trained_network_tiles_agree_with_the_whole_photo():
    model, x = conditioned_model(), dark(80, 120)
    whole = model.enhance(x, exposure=2.0).clamp(0, 1)
    tiled = model.enhance(x, exposure=2.0, tile_size=64, tile_overlap=16).clamp(0, 1)
    assert (tiled - whole).abs().mean() < 0.01


# ------------------------------------------------------------------------------------------------- the FiLM path
def film_model(identity=False) -> MIRNetModel:
    torch.manual_seed(0)
    model = MIRNetModel(tiny_config(exposure_conditioning=True, exposure_path="film")).eval()
    if not identity:  # a trained FiLM: scales and shifts that depend on the exposure
        torch.nn.init.normal_(model.film.out.weight, std=0.3)
    return model


def test_film_starts_as_the_unconditioned_network_it_modulates():
    film, x = film_model(identity=True), dark()
    assert film.conv_in.in_channels == 3 and film.exposure_head is not None
    plain = MIRNetModel(tiny_config()).eval()
    missing, unexpected = plain.load_state_dict(film.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith(("film.", "exposure_head.")) for k in unexpected)
    for stops in (0.0, 3.0):
        torch.testing.assert_close(film(x, exposure=stops).reconstruction, plain(x).reconstruction)


def test_film_scales_and_shifts_the_features_by_the_exposure():
    model, x = film_model(), dark()
    exposure = torch.tensor([1.0, 3.0])
    params = model.film(exposure).params
    assert params.shape == (2, model.config.num_rrg + 1, 2, model.config.num_features)
    features = torch.randn(2, model.config.num_features, 4, 4)
    expected = features * (1 + params[:, 1, 0, :, None, None]) + params[:, 1, 1, :, None, None]
    torch.testing.assert_close(model.film(exposure).apply(features, 1), expected)
    out = [model(x, exposure=s).reconstruction for s in (0.0, 3.0)]
    assert (out[0] - out[1]).abs().mean() > 1e-3
    whole = model.enhance(dark(80, 120), exposure=2.0)
    tiled = model.enhance(dark(80, 120), exposure=2.0, tile_size=64, tile_overlap=16)
    assert (tiled.clamp(0, 1) - whole.clamp(0, 1)).abs().mean() < 0.01


def test_an_unknown_exposure_path_is_refused_by_name():
    with pytest.raises(ValueError, match="`exposure_path` must be one of"):
        MIRNetConfig(exposure_conditioning=True, exposure_path="bias")


# -------------------------------------------------------------------------------------------------- the controls
def test_brightness_is_added_to_the_exposure_the_network_renders():
    enhancer = Enhancer(conditioned_model())
    x = dark()
    torch.testing.assert_close(enhancer.forward(x, exposure=1.0, brightness=0.5), enhancer.forward(x, exposure=1.5))
    predicted = enhancer.model.predict_exposure(x)
    torch.testing.assert_close(enhancer.forward(x, brightness=-1.0), enhancer.forward(x, exposure=predicted - 1))


def test_exposure_zero_keeps_a_well_lit_photo_when_the_network_adds_nothing():
    enhancer = Enhancer(conditioned_model(zero_residual=True))
    photo = random_image(48, 64, seed=3)
    out = np.asarray(enhancer(photo, exposure=0.0), dtype=np.int16)
    assert np.abs(out - np.asarray(photo, dtype=np.int16)).max() <= 1


def test_an_unconditioned_model_refuses_an_exposure_and_keeps_its_brightness_curve():
    enhancer = Enhancer(MIRNetModel(tiny_config()).eval())
    with pytest.raises(ValueError, match="has no exposure input"):
        enhancer(random_image(32, 32), exposure=1.0)
    x = dark()
    assert mean_luminance(enhancer.forward(x, brightness=1.0)).gt(mean_luminance(enhancer.forward(x))).all()


# ------------------------------------------------------------------------------------------- checkpoints, training
def test_a_conditioned_checkpoint_loads_with_remote_code_and_renders_the_exposure_it_is_given(tmp_path):
    model = conditioned_model()
    save_for_hub(model, tmp_path / "model")
    x = dark(32, 32)
    torch.save({"x": x, "y": model.enhance(x, exposure=2.5), "p": model.predict_exposure(x)}, tmp_path / "io.pt")
    result = run_without_package(
        """
        import sys, torch
        from transformers import AutoModel, pipeline
        from PIL import Image
        folder, io = sys.argv[1], torch.load(sys.argv[2])
        model = AutoModel.from_pretrained(folder, trust_remote_code=True)
        assert model.config.exposure_conditioning
        torch.testing.assert_close(model.enhance(io["x"], exposure=2.5), io["y"], atol=1e-6, rtol=0)
        torch.testing.assert_close(model.predict_exposure(io["x"]), io["p"], atol=1e-6, rtol=0)
        enhance = pipeline("image-to-image", model=folder, trust_remote_code=True)
        a, b = enhance(Image.new("RGB", (40, 24), (20, 20, 20)), exposure=0.0), enhance(Image.new("RGB", (40, 24), (20, 20, 20)), exposure=2.0)
        print("OK", a.getpixel((20, 12)) < b.getpixel((20, 12)))
        """,
        tmp_path / "model", tmp_path / "io.pt", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK True" in result.stdout


def test_training_pairs_carry_their_photos_exposure_and_well_lit_pairs_zero():
    from helpers import load_script
    from modeling_mirnet.evaluation import ImagePairs

    train = load_script("train/train.py")
    torch.manual_seed(0)
    low = (torch.rand(3, 32, 48) * 40).to(torch.uint8)
    high = (low.float() * 4).clamp(0, 255).to(torch.uint8)
    pairs = ImagePairs([low], [high], ["a"])
    expected = float(exposure_stops(high[None].float() / 255, low[None].float() / 255))
    crops = train.RandomPairCrops(pairs, 16, flip=True, well_lit_share=0.5, size_divisor=4, thumbnail_size=8)
    items = [crops[0] for _ in range(40)]
    dark_items, lit = [i for i in items if not i["well_lit"]], [i for i in items if i["well_lit"]]
    assert dark_items and lit
    assert all(abs(float(i["exposure"]) - expected) < 1e-6 for i in dark_items)  # a crop carries its photo's value
    assert all(float(i["exposure"]) == 0 and torch.equal(i["pixel_values"], i["labels"]) for i in lit)
    assert all(i["thumbnail"].shape == (3, 8, 8) for i in items)


def test_conditioned_training_resumes_exactly_and_validates_both_exposures(dataset_dir, tmp_path):
    from test_train import TINY_FLAGS, train_interrupted_and_straight

    common = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--exposure_conditioning", "--well_lit_share", "0.5",
              "--exposure_jitter", "1", "--num_train_epochs", "2", "--lr_scheduler", "cosine", "--random_flip", "--report_to", "none"]
    a, b, straight = train_interrupted_and_straight(common, tmp_path)
    assert any(k.startswith("exposure_head.") for k in a) and all(torch.equal(a[k], b[k]) for k in a)
    last = json.loads((straight / "trainer_state.json").read_text())["history"][-1]
    assert last["train_exposure_rms"] > 0 and last["val_exposure_rms"] >= 0
    assert 0 < last["val_psnr_reference_exposure"] < 100 and 0 < last["val_ssim_reference_exposure"] <= 1
    assert json.loads((straight / "model" / "config.json").read_text())["exposure_conditioning"] is True


def test_the_head_alone_is_retrained_on_the_frozen_network(dataset_dir, tmp_path):
    from safetensors.torch import load_file
    from test_train import run

    torch.manual_seed(0)
    start = MIRNetModel(MIRNetConfig(num_rrg=1, num_mrb=1, num_features=8, num_streams=2, num_dau_columns=1,
                                     exposure_conditioning=True))
    save_for_hub(start, tmp_path / "start")
    (tmp_path / "start" / "training_args.json").write_text(json.dumps({"args": {"epochs": 36}, "command": "the network's"}))
    common = ["--dataset", str(dataset_dir), "--init_from", str(tmp_path / "start"), "--train_exposure_head_only",
              "--crop_size", "16", "--train_batch_size", "2", "--num_train_epochs", "3", "--lr_scheduler", "cosine",
              "--well_lit_share", "0.5", "--exposure_jitter", "1", "--report_to", "none"]
    result = run([*common, "--output_dir", str(tmp_path / "head")])
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = load_file(tmp_path / "start" / "model.safetensors"), load_file(tmp_path / "head" / "model" / "model.safetensors")
    assert before.keys() == after.keys()
    network = [k for k in before if not k.startswith("exposure_head.")]
    assert network and all(torch.equal(before[k], after[k]) for k in network)  # the network is untouched
    assert not torch.equal(before["exposure_head.out.weight"], after["exposure_head.out.weight"])
    records = json.loads((tmp_path / "head" / "model" / "training_args.json").read_text())
    assert records["command"] == "the network's" and records["exposure_head_stage"]["args"]["train_exposure_head_only"]
    assert records["exposure_head_stage"]["args"]["num_features"] == 8  # the model's architecture, not the flags' defaults
    figures = json.loads((tmp_path / "head" / "exposure_head.json").read_text())
    assert figures["val_exposure_rms"] > 0 and 0 <= figures["val_well_lit_abs_median"] <= figures["val_well_lit_abs_q90"]
    # the final fit's head stage: every pair trains it, nothing is validated; gradients accumulated over 2 batches
    fit = run([*common, "--train_split", "train+validation", "--validation_split", "none", "--gradient_accumulation_steps", "2",
               "--output_dir", str(tmp_path / "fit")])
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert json.loads((tmp_path / "fit" / "exposure_head.json").read_text()) == {}
    fitted = load_file(tmp_path / "fit" / "model" / "model.safetensors")
    assert all(torch.equal(before[k], fitted[k]) for k in network)
    assert not torch.equal(after["exposure_head.out.weight"], fitted["exposure_head.out.weight"])
    unconditioned = tmp_path / "plain"
    save_for_hub(MIRNetModel(tiny_config()), unconditioned)
    refused = run([*common[:2], "--init_from", str(unconditioned), *common[4:], "--output_dir", str(tmp_path / "x")])
    assert refused.returncode != 0 and "trains the head of an exposure-conditioned --init_from model" in refused.stderr


def test_the_head_never_asks_for_less_than_the_photos_own_exposure():
    model = conditioned_model()
    torch.nn.init.constant_(model.exposure_head.out.bias, -6.0)  # a target darker than these photos
    bright = dark(level=1.0)
    assert torch.equal(model.predict_exposure(bright), torch.zeros(2))
