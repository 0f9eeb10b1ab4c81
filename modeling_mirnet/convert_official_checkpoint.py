"""Convert an official MIRNet v1 checkpoint (`swz30/MIRNet`, e.g. `model_lol.pth`) into a transformers folder.

    mirnet-convert model_lol.pth out/mirnet-lol            # then: AutoModel.from_pretrained("out/mirnet-lol")

The configuration is read from the tensors (features, RRGs, MRBs, streams, columns, channel factor, bias).
The official code shares one DAU among an MRB's columns and one PReLU among all DAUs: the duplicate keys hold
identical tensors, which is checked, and each of our DAUs receives its copy of the shared PReLU slope.
"""

import argparse
import math
import os
import pickle
import re
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


def config_from_state_dict(state_dict: dict[str, torch.Tensor]) -> MIRNetConfig:
    """Read the architecture hyper-parameters off the tensors of an official state_dict."""
    try:
        conv_in = state_dict["conv_in.weight"]
        blocks = [tuple(map(int, m.groups())) for k in state_dict if (m := re.match(r"body\.(\d+)\.body\.(\d+)\.blocks\.(\d+)\.(\d+)\.", k))]
        num_rrg = 1 + max(b[0] for b in blocks)
        num_mrb = 1 + max(b[1] for b in blocks)
        height = 1 + max(b[2] for b in blocks)
        width = 1 + max(b[3] for b in blocks)
        num_features = conv_in.shape[0]
        factor = 2.0
        if height > 1:
            factor = state_dict["body.0.body.0.blocks.1.0.body.0.weight"].shape[0] / num_features
        reduction = num_features // state_dict["body.0.body.0.blocks.0.0.CA.conv_du.0.weight"].shape[0]
        kernel_size = conv_in.shape[-1]
        sa_kernel = state_dict["body.0.body.0.blocks.0.0.SA.spatial.conv.weight"].shape[-1]
    except (KeyError, ValueError, IndexError) as err:
        raise ConversionError(f"not an official MIRNet v1 state_dict (missing or odd key: {err})") from None
    return MIRNetConfig(
        num_channels=conv_in.shape[1],
        num_features=num_features,
        num_rrg=num_rrg,
        num_mrb=num_mrb,
        height=height,
        width=width,
        channel_factor=int(factor) if float(factor).is_integer() else factor,
        reduction=reduction,
        kernel_size=kernel_size,
        spatial_attention_kernel_size=sa_kernel,
        bias="conv_in.bias" in state_dict,
        share_dau_columns=True,
    )


def convert_state_dict(state_dict: dict[str, torch.Tensor], config: MIRNetConfig) -> dict[str, torch.Tensor]:
    """Rename an official state_dict to this package's keys (checking shared tensors and dropping blur buffers)."""
    level_of = {c: level for level, c in enumerate(config.stream_channels)}
    converted, duplicates = {}, defaultdict(list)
    for key, tensor in state_dict.items():
        new = key
        if key.endswith(".filt"):  # the fixed anti-aliasing filter, computed on the fly here
            if not torch.allclose(tensor[0, 0].float(), BLUR_KERNEL, atol=1e-6):
                raise ConversionError(f"{key}: unexpected blur filter {tensor[0, 0].tolist()}")
            continue
        new = re.sub(rf"^body\.(\d+)\.body\.{config.num_mrb}\.", r"rrgs.\1.conv.", new)
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
        if block:
            stream, column = block.groups()
            if config.share_dau_columns and column != "0":
                duplicates[new.replace(block.group(0), f".daus.0.{stream}.")].append((key, tensor))
                continue
            new = new.replace(block.group(0), f".daus.{column}.{stream}.")
        converted[new] = tensor.detach().clone()
    for target, copies in duplicates.items():
        for key, tensor in copies:
            if target not in converted or not torch.equal(converted[target], tensor):
                raise ConversionError(f"{key}: expected the same tensor as column 0 (shared DAU), found a different one")
    return converted


def convert_checkpoint(checkpoint, config: MIRNetConfig | None = None):
    """Official checkpoint (dict or path) -> MIRNetModel with its weights, loaded strictly."""
    from .modeling_mirnet import MIRNetModel

    if isinstance(checkpoint, (str, os.PathLike)):
        try:
            checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError) as err:
            raise ConversionError(f"{checkpoint}: cannot read a PyTorch checkpoint ({err})") from None
    state_dict = unwrap_state_dict(checkpoint)
    config = config or config_from_state_dict(state_dict)
    model = MIRNetModel(config)
    converted = convert_state_dict(state_dict, config)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ConversionError(f"checkpoint does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="official .pth file (e.g. model_lol.pth)")
    parser.add_argument("output_dir", help="folder to write (config.json, model.safetensors, code, processor)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="also upload the folder to this Hub repo")
    args = parser.parse_args(argv)

    from . import MIRNetImageProcessor

    model = convert_checkpoint(args.checkpoint)
    processor = MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    model.save_pretrained(args.output_dir)
    processor.save_pretrained(args.output_dir)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} -> {args.output_dir} ({params / 1e6:.2f}M parameters)")
    if args.push_to_hub:
        model.push_to_hub(args.push_to_hub)
        processor.push_to_hub(args.push_to_hub)


if __name__ == "__main__":
    main()
