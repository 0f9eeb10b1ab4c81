"""Regenerate tests/data/official_mirnet_vectors.safetensors from a local copy of the official MIRNet v1 code.

    git clone https://github.com/swz30/MIRNet /tmp/MIRNet
    python scripts/make_official_test_vector.py --official /tmp/MIRNet

For two tiny configurations it stores, under the prefix `<case>.`: the official state_dict (official key names,
shared DAU and PReLU tensors included, PReLU slopes perturbed so a mis-mapping shows), an input in [0, 1] and the
official output computed in float64. tests/test_conversion.py checks our converted model against them. The official
code is only imported from the given path, never copied (its utils/__init__ needs cv2, so only the two files the
network needs are loaded).
"""

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from modeling_mirnet.convert_official_checkpoint import import_official_code

CASES = {
    "h3w2": dict(n_feat=8, n_RRG=2, n_MSRB=1, height=3, width=2),  # the paper's structure, tiny width
    "h4w3": dict(n_feat=8, n_RRG=1, n_MSRB=1, height=4, width=3),  # more streams and columns than the default
    "h2w1_bias": dict(n_feat=8, n_RRG=1, n_MSRB=1, height=2, width=1, bias=True),  # `bias` reaches only some convs
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, type=Path, help="folder of a swz30/MIRNet checkout")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "tests/data/official_mirnet_vectors.safetensors")
    args = parser.parse_args()
    official = import_official_code(args.official)
    tensors, meta = {}, {}
    for seed, (name, kwargs) in enumerate(CASES.items()):
        torch.manual_seed(seed)
        model = official.MIRNet(**kwargs).eval()
        with torch.no_grad():
            for param in model.parameters():
                if param.numel() == 1:  # PReLU slopes: make each distinct from the 0.25 default
                    param.add_(0.05 * torch.randn_like(param))
        model = model.double()  # float32 weights, float64 arithmetic: the reference is exact to rounding
        pixel_values = torch.rand(1, 3, 48, 64).double()
        with torch.no_grad():
            expected = model(pixel_values.clone())
        for key, value in model.state_dict().items():
            tensors[f"{name}.state_dict.{key}"] = value.float().clone().contiguous()
        tensors[f"{name}.input"] = pixel_values.float()
        tensors[f"{name}.expected"] = expected
        meta[name] = kwargs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata={"cases": json.dumps(meta), "source": "swz30/MIRNet networks/MIRNet_model.py"})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, cases {list(CASES)})")


if __name__ == "__main__":
    main()
