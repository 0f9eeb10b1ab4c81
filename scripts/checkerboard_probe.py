"""Does a model draw a grid on a flat photo? A flat gray image (with faint noise) through the network, as it is and
with its up-samplers made checkerboard-free (`MIRNetModel.remove_checkerboard_`, no training).

    python scripts/checkerboard_probe.py --model space/checkpoints/mirnet-lol --save /tmp/mirnet-lol-flat
    python benchmarks/well_lit.py --model projected=/tmp/mirnet-lol-flat --dataset data/lol --limit 40

Per variant: the largest difference between the mean residual (output - input) of the 4x4 pixel phases in the image's
centre (a 4-pixel grid shows as a spread between phases; 0 for a flat output) and the grid score of the output
(`modeling_mirnet.metrics.grid_score`) beside the input's. `--save` writes the checkerboard-free model as a model
folder, for the benchmarks. The evidence: docs/training-mirnet-lol.md, "Where the grid came from".
"""

import argparse

import torch

from modeling_mirnet.hub import save_for_hub
from modeling_mirnet.inference import load_mirnet
from modeling_mirnet.metrics import grid_score


def phase_spread(residual: torch.Tensor, period: int = 4) -> float:
    """Max - min over the period x period pixel phases of the centre's mean (gray) residual."""
    gray = residual[0].mean(0)
    height, width = gray.shape
    centre = gray[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
    phases = torch.stack([centre[i::period, j::period].mean() for i in range(period) for j in range(period)])
    return float(phases.max() - phases.min())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="space/checkpoints/mirnet-lol")
    parser.add_argument("--level", type=float, default=0.5, help="gray level of the flat image")
    parser.add_argument("--noise", type=float, default=0.01, help="standard deviation of its noise")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--save", help="write the checkerboard-free model to this folder")
    args = parser.parse_args()

    torch.manual_seed(0)
    flat = (torch.full((1, 3, args.size, args.size), args.level) + args.noise * torch.randn(1, 3, args.size, args.size)).clamp(0, 1)
    print(f"flat {args.size}x{args.size} image at {args.level} (noise sd {args.noise}); input grid score {float(grid_score(flat)):.2f}")
    print("| model | phase spread of the residual | output grid score |")
    print("|---|---:|---:|")
    model, _ = load_mirnet(args.model)
    model.eval()
    for projected in (False, True):
        if projected:
            model.remove_checkerboard_()
        with torch.no_grad():
            output = model(flat, return_dict=True).reconstruction
        label = f"{args.model}{' made checkerboard-free' if projected else ''}"
        print(f"| {label} | {phase_spread(output - flat):.4f} | {float(grid_score(output.clamp(0, 1))):.2f} |")
    if args.save:
        save_for_hub(model, args.save)
        print(f"wrote {args.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
