"""Time the Space's handler (space/app.py: MIRNetSpace.enhance) on one 600x400 LOL example, default MIRNet config.

    python scripts/time_space.py [--threads 2]

The weights are random (speed does not depend on them); the figure includes reading the image, autocontrast and
writing the PNGs, and the status line gives the network's own time.
"""

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from modeling_mirnet import MIRNetConfig, MIRNetModel
from modeling_mirnet.hub import save_for_hub

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", default=str(ROOT / "space" / "examples" / "lol_179_low.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("space_app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        save_for_hub(MIRNetModel(MIRNetConfig()).eval(), Path(tmp) / "mirnet-default")
        space = app.MIRNetSpace({"default": str(Path(tmp) / "mirnet-default")}, device="cpu")
        start = time.perf_counter()
        status, *_ = space.enhance(args.image)
        print(f"{time.perf_counter() - start:.1f} s for the whole handler; {status}")


if __name__ == "__main__":
    main()
