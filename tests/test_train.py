"""train/train.py and train/sweep.py: a CPU smoke run through `accelerate launch` that resumes exactly, the
exported model folder, config files, and the sweep table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "train"))

import data_utils  # noqa: E402

TINY_FLAGS = ["--num_rrg", "1", "--num_mrb", "1", "--num_features", "8", "--height", "2", "--width", "1",
              "--crop_size", "16", "--batch_size", "2", "--max_validation_images", "2"]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def make_pairs(folder: Path, count: int, size=(40, 36), seed=0) -> Path:
    """`count` random pairs in folder/low and folder/high: high is noise, low a darkened copy of it."""
    rng = np.random.default_rng(seed)
    for sub in ("low", "high"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        high = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        PIL.Image.fromarray(high).save(folder / "high" / f"{i}.png")
        PIL.Image.fromarray((high * 0.3).astype(np.uint8)).save(folder / "low" / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """A prepared dataset folder: 4 train, 2 validation, 2 test pairs."""
    root = tmp_path_factory.mktemp("data")
    pairs = data_utils.load_pairs(make_pairs(root / "raw", 8), "test")
    return data_utils.write_dataset(
        {"train": pairs.select(range(4)), "validation": pairs.select(range(4, 6)), "test": pairs.select(range(6, 8))},
        root / "prepared",
    )


def run(args: list[str], launcher=LAUNCH) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, str(REPO / "train" / "train.py"), *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_resume_continues_exactly(dataset_dir, tmp_path):
    """Interrupt after epoch 1 and resume: weights and metrics equal those of an uninterrupted run, bit for bit."""
    common = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--epochs", "2", "--lr_scheduler", "cosine", "--flip", "--report_to", "none"]
    interrupted = tmp_path / "interrupted"
    first = run([*common, "--output_dir", str(interrupted), "--stop_after_epoch", "1"])
    assert first.returncode == 0, first.stderr[-3000:]
    state = json.loads((interrupted / "trainer_state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]) == 1
    second = run([*common, "--output_dir", str(interrupted), "--resume", "latest"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stdout
    straight = tmp_path / "straight"
    third = run([*common, "--output_dir", str(straight)])
    assert third.returncode == 0, third.stderr[-3000:]

    a = load_file(interrupted / "checkpoints" / "epoch_0002" / "model.safetensors")
    b = load_file(straight / "checkpoints" / "epoch_0002" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    history_a = [drop(h) for h in json.loads((interrupted / "trainer_state.json").read_text())["history"]]
    history_b = [drop(h) for h in json.loads((straight / "trainer_state.json").read_text())["history"]]
    assert history_a == history_b and len(history_a) == 2
    assert history_a[1]["lr"] < history_a[0]["lr"]  # the cosine schedule was restored too, not restarted

    # the exported best model is a complete Hub folder with a model card and curves
    from modeling_mirnet.hub import load_mirnet

    model_dir = straight / "model"
    model, _ = load_mirnet(model_dir)
    assert model.config.num_rrg == 1 and model.config.height == 2 and model.config.loss_type == "charbonnier"
    for name in ("README.md", "curves.png", "trainer_state.json", "modeling_mirnet.py", "preprocessor_config.json"):
        assert (model_dir / name).is_file(), name
    card = (model_dir / "README.md").read_text()
    best = max(history_b, key=lambda h: h["val_psnr"])
    assert "model-index" in card and f"{best['val_psnr']:.2f}" in card
    assert PIL.Image.open(straight / "curves.png").size[0] > 100


def test_training_reduces_loss_and_checkpoints_are_pruned(dataset_dir, tmp_path):
    out = tmp_path / "run"
    result = run(["--dataset", str(dataset_dir), *TINY_FLAGS, "--epochs", "3", "--learning_rate", "3e-3", "--output_dir", str(out),
                  "--checkpoints_total_limit", "1", "--report_to", "none"], launcher=[sys.executable])
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((out / "trainer_state.json").read_text())["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["epoch_0003"]


def test_config_file_and_override(dataset_dir, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "train"))
    import train

    config = REPO / "train" / "configs" / "lol_09_channels_32.yaml"
    args = train.parse_args(["--config", str(config), "--dataset", str(dataset_dir), "--epochs", "3"])
    assert (args.num_features, args.epochs, args.learning_rate, args.loss) == (32, 3, 1e-4, "charbonnier")
    assert args.experiment == "lol_09_channels_32"

    bad = tmp_path / "bad.yaml"
    for text, message in (("epochz: 3\n", "unknown key(s) epochz"), ("epochs: [3\n", "cannot be parsed"), ("- 3\n", "expected a mapping")):
        bad.write_text(text)
        with pytest.raises(SystemExit):
            train.parse_args(["--config", str(bad), "--dataset", str(dataset_dir)])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--config", str(tmp_path / "missing.yaml")])
    assert "missing.yaml: no such file" in capsys.readouterr().err


def test_all_nineteen_configs_parse():
    """The seed study's 19 experiments: LoL 1-12 and SICE 13-19, each a valid train.py config."""
    import train
    import yaml

    configs = sorted((REPO / "train" / "configs").glob("*.yaml"))
    numbers = {}
    for path in configs:
        args = train.parse_args(["--config", str(path)])
        numbers[yaml.safe_load(path.read_text())["meta"]["number"]] = args.dataset
    assert sorted(numbers) == list(range(1, 20))
    assert all(numbers[n] == ("data/lol" if n <= 12 else "data/sice") for n in numbers)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "/no/such/folder"], "no such dataset folder"),
        (["--validation_split", "dev"], "no split 'dev'"),
        (["--crop_size", "64"], "smaller than --crop_size 64"),
    ],
)
def test_bad_input_is_reported(dataset_dir, tmp_path, extra, message):
    args = ["--dataset", str(dataset_dir), *TINY_FLAGS, "--epochs", "1", "--output_dir", str(tmp_path / "r"), "--report_to", "none", *extra]
    result = run(args, launcher=[sys.executable])
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_sweep_runs_configs_and_writes_table(dataset_dir, tmp_path):
    configs = []
    for n, features in ((1, 8), (2, 16)):
        path = tmp_path / f"exp_{n}.yaml"
        path.write_text(
            f"meta:\n  number: {n}\n  changed: {{num_features: {features}}}\n  seed_reported_val_psnr: {66.0 + n}\n"
            f"experiment: exp_{n}\ndataset: {dataset_dir}\nnum_rrg: 1\nnum_mrb: 1\nnum_features: {features}\nheight: 2\n"
            "width: 1\ncrop_size: 16\nbatch_size: 2\nepochs: 1\nreport_to: none\n"
        )
        configs.append(str(path))
    out = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / "train" / "sweep.py"), *configs, "--launcher", sys.executable,
                             "--output_root", str(out)], capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((out / "sweep_results.json").read_text())
    assert [r["experiment"] for r in rows] == ["exp_1", "exp_2"]
    for row in rows:
        history = json.loads((out / row["experiment"] / "trainer_state.json").read_text())["history"]
        assert row["max_val_psnr"] == max(h["val_psnr"] for h in history)
        assert row["min_val_loss"] == min(h["val_loss"] for h in history)
    assert rows[0]["seed_true_val_psnr"] == pytest.approx(67.0 - 48.1308, abs=1e-3)
    table = (out / "sweep_results.md").read_text()
    assert "| 2 | exp_2 | num_features=16 | 1/1 |" in table and "18.87" in table
