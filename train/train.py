#!/usr/bin/env python
"""Train MIRNet for low-light enhancement with 🤗 Accelerate (CPU, one GPU or many, unchanged).

The defaults are the seed study's recipe: Charbonnier loss, Adam at lr 1e-4, batch 4, random 128x128 paired
crops, 3 RRGs x 2 MRBs, 64 channels, 50 epochs, ReduceLROnPlateau on validation PSNR.

    # a dataset written by train/prepare_dataset.py (or a Hub dataset id in the same layout)
    accelerate launch train/train.py --dataset data/lol --output_dir runs/lol
    # one of the seed's 19 experiments (any flag on the command line overrides the file)
    accelerate launch train/train.py --config train/configs/lol_01_baseline.yaml --dataset data/lol
    # continue an interrupted run exactly where its last finished epoch left it
    accelerate launch train/train.py --config ... --resume latest
    # CPU, no accelerate config file needed
    accelerate launch --cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no train/train.py ...

Mixed precision comes from the launcher (`accelerate launch --mixed_precision bf16`), never from this file.

What a run writes to --output_dir:
    checkpoints/epoch_NNNN/   accelerate state (weights, optimizer, scheduler, RNG) + trainer_state.json, every epoch
    model/                    the best epoch's model (by validation PSNR): save_pretrained + image processor + code,
                              a model card (README.md) and the curves; ready for `push_to_hub`
    trainer_state.json        per-epoch history (train/validation loss, PSNR, SSIM, lr) and the best epoch
    curves.png                loss and PSNR curves, train and validation
    logs/                     TensorBoard logs (when tensorboard is installed)
"""

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, gather_object, set_seed
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_utils import DataError, load_pairs  # noqa: E402

from modeling_mirnet import MIRNetConfig, MIRNetImageProcessor, MIRNetModel, to_float_rgb  # noqa: E402
from modeling_mirnet.hub import save_for_hub  # noqa: E402
from modeling_mirnet.metrics import psnr, ssim  # noqa: E402
from modeling_mirnet.modeling_mirnet import enhancement_loss  # noqa: E402

MODEL_KNOBS = ("num_rrg", "num_mrb", "num_features", "height", "width", "channel_factor", "reduction", "bias")
REPO_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------------------------
# 1. Arguments (a YAML/JSON --config supplies defaults; command-line flags override it)
# ----------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML or JSON file of flag values (keys = flag names without --)")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", help="folder written by prepare_dataset.py, a Hub dataset id, or a low/+high/ folder")
    data.add_argument("--train_split", default="train")
    data.add_argument("--validation_split", default="validation")
    data.add_argument("--crop_size", type=int, default=128, help="side of the random paired training crops")
    data.add_argument("--flip", action=argparse.BooleanOptionalAction, default=False, help="random horizontal/vertical flips")
    data.add_argument("--max_validation_images", type=int, default=None, help="validate on the first N images only")
    data.add_argument("--num_workers", type=int, default=0)
    model = p.add_argument_group("model (MIRNetConfig)")
    model.add_argument("--num_rrg", type=int, default=3, help="recursive residual groups")
    model.add_argument("--num_mrb", type=int, default=2, help="multi-scale residual blocks per RRG")
    model.add_argument("--num_features", type=int, default=64, help="channels of the full-resolution stream")
    model.add_argument("--height", type=int, default=3, help="parallel streams (resolutions) per MRB")
    model.add_argument("--width", type=int, default=2, help="DAU columns per MRB")
    model.add_argument("--channel_factor", type=int, default=2, help="channel multiplier between streams")
    model.add_argument("--reduction", type=int, default=8, help="channel-attention reduction")
    model.add_argument("--bias", action=argparse.BooleanOptionalAction, default=False)
    model.add_argument("--init_from", help="start from this model folder or Hub id instead of random weights")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--loss", choices=["charbonnier", "rmse", "l1"], default="charbonnier")
    opt.add_argument("--learning_rate", type=float, default=1e-4)
    opt.add_argument("--lr_scheduler", choices=["plateau", "cosine", "constant"], default="plateau")
    opt.add_argument("--plateau_factor", type=float, default=0.5)
    opt.add_argument("--plateau_patience", type=int, default=5)
    opt.add_argument("--min_learning_rate", type=float, default=1e-7)
    opt.add_argument("--batch_size", type=int, default=4, help="per device")
    opt.add_argument("--epochs", type=int, default=50)
    opt.add_argument("--max_grad_norm", type=float, default=None)
    opt.add_argument("--seed", type=int, default=42)
    run = p.add_argument_group("run")
    run.add_argument("--output_dir", default="runs/mirnet")
    run.add_argument("--resume", help="'latest' or a checkpoints/epoch_NNNN folder: continue exactly from there")
    run.add_argument("--checkpoints_total_limit", type=int, default=2, help="keep this many epoch checkpoints")
    run.add_argument("--stop_after_epoch", type=int, default=None, help="end this invocation after epoch N (resume later)")
    run.add_argument("--time_budget_minutes", type=float, default=None, help="end after the epoch that passes this budget")
    run.add_argument("--report_to", default="tensorboard", help="accelerate tracker (tensorboard, trackio, ...) or 'none'")
    run.add_argument("--push_to_hub", metavar="REPO_ID", help="upload model/ to this Hub repo at the end")
    run.add_argument("--experiment", default=None, help="name shown in the model card and sweep table")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args, _ = parser.parse_known_args(argv)
    if args.config:
        overrides = read_config(args.config, parser)
        parser.set_defaults(**overrides)
    args = parser.parse_args(argv)
    if not args.dataset:
        parser.error("--dataset is required (on the command line or in --config)")
    for name in ("crop_size", "batch_size", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.crop_size % (2 ** (args.height - 1)):
        parser.error(f"--crop_size {args.crop_size} must be a multiple of {2 ** (args.height - 1)} for --height {args.height}")
    return args


def read_config(path: str, parser: argparse.ArgumentParser) -> dict:
    """Flag values from a YAML/JSON file; its optional `meta:` section (experiment notes) is ignored here."""
    if not Path(path).is_file():
        parser.error(f"--config {path}: no such file")
    text = Path(path).read_text()
    import yaml

    try:
        values = json.loads(text) if path.endswith(".json") else (yaml.safe_load(text) or {})
    except (ValueError, yaml.YAMLError) as err:
        parser.error(f"--config {path}: cannot be parsed ({str(err).splitlines()[0]})")
    if not isinstance(values, dict):
        parser.error(f"--config {path}: expected a mapping of flag names to values, got {type(values).__name__}")
    values.pop("meta", None)
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        parser.error(f"{path}: unknown key(s) {', '.join(unknown)}")
    return values


# ----------------------------------------------------------------------------------------------------------------
# 2. Data: random paired crops for training, whole images for validation
# ----------------------------------------------------------------------------------------------------------------
def to_tensor(image) -> torch.Tensor:
    """PIL image -> (3, H, W) float32 tensor in [0, 1], converted as the image processor converts inputs."""
    return torch.from_numpy(to_float_rgb(image)).permute(2, 0, 1).contiguous()


def make_crop_transform(crop_size: int, flip: bool):
    """A `with_transform` function: the same random crop (and flips) applied to each low/high pair."""

    def transform(batch):
        lows, highs = [], []
        for low, high, name in zip(batch["low"], batch["high"], batch["name"]):
            if low.size != high.size:
                raise DataError(f"{name}: low {low.size} and high {high.size} differ in size")
            width, height = low.size
            if width < crop_size or height < crop_size:
                raise DataError(f"{name}: {width}x{height} is smaller than --crop_size {crop_size}")
            top = int(torch.randint(0, height - crop_size + 1, ()))
            left = int(torch.randint(0, width - crop_size + 1, ()))
            box = (left, top, left + crop_size, top + crop_size)
            x, y = to_tensor(low.crop(box)), to_tensor(high.crop(box))
            if flip:
                for dim in (2, 1):
                    if torch.rand(()) < 0.5:
                        x, y = x.flip(dim), y.flip(dim)
            lows.append(x)
            highs.append(y)
        return {"pixel_values": lows, "labels": highs}

    return transform


# ----------------------------------------------------------------------------------------------------------------
# 3. Model, optimizer, learning-rate schedule
# ----------------------------------------------------------------------------------------------------------------
def build_model(args) -> MIRNetModel:
    if args.init_from:
        from modeling_mirnet.hub import load_mirnet

        model, _ = load_mirnet(args.init_from)
        model.config.loss_type = args.loss
        return model.train()
    config = MIRNetConfig(**{k: getattr(args, k) for k in MODEL_KNOBS}, loss_type=args.loss)
    return MIRNetModel(config)


def build_scheduler(args, optimizer, steps_per_epoch: int):
    """plateau: the seed's ReduceLROnPlateau on validation PSNR (stepped per epoch); cosine: per optimizer step."""
    if args.lr_scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=args.plateau_factor, patience=args.plateau_patience, min_lr=args.min_learning_rate
        )
    if args.lr_scheduler == "cosine":
        total = max(1, args.epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=args.min_learning_rate)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


# ----------------------------------------------------------------------------------------------------------------
# 4. Checkpoints: one accelerate state per epoch; `--resume` restores weights, optimizer, schedule and RNG
# ----------------------------------------------------------------------------------------------------------------
def checkpoint_dirs(output_dir: Path) -> list[Path]:
    folder = output_dir / "checkpoints"
    done = [p for p in folder.glob("epoch_*") if (p / "trainer_state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def find_resume_dir(args) -> Path | None:
    if not args.resume:
        return None
    if args.resume == "latest":
        found = checkpoint_dirs(Path(args.output_dir))
        return found[-1] if found else None  # nothing saved yet: start from scratch
    path = Path(args.resume)
    if not (path / "trainer_state.json").is_file():
        raise DataError(f"--resume {path}: not a finished checkpoint (no trainer_state.json)")
    return path


def save_checkpoint(accelerator: Accelerator, output_dir: Path, state: dict, keep: int) -> None:
    folder = output_dir / "checkpoints" / f"epoch_{state['epoch']:04d}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        write_json(folder / "trainer_state.json", state)  # written last: marks the checkpoint complete
        for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------------
# 5. Validation: whole images, PSNR/SSIM on the 8-bit output (as evaluate.py scores it)
# ----------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def validate(accelerator: Accelerator, model: MIRNetModel, dataset, processor: MIRNetImageProcessor) -> dict:
    model.eval()
    config = accelerator.unwrap_model(model).config
    rows = []
    with accelerator.split_between_processes(list(range(len(dataset)))) as indices:
        for i in indices:
            example = dataset[i]
            inputs = processor(example["low"], return_tensors="pt")
            labels = processor(example["high"], return_tensors="pt")["pixel_values"].to(accelerator.device)
            with accelerator.autocast():
                out = model(inputs["pixel_values"].to(accelerator.device), labels=labels)
            h, w = inputs["original_sizes"][0]
            loss = float(enhancement_loss(out.reconstruction[..., :h, :w], labels[..., :h, :w], config.loss_type, config.charbonnier_eps))
            image = processor.post_process_image_to_image(out.reconstruction, inputs["original_sizes"])[0]
            rows.append((loss, psnr(image, example["high"]), ssim(image, example["high"])))
    rows = gather_object(rows)
    model.train()
    loss, p, s = (float(np.mean([r[k] for r in rows])) for k in range(3))
    return {"val_loss": loss, "val_psnr": p, "val_ssim": s}


def batch_psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean PSNR (data range 1) over a batch of crops, on the clamped float output."""
    mse = (prediction.detach().float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((-10 * torch.log10(mse)).mean())


# ----------------------------------------------------------------------------------------------------------------
# 6. Curves and model card
# ----------------------------------------------------------------------------------------------------------------
def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Loss and PSNR per epoch, train and validation, like the seed study's figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "psnr", "PSNR (dB, data range 1)")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], label="train (crops)")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], label="validation (whole images)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_model_card(folder: Path, args, state: dict) -> None:
    """README.md for the model folder, rendered from the repository's model_card.md template."""
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import EvalResult

    best = state["history"][state["best_epoch"] - 1]
    dataset_name = str(args.dataset)
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-to-image",
        tags=["low-light-image-enhancement", "mirnet", "custom_code"],
        metrics=["psnr", "ssim"],
        model_name=Path(args.output_dir).name,
        eval_results=[
            EvalResult(task_type="image-to-image", dataset_type=dataset_name, dataset_name=dataset_name,
                       dataset_split=args.validation_split, metric_type=m, metric_name=m.upper(), metric_value=round(best[f"val_{m}"], 4))
            for m in ("psnr", "ssim")
        ],
    )
    hyper = {k: v for k, v in vars(args).items() if k not in ("config", "resume", "push_to_hub", "report_to")}
    card = ModelCard.from_template(
        card_data,
        template_path=str(REPO_ROOT / "model_card.md"),
        model_id=Path(args.output_dir).name,
        experiment=args.experiment or "custom run",
        dataset=dataset_name,
        validation_split=args.validation_split,
        best_epoch=state["best_epoch"],
        epochs_run=state["epoch"],
        val_psnr=f"{best['val_psnr']:.2f}",
        val_ssim=f"{best['val_ssim']:.4f}",
        val_loss=f"{best['val_loss']:.5f}",
        hyperparameters="\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(hyper.items())),
        command="accelerate launch train/train.py " + " ".join(sys.argv[1:]),
    )
    card.save(folder / "README.md")


# ----------------------------------------------------------------------------------------------------------------
# 7. Training loop (errors in the data end the run with one line; finished epochs are kept)
# ----------------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return train(args)
    except DataError as err:  # bad data is reported in one line; finished epochs stay in their checkpoints
        print(f"error: {err}", file=sys.stderr)
        return 2


def train(args) -> int:
    output_dir = Path(args.output_dir)
    report_to = None if args.report_to == "none" else args.report_to
    if report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            print("tensorboard is not installed (pip install tensorboard): logging to trainer_state.json only", file=sys.stderr)
            report_to = None
    accelerator = Accelerator(
        log_with=report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    set_seed(args.seed)

    dataset = load_pairs(args.dataset)
    for split in (args.train_split, args.validation_split):
        if split not in dataset:
            raise DataError(f"{args.dataset}: no split {split!r} (has {', '.join(dataset)})")
    resume_dir = find_resume_dir(args)
    train_set = dataset[args.train_split].with_transform(make_crop_transform(args.crop_size, args.flip))
    val_set = dataset[args.validation_split]
    if args.max_validation_images:
        val_set = val_set.select(range(min(args.max_validation_images, len(val_set))))
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.num_workers
    )
    if len(train_set) < args.batch_size:
        raise DataError(f"{args.dataset}: {len(train_set)} training pairs is fewer than --batch_size {args.batch_size}")

    model = build_model(args)
    processor = MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    scheduler = build_scheduler(args, optimizer, len(train_loader))
    accelerator.register_for_checkpointing(scheduler)

    state = {"epoch": 0, "global_step": 0, "best_epoch": 0, "best_val_psnr": -math.inf, "history": []}
    if resume_dir is not None:
        accelerator.load_state(str(resume_dir))
        state = json.loads((resume_dir / "trainer_state.json").read_text())
        accelerator.print(f"resumed from {resume_dir} (epoch {state['epoch']} done)")
    if state["epoch"] >= args.epochs:
        accelerator.print(f"nothing to do: {state['epoch']} of {args.epochs} epochs already done")
    accelerator.init_trackers("mirnet", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    unwrapped = accelerator.unwrap_model(model)
    started = time.monotonic()
    for epoch in range(state["epoch"] + 1, args.epochs + 1):
        model.train()
        train_loader.set_epoch(epoch)
        losses, psnrs = [], []
        progress = tqdm(train_loader, desc=f"epoch {epoch}/{args.epochs}", disable=not accelerator.is_local_main_process)
        for batch in progress:
            with accelerator.autocast():
                out = model(batch["pixel_values"], labels=batch["labels"])
            accelerator.backward(out.loss)
            if args.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if args.lr_scheduler != "plateau":
                scheduler.step()
            state["global_step"] += 1
            losses.append(float(accelerator.gather(out.loss.detach()).mean()))
            psnrs.append(batch_psnr(out.reconstruction, batch["labels"]))
            progress.set_postfix(loss=f"{losses[-1]:.4f}")

        metrics = validate(accelerator, model, val_set, processor)
        if args.lr_scheduler == "plateau":
            scheduler.step(metrics["val_psnr"])
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "train_psnr": float(np.mean(psnrs)), **metrics,
                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.monotonic() - started, 1)}
        state["history"].append(record)
        state["epoch"] = epoch
        accelerator.log({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
        accelerator.print(
            f"epoch {epoch}: train loss {record['train_loss']:.5f} psnr {record['train_psnr']:.2f} | "
            f"val loss {record['val_loss']:.5f} psnr {record['val_psnr']:.2f} ssim {record['val_ssim']:.4f} | lr {record['lr']:.2e}"
        )
        if metrics["val_psnr"] > state["best_val_psnr"]:
            state["best_val_psnr"], state["best_epoch"] = metrics["val_psnr"], epoch
            if accelerator.is_main_process:
                save_for_hub(unwrapped, output_dir / "model", processor)
        save_checkpoint(accelerator, output_dir, state, args.checkpoints_total_limit)
        if accelerator.is_main_process:
            write_json(output_dir / "trainer_state.json", state)
            plot_curves(state["history"], output_dir / "curves.png", args.experiment or output_dir.name)
        out_of_time = args.time_budget_minutes and (time.monotonic() - started) / 60 > args.time_budget_minutes
        if epoch == args.stop_after_epoch or (out_of_time and epoch < args.epochs):
            accelerator.print(f"stopping after epoch {epoch}; continue with --resume latest")
            break

    # ------------------------------------------------------------------------------------------------------------
    # 8. Export: the best model, its processor, code, card and curves in output_dir/model (ready to push)
    # ------------------------------------------------------------------------------------------------------------
    accelerator.end_training()
    if accelerator.is_main_process and state["best_epoch"]:
        model_dir = output_dir / "model"
        write_json(model_dir / "trainer_state.json", state)
        if (output_dir / "curves.png").is_file():
            (model_dir / "curves.png").write_bytes((output_dir / "curves.png").read_bytes())
        write_model_card(model_dir, args, state)
        if state["epoch"] >= args.epochs:
            accelerator.print(f"best epoch {state['best_epoch']}: validation PSNR {state['best_val_psnr']:.2f} dB -> {model_dir}")
        if args.push_to_hub and state["epoch"] >= args.epochs:
            from modeling_mirnet.hub import push_folder_to_hub

            accelerator.print(push_folder_to_hub(model_dir, args.push_to_hub))
    return 0


if __name__ == "__main__":
    sys.exit(main())
