#!/usr/bin/env python
"""Train MIRNet for low-light enhancement with 🤗 Accelerate (CPU, one GPU or many, unchanged).

The defaults are the study's recipe: Charbonnier loss, Adam at lr 1e-4, batch 4, random 128x128 paired
crops, 3 RRGs x 2 MRBs, 64 channels, 50 epochs, ReduceLROnPlateau on validation PSNR. The flags are those of the
diffusers training examples where they have one (`--train_batch_size`, `--num_train_epochs`,
`--gradient_accumulation_steps`, `--resume_from_checkpoint`, `--validation_epochs`, `--random_flip`, ...).

    # a dataset written by train/prepare_dataset.py (or a Hub dataset id in the same layout)
    accelerate launch train/train.py --dataset data/lol --output_dir runs/lol
    # one of the study's 19 experiments (any flag on the command line overrides the file)
    accelerate launch train/train.py --config train/configs/lol_01_baseline.yaml --dataset data/lol
    # continue an interrupted run exactly where its last finished epoch left it
    accelerate launch train/train.py --config ... --resume_from_checkpoint latest
    # CPU, no accelerate config file needed; bf16 autocast where the CPU has native bf16 (AVX512-BF16 / AMX)
    accelerate launch --cpu --num_processes 1 --num_machines 1 --mixed_precision bf16 --dynamo_backend no train/train.py ...

Compilation too comes from the launcher: `accelerate launch --dynamo_backend inductor [--dynamo_mode reduce-overhead]`
compiles the training step (reduce-overhead: CUDA graphs of the fixed-shape step on a GPU); each epoch records its first
step's seconds (`first_step_seconds`: with compilation, the compile time). Validation always runs the plain module.
`--gradient_accumulation_steps N` makes one optimizer update of the mean gradient of N batches (`accelerator.accumulate`);
the schedule, the EMA and `global_step` count updates, not batches.
Exposure: `--whole_images` trains on whole photos, so the global pools of SKFF and channel attention see the
scene as they do at inference; `--well_lit_share` mixes in references as both input and target (well-lit photos must
come out unchanged; `--well_lit_loss_type` gives them their own loss); `--exposure_jitter` changes each dark input's
exposure (the target kept); `--loss_type gt_mean`; `--checkerboard_free` keeps the up-samplers from drawing a grid.
Mixed precision comes from the launcher (`accelerate launch --mixed_precision bf16`), never from this file; on a CPU
without native bf16 the run warns that fp32 would be faster. For speed, the pairs are decoded once into uint8 tensors
(random crops are cut from memory), Adam is fused where torch has it, and validation (every `--validation_epochs`
epochs and after the last) scores whole images on the device with the loop evaluate.py uses
(modeling_mirnet.evaluation). Progress is logged with accelerate's logger (main process, stderr).

What a run writes to --output_dir:
    checkpoints/epoch_NNNN/   accelerate state (weights, optimizer, scheduler, RNG) + trainer_state.json, every epoch
    model/                    the best epoch's model (by validation PSNR; the last epoch with --validation_split none):
                              save_pretrained + image processor + code,
                              a model card (README.md), the curves and training_args.json (flags, command, commit);
                              ready for `push_to_hub`, or for train/package_model.py to add test-split figures
    trainer_state.json        per-epoch history (train/validation loss, PSNR, GT-mean PSNR, SSIM, lr; train, first-step,
                              validation and checkpoint seconds; validation figures are null on epochs not validated), best epoch
    curves.png                loss and PSNR curves, train and validation
    logs/                     TensorBoard logs (when tensorboard is installed)
"""

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, gather_object, is_tensorboard_available, set_seed
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm
from transformers import get_scheduler

from modeling_mirnet import MIRNetConfig, MIRNetImageProcessor, MIRNetModel, enhancement_loss
from modeling_mirnet.configuration_mirnet import EXPOSURE_PATHS, LOSS_TYPES
from modeling_mirnet.data import DataError, load_pairs
from modeling_mirnet.evaluation import ImagePairs, decode_pairs, score_pairs
from modeling_mirnet.exposure import exposure_stops, scale_exposure
from modeling_mirnet.hub import save_for_hub
from modeling_mirnet.inference import cpu_has_fast_bf16
from modeling_mirnet.memory import keep_freed_memory
from modeling_mirnet.metrics import psnr_batch
from modeling_mirnet.model_card import git_commit, write_model_card
from modeling_mirnet.modeling_mirnet import exposure_thumbnail

MODEL_KNOBS = ("num_rrg", "num_mrb", "num_features", "num_streams", "num_dau_columns", "channel_factor", "reduction", "bias",
               "exposure_conditioning", "exposure_path")

logger = get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# 1. Arguments (a YAML/JSON --config supplies defaults; command-line flags override it)
# ----------------------------------------------------------------------------------------------------------------
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where it is None (unset unless given; the help says what then)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: a flag is spelled out (`--resume` is not `--resume_from_checkpoint`)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--config", help="YAML or JSON file of flag values (keys = flag names without --)")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", help="folder written by prepare_dataset.py, a Hub dataset id, or a low/+high/ folder")
    data.add_argument("--train_split", default="train",
                      help="split to train on; 'a+b' trains on both (the final fit: train+validation)")
    data.add_argument("--validation_split", default="validation",
                      help="split to validate and select on; 'none' validates nothing and exports the last epoch "
                           "(a final fit whose recipe and epoch count were chosen by an earlier validated run)")
    data.add_argument("--crop_size", type=int, default=128, help="side of the random paired training crops")
    data.add_argument("--random_flip", action=argparse.BooleanOptionalAction, default=False,
                      help="random horizontal/vertical flips")
    data.add_argument("--whole_images", action=argparse.BooleanOptionalAction, default=False,
                      help="train on whole photos instead of crops, so the global pools (SKFF, channel attention) see the "
                           "whole scene as at inference (--crop_size is then unused)")
    data.add_argument("--well_lit_share", type=float, default=0.0,
                      help="share of training samples that are a reference given as both input and target, so the model "
                           "learns to leave well-exposed photos alone")
    data.add_argument("--exposure_jitter", type=float, default=0.0,
                      help="multiply each dark input by 2**u in linear light, u uniform in [-this, this] stops (the target "
                           "is kept), so the output's exposure is judged from the scene rather than copied from the input")
    data.add_argument("--max_validation_images", type=int, default=None, help="validate on the first N images only")
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument("--validation_epochs", type=int, default=1, help="validate every N epochs (and always after the last one)")
    data.add_argument("--validation_batch_size", type=int, default=None,
                      help="whole validation images per forward pass (default: 1 on CPU, where larger batches are slower per image; 8 on GPU)")
    # None = not given: a new model takes MIRNetConfig's default, an --init_from model keeps its own value
    model = p.add_argument_group("model (MIRNetConfig; a flag not given is its default, or with --init_from the model's)")
    config = MIRNetConfig()

    def default(name: str) -> str:
        return f" (default: {getattr(config, name)})"

    model.add_argument("--num_rrg", type=int, help="recursive residual groups" + default("num_rrg"))
    model.add_argument("--num_mrb", type=int, help="multi-scale residual blocks per RRG" + default("num_mrb"))
    model.add_argument("--num_features", type=int, help="channels of the full-resolution stream" + default("num_features"))
    model.add_argument("--num_streams", type=int, help="parallel streams (resolutions) per MRB" + default("num_streams"))
    model.add_argument("--num_dau_columns", type=int, help="DAU columns per MRB" + default("num_dau_columns"))
    model.add_argument("--channel_factor", type=int, help="channel multiplier between streams" + default("channel_factor"))
    model.add_argument("--reduction", type=int, help="channel-attention reduction" + default("reduction"))
    model.add_argument("--bias", action=argparse.BooleanOptionalAction,
                       help="biases on the input/output convolutions and each MRB's output convolution" + default("bias"))
    model.add_argument("--exposure_conditioning", action=argparse.BooleanOptionalAction,
                       help="the network renders the exposure it is given (each pair's true exposure, in stops) and a small "
                            "head learns to predict it from a thumbnail of the whole photo" + default("exposure_conditioning"))
    model.add_argument("--exposure_path", choices=EXPOSURE_PATHS,
                       help="curve: the input brought to the exposure by the highlight-preserving curve, the stops as a "
                            "constant channel; film: the raw input, the stops scaling and shifting the features"
                            + default("exposure_path"))
    model.add_argument("--train_exposure_head_only", action="store_true",
                       help="train only the exposure head of the --init_from model, on thumbnails (the network frozen; the "
                            "head's loss never reaches the network, so this equals retraining the head in the joint run)")
    model.add_argument("--init_from", help="start from this model folder or Hub id instead of random weights")
    model.add_argument("--checkerboard_free", action=argparse.BooleanOptionalAction, default=False,
                       help="keep the up-samplers' transposed convs checkerboard-free (projected after every update), so "
                            "flat areas come out flat instead of with a 4-pixel grid; the architecture is unchanged")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--loss_type", choices=LOSS_TYPES, default=config.loss_type,
                     help="gt_mean: the GT-mean loss over Charbonnier (exposure and structure weighed per image)")
    opt.add_argument("--well_lit_loss_type", choices=LOSS_TYPES, default=None,
                     help="loss on the --well_lit_share pairs (default: --loss_type); the GT-mean loss forgives a small "
                          "exposure error, which a well-lit photo must not get")
    opt.add_argument("--exposure_loss_weight", type=float, default=1.0,
                     help="weight of the exposure head's squared error in stops (--exposure_conditioning)")
    opt.add_argument("--learning_rate", type=float, default=1e-4)
    opt.add_argument("--lr_scheduler", choices=["plateau", "cosine", "constant"], default="plateau")
    opt.add_argument("--plateau_factor", type=float, default=0.5)
    opt.add_argument("--plateau_patience", type=int, default=5)
    opt.add_argument("--min_learning_rate", type=float, default=1e-7)
    opt.add_argument("--train_batch_size", type=int, default=4, help="per device")
    opt.add_argument("--gradient_accumulation_steps", type=int, default=1,
                     help="batches whose mean gradient makes one optimizer update (effective batch: "
                          "train_batch_size x this x processes)")
    opt.add_argument("--num_train_epochs", type=int, default=50)
    opt.add_argument("--max_grad_norm", type=float, default=None)
    opt.add_argument("--ema_decay", type=float, default=None,
                     help="keep an exponential moving average of the weights (e.g. 0.999): validation, the best-epoch "
                          "choice and the exported model use the average")
    opt.add_argument("--ema_warmup", action=argparse.BooleanOptionalAction, default=False,
                     help="ramp the average's decay up as min(--ema_decay, (1 + n) / (10 + n)) after n updates, so a run "
                          "from scratch does not keep its first weights in the average for thousands of steps")
    opt.add_argument("--seed", type=int, default=42)
    run = p.add_argument_group("run")
    run.add_argument("--output_dir", default="runs/mirnet")
    run.add_argument("--resume_from_checkpoint",
                     help="'latest' (the last checkpoint of --output_dir; none yet: start afresh) or a checkpoints/epoch_NNNN "
                          "folder: continue exactly from there")
    run.add_argument("--checkpoints_total_limit", type=int, default=2, help="keep this many epoch checkpoints")
    run.add_argument("--stop_after_epoch", type=int, default=None, help="end this invocation after epoch N (resume later)")
    run.add_argument("--time_budget_minutes", type=float, default=None,
                     help="end this invocation (validated, checkpointed) before an epoch that would not fit in this many minutes")
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
    for name in ("crop_size", "train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "validation_epochs",
                 "validation_batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.ema_decay is not None and not 0 < args.ema_decay < 1:
        parser.error(f"--ema_decay must be between 0 and 1 (e.g. 0.999), got {args.ema_decay}")
    if args.validation_split == "none" and args.lr_scheduler == "plateau":
        parser.error("--lr_scheduler plateau steps on validation PSNR: use cosine or constant with --validation_split none")
    if args.train_exposure_head_only and args.lr_scheduler == "plateau":
        parser.error("--train_exposure_head_only validates once, at the end: use --lr_scheduler cosine or constant")
    if not 0 <= args.well_lit_share < 1:
        parser.error(f"--well_lit_share must be in [0, 1), got {args.well_lit_share}")
    if args.exposure_jitter < 0:
        parser.error(f"--exposure_jitter is a number of stops, >= 0; got {args.exposure_jitter}")
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
class RandomPairCrops(torch.utils.data.Dataset):
    """Training pairs decoded once (uint8 tensors in memory); each item is a fresh random paired crop (and flips).

    With `crop_size=None` an item is the whole photo (cut to a multiple of `size_divisor`). A `well_lit_share` of the
    items are the reference as both input and target; the others carry `exposure_stops`, a uniform draw from
    [-exposure_jitter, exposure_jitter] that the training loop applies to the input (`modeling_mirnet.exposure`).
    Items are uint8 (3, H, W) tensors; the training loop converts them to [0, 1] floats on the device. Every random
    choice comes from torch's global RNG, which accelerate checkpoints, so `--resume_from_checkpoint` continues exactly.
    """

    def __init__(self, pairs: ImagePairs, crop_size: int | None, flip: bool, well_lit_share: float = 0.0,
                 exposure_jitter: float = 0.0, size_divisor: int = 1, thumbnail_size: int | None = None):
        for low, name in zip(pairs.lows, pairs.names):
            height, width = low.shape[-2:]
            if crop_size is not None and (width < crop_size or height < crop_size):
                raise DataError(f"{name}: {width}x{height} is smaller than --crop_size {crop_size}")
        self.pairs, self.crop_size, self.flip, self.size_divisor = pairs, crop_size, flip, size_divisor
        self.well_lit_share, self.exposure_jitter = well_lit_share, exposure_jitter
        # exposure conditioning: each pair's exposure, from the whole photos (a crop carries its photo's value), and
        # thumbnails of the whole input and reference for the exposure head
        self.thumbnails = None
        if thumbnail_size is not None:
            self.exposures = [float(exposure_stops(high[None].float() / 255, low[None].float() / 255))
                              for low, high in zip(pairs.lows, pairs.highs)]
            self.thumbnails = [[exposure_thumbnail(image[None].float() / 255, thumbnail_size)[0] for image in pair]
                               for pair in zip(pairs.lows, pairs.highs)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        low, high = self.pairs.lows[index], self.pairs.highs[index]
        height, width = low.shape[-2:]
        if self.crop_size is None:
            x, y = (t[:, : height - height % self.size_divisor, : width - width % self.size_divisor] for t in (low, high))
        else:
            size = self.crop_size
            top = int(torch.randint(0, height - size + 1, ()))
            left = int(torch.randint(0, width - size + 1, ()))
            x, y = low[:, top : top + size, left : left + size], high[:, top : top + size, left : left + size]
        thumbs = self.thumbnails[index] if self.thumbnails is not None else None
        if self.flip:
            for dim in (2, 1):
                if torch.rand(()) < 0.5:
                    x, y = x.flip(dim), y.flip(dim)
                    thumbs = [t.flip(dim) for t in thumbs] if thumbs is not None else None
        stops = torch.zeros(())
        well_lit = bool(self.well_lit_share) and bool(torch.rand(()) < self.well_lit_share)
        if well_lit:
            x = y
        elif self.exposure_jitter:
            stops = (torch.rand(()) * 2 - 1) * self.exposure_jitter
        item = {"pixel_values": x.contiguous(), "labels": y.contiguous(), "exposure_stops": stops, "well_lit": well_lit}
        if thumbs is not None:  # the exposure to render: 0 for a well-lit identity pair
            item["exposure"] = torch.tensor(0.0 if well_lit else self.exposures[index])
            item["thumbnail"] = thumbs[1] if well_lit else thumbs[0]
        return item


def decode_split(dataset, split: str, limit: int | None = None) -> ImagePairs:
    """Decode a split once (PIL -> uint8 tensors), 'a+b' as both in order; a pair whose images differ in size is a
    DataError."""
    import datasets

    try:
        return decode_pairs(datasets.concatenate_datasets([dataset[part] for part in split.split("+")]), limit)
    except ValueError as err:
        raise DataError(f"split {split!r}: {err}") from None


# ----------------------------------------------------------------------------------------------------------------
# 3. Model, optimizer, learning-rate schedule
# ----------------------------------------------------------------------------------------------------------------
def build_model(args) -> MIRNetModel:
    """A new model from the model flags given (MIRNetConfig's defaults for the others), or the model at --init_from
    (whose architecture a model flag given may not contradict)."""
    given = {k: getattr(args, k) for k in MODEL_KNOBS if getattr(args, k) is not None}
    if args.init_from:
        from modeling_mirnet.inference import ModelLoadError, load_mirnet

        try:
            model, _ = load_mirnet(args.init_from)
        except ModelLoadError as err:
            raise RunError(f"--init_from {err}") from None
        conflicts = [f"--{k} {v} (the model has {getattr(model.config, k)})" for k, v in given.items()
                     if v != getattr(model.config, k)]
        if conflicts:
            raise RunError(f"--init_from {args.init_from}: the architecture comes from that model; drop {', '.join(conflicts)}")
        model.config.loss_type = args.loss_type
        return model.train()
    return MIRNetModel(MIRNetConfig(**given, loss_type=args.loss_type))


def build_ema(args, model: MIRNetModel):
    """The weights' exponential moving average (torch.optim.swa_utils), or None without --ema_decay."""
    if not args.ema_decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    update = warmed_up_ema(args.ema_decay) if args.ema_warmup else get_ema_multi_avg_fn(args.ema_decay)
    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def warmed_up_ema(decay: float):
    """AveragedModel's multi_avg_fn for an average whose decay ramps up: after n updates it is
    min(decay, (1 + n) / (10 + n)) (0.1, 0.18, 0.25, ... until it reaches `decay`). Without the ramp, decay 0.998
    still gives the weights of the first step 0.998^1000 = 14 % of the average after 1,000 steps."""
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        weight = 1 - min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averaged, current, weight)  # what torch's own EMA function runs

    return update


def fused_adam_kwargs(device: torch.device) -> dict:
    """`fused=True` where torch has a fused Adam for the device (CUDA; CPU since torch 2.4): one kernel per step."""
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
    except (RuntimeError, TypeError):
        return {}
    return {"fused": True}


def build_lr_scheduler(args, optimizer, max_train_steps: int):
    """transformers' `get_scheduler` for --lr_scheduler: plateau, the study's ReduceLROnPlateau on validation PSNR
    (stepped after each validation); cosine, from --learning_rate to --min_learning_rate over `max_train_steps`
    optimizer updates, no warm-up (stepped after each update); constant."""
    if args.lr_scheduler == "plateau":
        plateau = {"mode": "max", "factor": args.plateau_factor, "patience": args.plateau_patience, "min_lr": args.min_learning_rate}
        return get_scheduler("reduce_lr_on_plateau", optimizer, scheduler_specific_kwargs=plateau)
    if args.lr_scheduler == "cosine":
        return get_scheduler("cosine_with_min_lr", optimizer, num_warmup_steps=0, num_training_steps=max_train_steps,
                             scheduler_specific_kwargs={"min_lr": args.min_learning_rate})
    return get_scheduler("constant", optimizer)


class SchedulerCheckpoint:
    """The learning-rate schedule as accelerate checkpoints it (`register_for_checkpointing`). Checkpoints written
    before the schedules came from `get_scheduler` hold torch's CosineAnnealingLR for cosine: its step count and
    learning rates carry over to the closed-form cosine, so such a run resumes too."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.scheduler, LambdaLR) and "lr_lambdas" not in state:  # CosineAnnealingLR's state
            state = {k: v for k, v in state.items() if k not in ("T_max", "eta_min")}
            state["lr_lambdas"] = [None] * len(self.scheduler.lr_lambdas)
        self.scheduler.load_state_dict(state)


# ----------------------------------------------------------------------------------------------------------------
# 4. Checkpoints: one accelerate state per epoch; `--resume_from_checkpoint` restores weights, optimizer, schedule and RNG
# ----------------------------------------------------------------------------------------------------------------
def checkpoint_dirs(output_dir: Path) -> list[Path]:
    folder = output_dir / "checkpoints"
    done = [p for p in folder.glob("epoch_*") if (p / "trainer_state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def find_resume_dir(args) -> Path | None:
    if not args.resume_from_checkpoint:
        return None
    if args.resume_from_checkpoint == "latest":
        found = checkpoint_dirs(Path(args.output_dir))
        return found[-1] if found else None  # nothing saved yet: start from scratch
    path = Path(args.resume_from_checkpoint)
    if not (path / "trainer_state.json").is_file():
        raise RunError(f"--resume_from_checkpoint {path}: not a finished checkpoint (no trainer_state.json)")
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
def autocast_dtype(accelerator: Accelerator) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision)


def validate(accelerator: Accelerator, model: MIRNetModel, pairs: ImagePairs, batch_size: int) -> dict:
    """Whole validation images, each process its share, scored on the device (modeling_mirnet.evaluation). The network
    sees each photo as training does, without the mirrored margin of inference (`margin=0`): a run's validation
    figures stay comparable across versions; train/evaluate.py scores what users get."""
    figures = ("loss", "psnr", "ssim", "psnr_gt_mean")
    conditioned = model.config.exposure_conditioning
    with accelerator.split_between_processes(list(range(len(pairs)))) as indices:
        kwargs = dict(batch_size=batch_size, autocast_dtype=autocast_dtype(accelerator), margin=0)
        scores = score_pairs(model, pairs.subset(indices), loss_type=model.config.loss_type, **kwargs)
        if conditioned:  # also at each pair's own exposure, and the head's error
            reference = score_pairs(model, pairs.subset(indices), exposure="reference", **kwargs)
            scores["psnr_reference_exposure"] = reference["psnr"]
            scores["ssim_reference_exposure"] = reference["ssim"]
            scores["exposure_error_squared"] = [(a - b) ** 2 for a, b in zip(scores["exposure"], scores["reference_exposure"])]
            figures += ("psnr_reference_exposure", "ssim_reference_exposure", "exposure_error_squared")
    rows = gather_object([tuple(values) for values in zip(*(scores[key] for key in figures))])
    metrics = {f"val_{key}": float(np.mean([row[k] for row in rows])) for k, key in enumerate(figures)}
    if conditioned:
        metrics["val_exposure_rms"] = math.sqrt(metrics.pop("val_exposure_error_squared"))
    return metrics


def head_inputs(batch: dict, exposure_jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(the thumbnails the exposure head sees, the exposure each pair is rendered at): the input jitter shifts a
    pair's exposure by the same stops, and its thumbnail with it."""
    thumbnails, exposure = batch["thumbnail"], batch["exposure"] - batch["exposure_stops"]
    if exposure_jitter:
        thumbnails = scale_exposure(thumbnails, batch["exposure_stops"])
    return thumbnails, exposure


def fit_exposure_head(args, model: MIRNetModel, train_loader, val_pairs: ImagePairs, output_dir: Path) -> int:
    """Train the exposure head of the --init_from model further, alone, on the training pairs' thumbnails (the batches'
    well-lit share at 0 stops, the jitter shifting the label as in the joint run); export the model and the head's
    validation figures (none with --validation_split none). Gradients accumulate as `accelerator.accumulate` makes them in
    the joint loop: each batch's loss divided by --gradient_accumulation_steps, an update after that many batches and
    at the end of each epoch."""
    model.requires_grad_(False).eval()
    head = model.exposure_head  # continues from the --init_from model's head
    head.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.learning_rate)
    accumulation = args.gradient_accumulation_steps
    scheduler = build_lr_scheduler(args, optimizer, args.num_train_epochs * math.ceil(len(train_loader) / accumulation))
    for epoch in tqdm(range(1, args.num_train_epochs + 1), desc="exposure head"):
        for step, batch in enumerate(train_loader, start=1):
            thumbnails, exposure = head_inputs(batch, args.exposure_jitter)
            loss = F.mse_loss(head(thumbnails), exposure)
            (loss / accumulation).backward()
            if step % accumulation == 0 or step == len(train_loader):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
    head.eval()
    metrics = {}
    if len(val_pairs):
        with torch.no_grad():
            lows = [low[None].float() / 255 for low in val_pairs.lows]
            highs = [high[None].float() / 255 for high in val_pairs.highs]
            errors = [float(model.predict_exposure(low) - exposure_stops(high, low)) for low, high in zip(lows, highs)]
            well_lit = torch.tensor([float(model.predict_exposure(high)) for high in highs]).abs()
        metrics = {"val_exposure_rms": math.sqrt(sum(e * e for e in errors) / len(errors)),
                   "val_well_lit_abs_median": float(well_lit.median()), "val_well_lit_abs_q90": float(well_lit.quantile(0.9))}
        logger.info(f"exposure head: validation rms {metrics['val_exposure_rms']:.3f} stops on the dark photos; on their "
                    f"references |prediction| median {metrics['val_well_lit_abs_median']:.3f}, q90 "
                    f"{metrics['val_well_lit_abs_q90']:.3f}")
    # the network's records are the --init_from run's (its weights are unchanged); the head's stage is added to them
    model_dir, source = output_dir / "model", Path(args.init_from)
    save_for_hub(model, model_dir, MIRNetImageProcessor(size_divisor=model.config.size_divisor))
    head_stage = {**training_record(args), "metrics": metrics}
    for name in ("training_args.json", "trainer_state.json"):
        if (source / name).is_file():
            write_json(model_dir / name, {**json.loads((source / name).read_text()), "exposure_head_stage": head_stage})
    if (source / "curves.png").is_file():
        shutil.copy2(source / "curves.png", model_dir / "curves.png")
    write_json(output_dir / "exposure_head.json", metrics)
    return 0


def pair_loss(prediction: torch.Tensor, labels: torch.Tensor, well_lit: torch.Tensor, args, eps: float) -> torch.Tensor:
    """--loss_type on the dark pairs and --well_lit_loss_type on the well-lit ones, each weighted by its share of the
    batch (the images of a batch have one size, so this is the mean over all pixels)."""
    loss = prediction.new_zeros((), dtype=torch.float32)
    for mask, loss_type in ((~well_lit, args.loss_type), (well_lit, args.well_lit_loss_type)):
        if mask.any():
            loss = loss + enhancement_loss(prediction[mask], labels[mask], loss_type, eps) * (mask.sum() / mask.numel())
    return loss


def batch_psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (data range 1) over a batch of crops, on the clamped float output (a tensor: no sync per step)."""
    return psnr_batch(prediction.detach().float().clamp(0, 1), target).mean()


# ----------------------------------------------------------------------------------------------------------------
# 6. Curves and model card
# ----------------------------------------------------------------------------------------------------------------
def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Loss and PSNR per epoch, train and validation, like the study's figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    validated = [h for h in history if h.get("val_psnr") is not None]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "psnr", "PSNR (dB, data range 1)")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], label="train (crops)")
        ax.plot([h["epoch"] for h in validated], [h[f"val_{key}"] for h in validated], "o-", label="validation (whole images)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def training_record(args) -> dict:
    """What produced a model: every flag, the command line and the project's git commit (training_args.json)."""
    return {"args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))},
            "command": "accelerate launch train/train.py " + " ".join(sys.argv[1:]), "commit": git_commit()}


# ----------------------------------------------------------------------------------------------------------------
# 7. Training loop (errors in the data end the run with one line; finished epochs are kept)
# ----------------------------------------------------------------------------------------------------------------
class RunError(Exception):
    """A run that cannot start as asked: a model to start from that does not load or contradicts the flags, or a
    checkpoint to resume that is missing or was made with other settings. (Bad data is a DataError.)"""


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return train(args)
    except (DataError, RunError) as err:  # reported in one line; finished epochs stay in their checkpoints
        print(f"error: {err}", file=sys.stderr)
        return 2


def train(args) -> int:
    output_dir = Path(args.output_dir)
    report_to = None if args.report_to == "none" else args.report_to
    no_tensorboard = report_to == "tensorboard" and not is_tensorboard_available()
    if no_tensorboard:
        report_to = None
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    # this script's progress at INFO on the main process; the libraries' own INFO lines (accelerate's, one per file
    # it checkpoints) stay below the root logger's level
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S")
    logger.setLevel(logging.INFO)
    if no_tensorboard:
        logger.warning("tensorboard is not installed (pip install tensorboard): logging to trainer_state.json only")
    set_seed(args.seed)
    if accelerator.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # training crops have one shape: pick the fastest conv algorithms once

    if accelerator.device.type == "cpu":
        keep_freed_memory()  # reuse freed activations instead of faulting their pages in at every step
    if accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16" and not cpu_has_fast_bf16():
        logger.warning("this CPU has no native bf16 (avx512_bf16/amx_bf16): bf16 autocast will be slower than fp32 here; "
                       "launch with --mixed_precision no")

    dataset = load_pairs(args.dataset)
    validating = args.validation_split != "none"
    for split in args.train_split.split("+") + ([args.validation_split] if validating else []):
        if split not in dataset:
            raise DataError(f"{args.dataset}: no split {split!r} (has {', '.join(dataset)})")
    resume_dir = find_resume_dir(args)
    decode_started = time.monotonic()
    train_pairs = decode_split(dataset, args.train_split)
    if args.whole_images and args.train_batch_size > 1 and len({low.shape for low in train_pairs.lows}) > 1:
        raise DataError(f"{args.dataset}: --whole_images with --train_batch_size {args.train_batch_size} needs photos of one "
                        f"size (found {len({low.shape for low in train_pairs.lows})}); use --train_batch_size 1")
    model = build_model(args)
    for name in MODEL_KNOBS:  # the records (training_args.json, the card, the trackers) name the architecture trained
        setattr(args, name, getattr(model.config, name))
    size_divisor = model.config.size_divisor
    if not args.whole_images and args.crop_size % size_divisor:
        raise RunError(f"--crop_size {args.crop_size} must be a multiple of {size_divisor} for a model of "
                       f"{model.config.num_streams} streams")
    conditioned = model.config.exposure_conditioning
    if args.train_exposure_head_only and not (conditioned and args.init_from):
        raise RunError("--train_exposure_head_only trains the head of an exposure-conditioned --init_from model")
    train_set = RandomPairCrops(train_pairs, None if args.whole_images else args.crop_size, args.random_flip,
                                args.well_lit_share, args.exposure_jitter, size_divisor=size_divisor,
                                thumbnail_size=model.config.exposure_thumbnail_size if conditioned else None)
    val_pairs = decode_split(dataset, args.validation_split, args.max_validation_images) if validating else []
    logger.info(f"decoded {len(train_set)} training and {len(val_pairs)} validation pairs in {time.monotonic() - decode_started:.1f} s; "
                f"training on {accelerator.num_processes} process(es), {accelerator.device}, mixed precision {accelerator.mixed_precision}")
    if len(train_set) < args.train_batch_size:
        raise DataError(f"{args.dataset}: {len(train_set)} training pairs is fewer than --train_batch_size {args.train_batch_size}")
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.train_batch_size, shuffle=True, drop_last=True, num_workers=args.dataloader_num_workers,
        pin_memory=torch.cuda.is_available(), persistent_workers=args.dataloader_num_workers > 0,
    )

    if args.train_exposure_head_only:
        return fit_exposure_head(args, model, train_loader, val_pairs, output_dir)
    if args.checkerboard_free:
        model.remove_checkerboard_()
    processor = MIRNetImageProcessor(size_divisor=size_divisor)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, **fused_adam_kwargs(accelerator.device))
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    # optimizer updates per epoch on each process (the last one takes the epoch's leftover batches); the schedule is
    # not passed through accelerator.prepare, so it steps once per update, whatever the number of processes
    num_update_steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    max_train_steps = args.num_train_epochs * num_update_steps_per_epoch
    scheduler = build_lr_scheduler(args, optimizer, max_train_steps)
    accelerator.register_for_checkpointing(SchedulerCheckpoint(scheduler))
    # the plain module: validation (whole images of any size), the EMA and the export never run the compiled step
    unwrapped = accelerator.unwrap_model(model, keep_torch_compile=False)
    ema = build_ema(args, unwrapped)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    evaluated = ema.module if ema is not None else unwrapped  # what validation scores and model/ exports

    state = {"epoch": 0, "global_step": 0, "best_epoch": 0, "best_val_psnr": -math.inf, "history": [], "ema_decay": args.ema_decay,
             "ema_warmup": args.ema_warmup}
    if resume_dir is not None:
        saved = json.loads((resume_dir / "trainer_state.json").read_text())
        if saved.get("ema_decay") != args.ema_decay or saved.get("ema_warmup", False) != args.ema_warmup:
            raise RunError(f"--resume_from_checkpoint {resume_dir}: that run used --ema_decay {saved.get('ema_decay')} "
                           f"(warmup: {saved.get('ema_warmup', False)}), this one {args.ema_decay} (warmup: "
                           f"{args.ema_warmup}); resume with the same values")
        accelerator.load_state(str(resume_dir))
        state = saved
        logger.info(f"resumed from {resume_dir} (epoch {state['epoch']} done)")
        horizon = state.get("max_train_steps")
        if args.lr_scheduler == "cosine" and horizon not in (None, max_train_steps):  # the decay follows --num_train_epochs
            logger.info(f"cosine schedule: horizon {horizon} -> {max_train_steps} steps (--num_train_epochs {args.num_train_epochs})")
    state["max_train_steps"] = max_train_steps
    if state["epoch"] >= args.num_train_epochs:
        logger.info(f"nothing to do: {state['epoch']} of {args.num_train_epochs} epochs already done")
    accelerator.init_trackers("mirnet", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    split_loss = args.well_lit_share > 0 and args.well_lit_loss_type not in (None, args.loss_type)
    eps = unwrapped.config.charbonnier_eps
    started = time.monotonic()
    for epoch in range(state["epoch"] + 1, args.num_train_epochs + 1):
        epoch_started = time.monotonic()
        model.train()
        train_loader.set_epoch(epoch)
        losses, psnrs, head_errors = [], [], []
        progress = tqdm(train_loader, desc=f"epoch {epoch}/{args.num_train_epochs}", disable=not accelerator.is_local_main_process)
        for step, batch in enumerate(progress):
            with accelerator.accumulate(model):
                pixel_values = batch["pixel_values"].float().div_(255)
                labels = batch["labels"].float().div_(255)
                conditioning = {}
                if conditioned:
                    thumbnails, exposure = head_inputs(batch, args.exposure_jitter)
                    conditioning["exposure"] = exposure
                if args.exposure_jitter:
                    pixel_values = scale_exposure(pixel_values, batch["exposure_stops"])
                with accelerator.autocast():
                    out = model(pixel_values, **conditioning)
                    if conditioned:  # the head learns to guess the exposure the network is given
                        head_error = F.mse_loss(unwrapped.exposure_head(thumbnails), exposure)
                if split_loss:
                    loss = pair_loss(out.reconstruction, labels, batch["well_lit"], args, eps)
                else:
                    loss = enhancement_loss(out.reconstruction, labels, args.loss_type, eps)
                if conditioned:
                    head_errors.append(head_error.detach())
                    loss = loss + args.exposure_loss_weight * head_error
                accelerator.backward(loss)  # divided by --gradient_accumulation_steps
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()  # the prepared optimizer steps (and zeroes) only when the gradients are synced
                optimizer.zero_grad(set_to_none=True)
            if accelerator.sync_gradients:  # an optimizer update happened
                if args.checkerboard_free:
                    unwrapped.remove_checkerboard_()
                if ema is not None:
                    ema.update_parameters(unwrapped)
                if args.lr_scheduler != "plateau":
                    scheduler.step()
                state["global_step"] += 1
                if state["global_step"] % 10 == 0:
                    progress.set_postfix(loss=f"{float(loss):.4f}")
            if step == 0:  # the epoch's first batch (with --dynamo_backend: includes compiling)
                loss.item()  # waits for the device
                first_step_seconds = time.monotonic() - epoch_started
            losses.append(loss.detach())
            psnrs.append(batch_psnr(out.reconstruction, labels))
        train_loss = float(accelerator.gather(torch.stack(losses)).mean())  # one sync per epoch, not per step
        train_psnr = float(torch.stack(psnrs).mean())
        train_exposure_rms = float(torch.stack(head_errors).mean().sqrt()) if head_errors else None
        train_seconds = time.monotonic() - epoch_started

        # Stop for the time budget on every process at once (decided on the main process, shared by the trigger).
        # The budget is kept, not passed: stop when one more epoch like this one would not fit in it.
        elapsed = time.monotonic() - started
        if args.time_budget_minutes and (elapsed + train_seconds) / 60 > args.time_budget_minutes and epoch < args.num_train_epochs:
            accelerator.set_trigger()
        stopping = accelerator.check_trigger() or epoch == args.stop_after_epoch
        validate_now = validating and (epoch % args.validation_epochs == 0 or epoch == args.num_train_epochs or stopping)

        validation_started = time.monotonic()
        metrics = {"val_loss": None, "val_psnr": None, "val_ssim": None, "val_psnr_gt_mean": None}
        if validate_now:
            metrics = validate(accelerator, evaluated, val_pairs, args.validation_batch_size or (1 if accelerator.device.type == "cpu" else 8))
            if args.lr_scheduler == "plateau":
                scheduler.step(metrics["val_psnr"])
        validation_seconds = time.monotonic() - validation_started

        record = {"epoch": epoch, "train_loss": train_loss, "train_psnr": train_psnr, "train_exposure_rms": train_exposure_rms, **metrics,
                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.monotonic() - started, 1),
                  "train_seconds": round(train_seconds, 2), "first_step_seconds": round(first_step_seconds, 2),
                  "validation_seconds": round(validation_seconds, 2)}
        state["epoch"] = epoch
        message = f"epoch {epoch}: train loss {train_loss:.5f} psnr {train_psnr:.2f} ({train_seconds:.0f} s, first step {first_step_seconds:.1f} s)"
        if validate_now:
            message += (f" | val loss {metrics['val_loss']:.5f} psnr {metrics['val_psnr']:.2f} ssim {metrics['val_ssim']:.4f}"
                        f" gt-mean psnr {metrics['val_psnr_gt_mean']:.2f}")
            if "val_psnr_reference_exposure" in metrics:
                message += (f" reference-exposure psnr {metrics['val_psnr_reference_exposure']:.2f}"
                            f" exposure rms {metrics['val_exposure_rms']:.2f} stops")
            message += f" ({validation_seconds:.0f} s)"
        logger.info(message + f" | lr {record['lr']:.2e}")
        checkpoint_started = time.monotonic()
        if (validate_now and metrics["val_psnr"] > state["best_val_psnr"]) or not validating:  # no validation: the last
            state["best_epoch"] = epoch
            if validating:
                state["best_val_psnr"] = metrics["val_psnr"]
            if accelerator.is_main_process:
                save_for_hub(evaluated, output_dir / "model", processor)
        record["checkpoint_seconds"] = 0.0
        state["history"].append(record)
        save_checkpoint(accelerator, output_dir, state, args.checkpoints_total_limit)
        record["checkpoint_seconds"] = round(time.monotonic() - checkpoint_started, 2)
        accelerator.log({k: v for k, v in record.items() if k != "epoch" and v is not None}, step=epoch)
        if accelerator.is_main_process:
            write_json(output_dir / "trainer_state.json", state)
            plot_curves(state["history"], output_dir / "curves.png", args.experiment or output_dir.name)
        if stopping:
            logger.info(f"stopping after epoch {epoch}; continue with --resume_from_checkpoint latest")
            break

    # ------------------------------------------------------------------------------------------------------------
    # 8. Export: the best model, its processor, code, card and curves in output_dir/model (ready to push)
    # ------------------------------------------------------------------------------------------------------------
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and state["best_epoch"]:
        model_dir = output_dir / "model"
        write_json(model_dir / "trainer_state.json", state)
        if (output_dir / "curves.png").is_file():
            (model_dir / "curves.png").write_bytes((output_dir / "curves.png").read_bytes())
        record = training_record(args)
        write_json(model_dir / "training_args.json", record)
        write_model_card(model_dir, record, state, model_id=output_dir.name)
        if state["epoch"] >= args.num_train_epochs and validating:
            logger.info(f"best epoch {state['best_epoch']}: validation PSNR {state['best_val_psnr']:.2f} dB -> {model_dir}")
        elif state["epoch"] >= args.num_train_epochs:
            logger.info(f"no validation split: the last epoch ({state['best_epoch']}) -> {model_dir}")
        if args.push_to_hub and state["epoch"] >= args.num_train_epochs:
            from modeling_mirnet.hub import push_folder_to_hub

            logger.info(push_folder_to_hub(model_dir, args.push_to_hub))
    accelerator.wait_for_everyone()  # every rank leaves together, after the export (a rank left alone at exit hung once)
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
