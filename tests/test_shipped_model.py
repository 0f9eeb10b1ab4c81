"""The shipped checkpoint (space/checkpoints/mirnet-lol): its quality on the bundled LoL eval15 must not regress, and it
must load the way users load it (AutoModel, the pipeline, and trust_remote_code without this package).

The recorded figures are space/checkpoints/mirnet-lol/test_results.json, written by train/package_model.py from
`train/evaluate.py --dataset datasets/lol_eval15` (fp32). A change to the model code, the image processor or the
metrics that moves eval15 PSNR by more than 0.05 dB fails here.
"""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from modeling_mirnet import data
from modeling_mirnet.evaluation import decode_pairs, score_pairs
from modeling_mirnet.inference import load_mirnet
from modeling_mirnet.metrics import psnr

from helpers import run_without_package

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "space" / "checkpoints" / "mirnet-lol"
EVAL15 = REPO / "datasets" / "lol_eval15"
TOLERANCE_DB = 0.05


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads((SHIPPED / "test_results.json").read_text())


@pytest.fixture(scope="module")
def shipped_scores() -> dict:
    torch.manual_seed(0)
    model, _ = load_mirnet(SHIPPED)
    pairs = decode_pairs(data.load_pairs(EVAL15, "test"))
    return score_pairs(model, pairs, batch_size=1)


def test_the_shipped_folder_is_complete_and_small():
    files = {p.name for p in SHIPPED.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "curves.png",
            "modeling_mirnet.py", "pipeline_mirnet.py", "training_args.json", "test_results.json"} <= files
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 25 * 2**20
    card = (SHIPPED / "README.md").read_text()
    assert "model-index" in card and "eval15" in card


def test_eval15_quality_does_not_regress(shipped_scores, recorded):
    assert recorded["n"] == 15 and recorded["split"] == "test"
    assert np.mean(shipped_scores["psnr"]) == pytest.approx(recorded["psnr"], abs=TOLERANCE_DB)
    assert np.mean(shipped_scores["ssim"]) == pytest.approx(recorded["ssim"], abs=5e-4)
    assert np.mean(shipped_scores["psnr_gt_mean"]) == pytest.approx(recorded["psnr_gt_mean"], abs=TOLERANCE_DB)


def test_tiles_share_the_whole_photos_statistics():
    """On trained weights, a 256 px tile left to its own global pools gets its own exposure (BENCHMARKS.md, "Other measurements");
    with the whole photo's statistics (`enhance`'s default) the tiles agree with the whole-image result."""
    model, processor = load_mirnet(SHIPPED)
    inputs = processor(PIL.Image.open(EVAL15 / "low" / "1.png"))
    as_image = lambda t: t.clamp(0, 1)[0].permute(1, 2, 0).numpy()  # noqa: E731
    whole = as_image(model.enhance(inputs["pixel_values"]))
    shared = psnr(as_image(model.enhance(inputs["pixel_values"], tile_size=256, tile_overlap=32)), whole)
    own = psnr(as_image(model.enhance(inputs["pixel_values"], tile_size=256, tile_overlap=32, shared_statistics=False)), whole)
    assert shared > 40 and own < shared - 10, (shared, own)


def test_it_beats_every_classical_baseline(shipped_scores, recorded):
    for name, baseline in recorded["baselines"].items():
        assert np.mean(shipped_scores["psnr"]) > baseline["psnr"] + 3, name


def test_pipeline_and_remote_code_without_the_package(tmp_path):
    """What a user of the Hub folder gets: trust_remote_code=True, no `modeling_mirnet` importable; the pipeline's
    output equals the packaged model's."""
    low = PIL.Image.open(EVAL15 / "low" / "1.png").convert("RGB").crop((0, 0, 200, 120))
    low.save(tmp_path / "in.png")
    model, processor = load_mirnet(SHIPPED)
    inputs = processor(low)
    expected = processor.post_process_image_to_image(model.enhance(inputs["pixel_values"]), [low.size[::-1]])[0]
    np.save(tmp_path / "expected.npy", np.asarray(expected))
    result = run_without_package(
        """
        import sys
        import numpy as np
        from transformers import AutoModel, pipeline
        folder, image, expected = sys.argv[1:4]
        model = AutoModel.from_pretrained(folder, trust_remote_code=True)
        assert type(model).__name__ == "MIRNetModel", type(model)
        enhance = pipeline("image-to-image", model=folder, trust_remote_code=True, precision="fp32")
        out = np.asarray(enhance(image))
        ref = np.load(expected)
        assert out.shape == ref.shape, (out.shape, ref.shape)
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1, np.abs(out.astype(int) - ref.astype(int)).max()
        print("ok")
        """,
        SHIPPED, tmp_path / "in.png", tmp_path / "expected.npy", cwd=tmp_path,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_the_shipped_code_files_are_the_package_code():
    """The folder must carry its code for trust_remote_code; those copies must be this package's current code, so a
    change to the model code cannot leave Hub users on stale code. Re-package with train/package_model.py after one."""
    shipped_code = sorted(p.name for p in SHIPPED.glob("*.py"))
    assert shipped_code == ["configuration_mirnet.py", "exposure.py", "image_processing_mirnet.py", "modeling_mirnet.py",
                            "pipeline_mirnet.py", "tiling.py"]
    for name in shipped_code:
        shipped = (SHIPPED / name).read_text()
        assert shipped == (REPO / "modeling_mirnet" / name).read_text(), f"{name} differs: re-run train/package_model.py"
