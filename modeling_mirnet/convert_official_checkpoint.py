"""Convert an official MIRNet v1 checkpoint (`swz30/MIRNet`, e.g. `model_lol.pth`) into a transformers folder.

    mirnet-convert model_lol.pth out/mirnet-lol            # then: AutoModel.from_pretrained("out/mirnet-lol")
    mirnet-convert model_lol.pth out/mirnet-lol --push-to-hub org/mirnet-lol

The output folder is what `hub.save_for_hub` writes (weights, config, image processor, code and the image-to-image
pipeline), so it loads with `trust_remote_code=True` where this package is not installed; --push-to-hub uploads it
in one commit. The configuration is read from the tensors (features, RRGs, MRBs, streams, columns, channel factor,
reductions, bias). The official code shares one DAU among an MRB's columns and one PReLU among all DAUs: the
duplicate keys hold identical tensors, which is checked, and each of our DAUs receives its copy of the shared PReLU
slope. Weights are stored as float32 (a note says so when the checkpoint holds another floating dtype).
Exit status: 0 on success, 1 when the folder was written but the upload failed, 2 on a usage or checkpoint error.
"""

import argparse
import importlib.util
import math
import os
import pickle
import re
import sys
import types
from collections import defaultdict

import torch

from .configuration_mirnet import MIRNetConfig

BLUR_KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16


class ConversionError(ValueError):
    """The checkpoint is not an official MIRNet v1 state_dict, or it disagrees with the configuration."""


def unwrap_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """The bare state_dict of an official checkpoint: `state_dict` (v1) or `params` (v2) key, `module.` prefix removed."""
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "params", "params_ema", "model"):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ConversionError("not a MIRNet state_dict: expected a dict of tensors (or one under 'state_dict')")
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}


def fitting_reduction(what: str, shapes, squeeze, preferred: int = 8) -> int:
    """The channel reduction r with squeeze(C, r) == the squeezed size for every (squeezed, C) conv shape, preferring
    the official 8 (several r can give the same sizes; they build the same network)."""
    pairs = [(int(channels), int(squeezed)) for squeezed, channels in shapes]
    fits = [r for r in range(1, max(c for c, _ in pairs) + 1) if all(squeeze(c, r) == s for c, s in pairs)]
    if not fits:
        sizes = ", ".join(f"{c}->{s}" for c, s in pairs)
        raise ConversionError(f"the {what} squeeze sizes ({sizes} channels) fit no single reduction ratio")
    return preferred if preferred in fits else fits[0]


def import_official_code(root: str | os.PathLike):
    """The official `networks/MIRNet_model.py` of a `swz30/MIRNet` checkout at `root`, imported by path (its
    `utils` package is registered without running `utils/__init__.py`, which needs cv2)."""
    source = os.path.join(root, "networks", "MIRNet_model.py")
    if not os.path.isfile(source):
        raise ConversionError(f"{root}: no networks/MIRNet_model.py there (a swz30/MIRNet checkout is expected)")
    utils = types.ModuleType("utils")
    utils.__path__ = [os.path.join(root, "utils")]
    sys.modules["utils"] = utils
    spec = importlib.util.spec_from_file_location("official_mirnet", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_from_state_dict(state_dict: dict[str, torch.Tensor]) -> MIRNetConfig:
    """Read the architecture hyper-parameters off the tensors of an official state_dict."""
    try:
        conv_in = state_dict["conv_in.weight"]
        blocks = [tuple(map(int, m.groups())) for k in state_dict if (m := re.match(r"body\.(\d+)\.body\.(\d+)\.blocks\.(\d+)\.(\d+)\.", k))]
        num_rrg = 1 + max(b[0] for b in blocks)
        num_mrb = 1 + max(b[1] for b in blocks)
        num_streams = 1 + max(b[2] for b in blocks)
        num_dau_columns = 1 + max(b[3] for b in blocks)
        num_features = conv_in.shape[0]
        factor = 2.0
        if num_streams > 1:
            factor = state_dict["body.0.body.0.blocks.1.0.body.0.weight"].shape[0] / num_features
        # channel attention squeezes C to C // reduction, SKFF to max(int(C / skff_reduction), 4), in every stream
        attention = [state_dict[f"body.0.body.0.blocks.{s}.0.CA.conv_du.0.weight"].shape[:2] for s in range(num_streams)]
        skff = [state_dict[f"body.0.body.0.selective_kernel.{s}.conv_du.0.weight"].shape[:2] for s in range(num_streams)]
        reduction = fitting_reduction("channel attention", attention, lambda c, r: c // r)
        skff_reduction = fitting_reduction("SKFF", skff, lambda c, r: max(int(c / r), 4))
        kernel_size = conv_in.shape[-1]
        sa_kernel = state_dict["body.0.body.0.blocks.0.0.SA.spatial.conv.weight"].shape[-1]
    except ConversionError:
        raise
    except (KeyError, ValueError, IndexError) as err:
        raise ConversionError(f"not an official MIRNet v1 state_dict (missing or odd key: {err})") from None
    return MIRNetConfig(
        num_channels=conv_in.shape[1],
        num_features=num_features,
        num_rrg=num_rrg,
        num_mrb=num_mrb,
        num_streams=num_streams,
        num_dau_columns=num_dau_columns,
        channel_factor=int(factor) if float(factor).is_integer() else factor,
        reduction=reduction,
        skff_reduction=skff_reduction,
        kernel_size=kernel_size,
        spatial_attention_kernel_size=sa_kernel,
        bias="conv_in.bias" in state_dict,
        share_dau_columns=True,
    )


def official_to_ours(key: str, config: MIRNetConfig) -> tuple[str, bool]:
    """This package's name for the official state_dict `key`, and whether the tensor is a shared DAU's copy (a column
    other than 0 when `config.share_dau_columns`), whose name is then that of column 0's."""
    level_of = {c: level for level, c in enumerate(config.stream_channels)}
    new = re.sub(rf"^body\.(\d+)\.body\.{config.num_mrb}\.", r"rrgs.\1.conv.", key)
    new = re.sub(r"^body\.(\d+)\.body\.(\d+)\.", r"rrgs.\1.mrbs.\2.", new)
    new = new.replace(".SA.spatial.conv.", ".spatial_attention.conv.").replace(".CA.", ".channel_attention.")
    new = new.replace(".selective_kernel.", ".skff.")
    new = re.sub(r"\.last_up\.(\d+)\.body\.", r".last_up.\1.", new)

    def resampler_key(match, direction):
        channels, scale = int(match.group(1)), int(match.group(2))
        if channels not in level_of:
            raise ConversionError(f"{key}: {channels} channels match no stream of {config.stream_channels}")
        source = level_of[channels]
        target = source + direction * int(math.log2(scale))
        return f".{'down' if direction > 0 else 'up'}.{source}_to_{target}."

    new = re.sub(r"\.down\.(\d+)_(\d+)\.body\.", lambda m: resampler_key(m, +1), new)
    new = re.sub(r"\.up\.(\d+)_(\d+)\.body\.", lambda m: resampler_key(m, -1), new)
    block = re.search(r"\.blocks\.(\d+)\.(\d+)\.", new)
    if not block:
        return new, False
    stream, column = block.groups()
    shared = config.share_dau_columns and column != "0"
    return new.replace(block.group(0), f".daus.{'0' if shared else column}.{stream}."), shared


def convert_state_dict(state_dict: dict[str, torch.Tensor], config: MIRNetConfig) -> dict[str, torch.Tensor]:
    """Rename an official state_dict to this package's keys (checking shared tensors and dropping blur buffers)."""
    converted, duplicates = {}, defaultdict(list)
    for key, tensor in state_dict.items():
        if key.endswith(".filt"):  # the fixed anti-aliasing filter, computed on the fly here
            if not torch.allclose(tensor[0, 0].float(), BLUR_KERNEL, atol=1e-6):
                raise ConversionError(f"{key}: unexpected blur filter {tensor[0, 0].tolist()}")
            continue
        new, shared = official_to_ours(key, config)
        if shared:
            duplicates[new].append((key, tensor))
        else:
            converted[new] = tensor.detach().clone()
    for target, copies in duplicates.items():
        for key, tensor in copies:
            if target not in converted or not torch.equal(converted[target], tensor):
                raise ConversionError(f"{key}: expected the same tensor as column 0 (shared DAU), found a different one")
    return converted


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict of an official checkpoint file (see `unwrap_state_dict`), or ConversionError saying why not."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as err:
        raise ConversionError(f"{path}: cannot read a PyTorch checkpoint ({err})") from None
    return unwrap_state_dict(checkpoint)


def convert_checkpoint(checkpoint, config: MIRNetConfig | None = None):
    """Official checkpoint (dict or path) -> MIRNetModel (float32) with its weights, loaded strictly."""
    from .modeling_mirnet import MIRNetModel

    state_dict = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else unwrap_state_dict(checkpoint)
    config = config or config_from_state_dict(state_dict)
    model = MIRNetModel(config)
    converted = convert_state_dict(state_dict, config)
    try:
        missing, unexpected = model.load_state_dict(converted, strict=False)
    except RuntimeError as err:  # size mismatches: the tensors disagree with the configuration read from them
        details = "; ".join(line.strip() for line in str(err).splitlines()[1:4])
        raise ConversionError(f"checkpoint tensors do not fit the configuration read from them: {details}") from None
    if missing or unexpected:
        raise ConversionError(f"checkpoint does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def floating_dtypes(state_dict: dict[str, torch.Tensor]) -> set[torch.dtype]:
    return {t.dtype for t in state_dict.values() if t.is_floating_point()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="mirnet-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="official .pth file (e.g. model_lol.pth)")
    parser.add_argument("output_dir", help="folder to write (config.json, model.safetensors, code, processor, pipeline)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="also upload the folder to this Hub repo (one commit)")
    args = parser.parse_args(argv)

    from .hub import push_folder_to_hub, save_for_hub

    try:
        state_dict = read_checkpoint(args.checkpoint)
        model = convert_checkpoint(state_dict)
    except ConversionError as err:
        print(f"mirnet-convert: {err}", file=sys.stderr)
        return 2
    others = sorted(str(d).removeprefix("torch.") for d in floating_dtypes(state_dict) - {torch.float32})
    if others:
        rounding = "rounded" if torch.float64 in floating_dtypes(state_dict) else "converted exactly"
        print(f"note: the checkpoint holds {', '.join(others)} weights; they are stored as float32 ({rounding})")
    save_for_hub(model, args.output_dir)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} -> {args.output_dir} ({params / 1e6:.2f}M parameters)")
    if args.push_to_hub:
        try:
            print(f"uploaded to {args.push_to_hub}: {push_folder_to_hub(args.output_dir, args.push_to_hub)}")
        except Exception as err:  # noqa: BLE001 - network, auth, permissions: say which, keep the folder
            print(f"mirnet-convert: upload to {args.push_to_hub} failed ({type(err).__name__}: {err}); "
                  f"the folder {args.output_dir} is complete, retry with hub.push_folder_to_hub", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
