"""train/evaluate.py and the metrics it reports."""

import json
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from modeling_mirnet.inference import load_mirnet
from modeling_mirnet.metrics import INFLATION_DB, psnr, psnr_inflated, ssim

from helpers import load_script

# loaded by path under its own name: the name `evaluate` belongs to the Hugging Face `evaluate` package
evaluate_script = load_script("train/evaluate.py", "mirnet_evaluate")


def write_pairs(root: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    for sub in ("low", "high"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, (low, high) in pairs.items():
        PIL.Image.fromarray(low).save(root / "low" / f"{name}.png")
        PIL.Image.fromarray(high).save(root / "high" / f"{name}.png")
    return root


def textured(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(20, 200, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def known_pairs(tmp_path):
    """Two pairs whose input differs from the reference by a constant k/255: PSNR = 20*log10(255/k) exactly."""
    a, b = textured(24, 32, 0), textured(24, 32, 1)
    return write_pairs(tmp_path / "pairs", {"a": (a + 5, a), "b": (b + 51, b)})


def test_psnr_of_a_known_offset_and_the_seed_convention():
    high = textured(16, 16, 0)
    assert psnr(high + 5, high) == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)  # 34.15 dB
    assert psnr_inflated(high + 5, high) - psnr(high + 5, high) == pytest.approx(48.13, abs=0.005)
    assert psnr(high, high) == math.inf


def test_ssim_matches_the_standard_definition():
    skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is the SSIM reference (test extra)")
    x = textured(40, 56, 0)
    y = np.clip(x.astype(int) + np.random.default_rng(1).integers(-40, 40, x.shape), 0, 255).astype(np.uint8)
    reference = skimage_metrics.structural_similarity(
        x / 255.0, y / 255.0, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(y, x) == pytest.approx(reference, abs=1e-10)
    assert ssim(x, x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in size"):
        ssim(x, x[:20])


def test_evaluate_reports_the_known_psnr(known_pairs, tmp_path):
    out = tmp_path / "results"
    assert evaluate_script.main(["--dataset", str(known_pairs), "--baselines", "input", "autocontrast", "--output", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["n"] == 2 and report["split"] == "test"
    rows = {r["name"]: r for r in report["methods"]["input"]["images"]}
    # float32 metrics on the device agree with the exact value to well under 1e-3 dB
    assert rows["a.png"]["psnr"] == pytest.approx(20 * math.log10(255 / 5), abs=1e-4)
    assert rows["b.png"]["psnr"] == pytest.approx(20 * math.log10(255 / 51), abs=1e-4)
    mean = report["methods"]["input"]["mean"]
    assert mean["psnr"] == pytest.approx((rows["a.png"]["psnr"] + rows["b.png"]["psnr"]) / 2)
    assert mean["psnr_seed_convention"] == pytest.approx(mean["psnr"] + INFLATION_DB)
    markdown = (out / "results.md").read_text()
    assert (f"| input | {mean['psnr']:.2f} | {mean['ssim']:.4f} | {mean['psnr_gt_mean']:.2f} | "
            f"{mean['psnr_seed_convention']:.2f} |") in markdown
    # the input is brighter than its reference by a constant: GT-mean scaling brings it closer
    assert mean["psnr_gt_mean"] > mean["psnr"]
    assert "| autocontrast |" in markdown


def test_model_scores_equal_its_own_enhanced_images(known_pairs, tiny_model_dir, tmp_path):
    out = tmp_path / "results"
    argv = ["--dataset", str(known_pairs), "--model", f"tiny={tiny_model_dir}", "--baselines", "--save-images", "--output", str(out)]
    assert evaluate_script.main(argv) == 0
    report = json.loads((out / "results.json").read_text())
    assert list(report["methods"]) == ["tiny"]
    # recompute one image by hand: load, enhance (as users do: with the mirrored margin), quantize to 8 bits, PSNR
    model, processor = load_mirnet(tiny_model_dir)
    low = PIL.Image.open(known_pairs / "low" / "a.png")
    inputs = processor(low)
    enhanced = processor.post_process_image_to_image(model.enhance(inputs["pixel_values"]), [low.size[::-1]])[0]
    expected = psnr(enhanced, PIL.Image.open(known_pairs / "high" / "a.png"))
    row = next(r for r in report["methods"]["tiny"]["images"] if r["name"] == "a.png")
    assert row["psnr"] == pytest.approx(expected, abs=1e-4)
    saved = PIL.Image.open(out / "images" / "tiny" / "a.png")
    assert np.array_equal(np.asarray(saved), np.asarray(enhanced))
    # --margin 0: the network on the photo as it is (what train.py validates)
    assert evaluate_script.main([*argv[:-1], str(tmp_path / "plain"), "--margin", "0"]) == 0
    with torch.no_grad():
        plain = processor.post_process_image_to_image(model(inputs["pixel_values"]).reconstruction, [low.size[::-1]])[0]
    row = next(r for r in json.loads((tmp_path / "plain" / "results.json").read_text())["methods"]["tiny"]["images"] if r["name"] == "a.png")
    assert row["psnr"] == pytest.approx(psnr(plain, PIL.Image.open(known_pairs / "high" / "a.png")), abs=1e-4)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "/no/such/folder"], "no such dataset folder"),
        (["--split", "train"], "no split 'train'"),
        (["--model", "/no/such/model"], "no such model folder"),
        (["--baselines"], "nothing to evaluate"),
    ],
)
def test_bad_input_is_reported_without_a_traceback(known_pairs, tmp_path, capsys, argv, message):
    full = ["--dataset", str(known_pairs), "--output", str(tmp_path / "out")]
    full = argv + full if argv[0] != "--dataset" else argv + full[2:]
    assert evaluate_script.main(full) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_unpaired_folder_names_the_file(known_pairs, tmp_path, capsys):
    (known_pairs / "low" / "orphan.png").write_bytes((known_pairs / "low" / "a.png").read_bytes())
    assert evaluate_script.main(["--dataset", str(known_pairs), "--output", str(tmp_path / "out")]) == 2
    assert "orphan" in capsys.readouterr().err
