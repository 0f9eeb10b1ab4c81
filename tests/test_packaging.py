"""A non-editable install (`pip install .`, as a wheel would install it) works on its own: the CLI, the pipeline,
training's export with its model card, and train/package_model.py, with the package imported from the install and
not from this checkout."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package built and installed into a fresh folder (no editable hook), put first on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--target", str(target), str(REPO)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    assert (target / "modeling_mirnet" / "model_card.md").is_file()  # the template travels as package data
    return {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}, target


def run(env, *args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd)


@pytest.mark.slow
def test_installed_package_runs_the_cli_pipeline_training_export_and_packaging(installed, dataset_dir, tiny_model_dir, tmp_path):
    env, target = installed
    where = run(env, "-c", "import modeling_mirnet; print(modeling_mirnet.__file__)", cwd=tmp_path)
    assert where.stdout.strip() == str(target / "modeling_mirnet" / "__init__.py")
    (tmp_path / "in").mkdir()
    import PIL.Image

    PIL.Image.new("RGB", (40, 32), (20, 10, 5)).save(tmp_path / "in" / "a.png")
    cli = run(env, "-m", "modeling_mirnet.cli", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), cwd=tmp_path)
    assert cli.returncode == 0 and (tmp_path / "out" / "a.png").is_file(), cli.stderr[-2000:]
    pipe = run(env, "-c", f"import modeling_mirnet as m; print(m.mirnet_pipeline({str(tiny_model_dir)!r})({str(tmp_path / 'in' / 'a.png')!r}).size)", cwd=tmp_path)
    assert pipe.stdout.strip().endswith("(40, 32)"), pipe.stderr[-2000:]
    flags = ["--dataset", str(dataset_dir), "--num_rrg", "1", "--num_mrb", "1", "--num_features", "8", "--num_streams", "2",
             "--num_dau_columns", "1", "--crop_size", "16", "--train_batch_size", "2", "--num_train_epochs", "1", "--report_to", "none",
             "--output_dir", str(tmp_path / "run")]
    train = run(env, str(REPO / "train" / "train.py"), *flags, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    assert "MIRNet" in (tmp_path / "run" / "model" / "README.md").read_text()  # the card, rendered from the installed template
    package = run(env, str(REPO / "train" / "package_model.py"), "--run", str(tmp_path / "run"), "--output", str(tmp_path / "packaged"),
                  "--name", "mirnet-tiny", cwd=tmp_path)
    assert package.returncode == 0, package.stderr[-3000:]
    assert (tmp_path / "packaged" / "model.safetensors").is_file() and "mirnet-tiny" in (tmp_path / "packaged" / "README.md").read_text()
