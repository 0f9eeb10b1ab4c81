#!/usr/bin/env python
"""Export one epoch checkpoint of a train.py run as a model folder (weights, config, processor, code).

    python train/export_checkpoint.py --checkpoint runs/X/checkpoints/epoch_0012 --output runs/X/epoch_12

train.py exports the best validated epoch to runs/X/model; this writes any other checkpointed epoch, e.g. the last one
of a fit that selects nothing (all data in training), or to measure an epoch that was not the best. The weights are
those validation would score: the exponential moving average when the run kept one (--ema_decay), else the trained
weights (`--weights model` forces those). The architecture comes from the run's model/config.json, or from `--config`
for a checkpoint outside its run folder (e.g. one copied to another machine).
"""

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from modeling_mirnet import MIRNetConfig, MIRNetImageProcessor, MIRNetModel
from modeling_mirnet.hub import save_for_hub


def ema_state(checkpoint: Path) -> dict | None:
    """The EMA weights (torch.optim.swa_utils.AveragedModel's state, `module.` keys) saved in the checkpoint, if any."""
    for path in sorted(checkpoint.glob("custom_checkpoint_*.pkl")):
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "n_averaged" in state:
            return {k.removeprefix("module."): v for k, v in state.items() if k != "n_averaged"}
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="runs/X/checkpoints/epoch_NNNN")
    parser.add_argument("--output", required=True, type=Path, help="model folder to write")
    parser.add_argument("--weights", choices=["auto", "ema", "model"], default="auto",
                        help="auto: the EMA when the run kept one, else the trained weights")
    parser.add_argument("--config", type=Path, help="the model's config.json (default: the run's model/config.json)")
    args = parser.parse_args(argv)
    config_file = args.config or args.checkpoint.parent.parent / "model" / "config.json"
    if not (args.checkpoint / "model.safetensors").is_file():
        print(f"error: {args.checkpoint}: not a train.py epoch checkpoint (no model.safetensors)", file=sys.stderr)
        return 2
    if not config_file.is_file():
        print(f"error: {config_file}: missing (the architecture comes from the run's model/config.json; "
              "name one with --config)", file=sys.stderr)
        return 2
    state = ema_state(args.checkpoint) if args.weights != "model" else None
    if args.weights == "ema" and state is None:
        print(f"error: {args.checkpoint}: this run kept no EMA (--ema_decay)", file=sys.stderr)
        return 2
    kind = "EMA" if state is not None else "trained"
    if state is None:
        state = load_file(args.checkpoint / "model.safetensors")
    config = MIRNetConfig.from_json_file(config_file)
    model = MIRNetModel(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:  # another architecture: name both files, not torch's key list first
        lines = str(error).splitlines()  # torch: a header line, then one line per mismatch
        print(f"error: {args.checkpoint}: its weights do not fit {config_file} ({lines[-1].strip()})", file=sys.stderr)
        return 2
    save_for_hub(model.eval(), args.output, MIRNetImageProcessor(size_divisor=config.size_divisor))
    print(f"wrote {args.output} ({kind} weights of {args.checkpoint.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
