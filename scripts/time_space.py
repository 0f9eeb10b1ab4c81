"""Time the Space's handler (space/app.py: MIRNetSpace.enhance) on one 600x400 LOL example.

    python scripts/time_space.py [--threads 2] [--model space/checkpoints/mirnet-lol | --model default-config]

`--model` is a model folder (default: the shipped space/checkpoints/mirnet-lol) or `default-config`: the paper's
default configuration (64 channels, 3 RRG x 2 MRB) with random weights (speed does not depend on them). The figure
includes reading the image, autocontrast and writing the PNGs; the status line gives the network's own time.
"""

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from modeling_mirnet import MIRNetConfig, MIRNetModel
from modeling_mirnet.hub import save_for_hub
from modeling_mirnet.inference import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", default=str(ROOT / "datasets" / "lol_eval15" / "low" / "179.png"))
    parser.add_argument("--model", default=str(ROOT / "space" / "checkpoints" / "mirnet-lol"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--precision", dest="precision", default="auto", choices=PRECISIONS, help="the Space's --precision (the status line says which ran)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("space_app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    with tempfile.TemporaryDirectory() as tmp:
        source = args.model
        if source == "default-config":
            torch.manual_seed(0)
            source = str(Path(tmp) / "mirnet-default")
            save_for_hub(MIRNetModel(MIRNetConfig()).eval(), source)
        space = app.MIRNetSpace({"timed": source}, device="cpu", precision=args.precision)
        for _ in range(args.runs):
            start = time.perf_counter()
            status, *_ = space.enhance(args.image)
            print(f"{time.perf_counter() - start:.2f} s for the whole handler; {status}", flush=True)


if __name__ == "__main__":
    main()
