#!/usr/bin/env python
"""Kernels (aten operator calls) and dtype casts per forward pass and per training step, before and after a change
of the model code, with single-thread CPU time and the fp32 output difference, from one run.

    python benchmarks/kernel_count.py --baseline 732ce16            # the model code at a git commit vs the working tree
    python benchmarks/kernel_count.py --baseline HEAD --configs 16x3x2 --skip-time

The baseline's `modeling_mirnet/` is taken from git (`git archive`) into a temporary folder and imported under
another name, so both versions run in one process on the same weights (the baseline's state_dict, loaded into the
current model: this also checks that earlier checkpoints still load). Counted with a TorchDispatchMode, i.e. the
operators that reach a kernel after autograd and autocast (forward and backward for a step): on CPU each is one
kernel call, on a GPU at least one launch. Casts are the `_to_copy`/`copy_` calls that change the dtype.
Time: CPU seconds of the process (`time.process_time`, one thread), median of `--runs`: steadier than wall time on a
shared machine. Writes benchmarks/kernel_count_results.json and the "Kernels per step" section of BENCHMARKS.md.
"""

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmark import machine_info, replace_section  # benchmarks/benchmark.py, beside this file

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
START, END = "<!-- kernel-count:start -->", "<!-- kernel-count:end -->"


# operators that only make a new view of existing memory: no kernel runs
VIEW_OPS = {"view", "_unsafe_view", "detach", "alias", "expand", "t", "as_strided", "split", "chunk", "unbind",
            "unsqueeze", "squeeze", "permute", "transpose", "slice", "select", "narrow", "view_as"}


class OpCounter(TorchDispatchMode):
    """Counts the aten operator calls that run a kernel (not views, not `to` that returns its input), and the
    casts among them (a tensor in, a tensor of another dtype out)."""

    def __init__(self):
        super().__init__()
        self.ops, self.casts = Counter(), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in VIEW_OPS or (name == "to" and out is args[0]):
            return out
        self.ops[name] += 1
        if name in ("to", "_to_copy", "copy_") and isinstance(out, torch.Tensor):
            source = args[1] if name == "copy_" else args[0]
            self.casts += int(isinstance(source, torch.Tensor) and source.dtype != out.dtype)
        return out


def import_baseline(rev: str, workdir: str):
    """The package `modeling_mirnet` as it was at git `rev`, imported as `modeling_mirnet_baseline`."""
    target = Path(workdir) / "modeling_mirnet_baseline"
    archive = subprocess.run(["git", "archive", rev, "modeling_mirnet"], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", workdir], input=archive, check=True)
    (Path(workdir) / "modeling_mirnet").rename(target)
    sys.path.insert(0, workdir)
    return importlib.import_module("modeling_mirnet_baseline.modeling_mirnet"), importlib.import_module(
        "modeling_mirnet_baseline.configuration_mirnet")


def run_case(model, case: str, bf16: bool, args):
    """A closure for one forward pass (inference) or one training step (forward, Charbonnier, backward, Adam)."""
    from modeling_mirnet.losses import enhancement_loss

    generator = torch.Generator().manual_seed(1)
    if case == "forward":
        width, height = map(int, args.size.split("x"))
        x = torch.rand(1, 3, height, width, generator=generator)
        model.eval()

        def forward():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(x, return_dict=True).reconstruction

        return forward
    x = torch.rand(args.batch, 3, args.crop, args.crop, generator=generator) * 0.2
    y = torch.rand(args.batch, 3, args.crop, args.crop, generator=generator)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = enhancement_loss(model(x, return_dict=True).reconstruction, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def measure(model, case: str, bf16: bool, args) -> dict:
    fn = run_case(model, case, bf16, args)
    fn()  # warm-up (oneDNN primitives)
    counter = OpCounter()
    with counter:
        fn()
    result = {"kernels": sum(counter.ops.values()), "casts": counter.casts, "top_ops": dict(counter.ops.most_common(8))}
    if not args.skip_time:
        times = []
        for _ in range(args.runs):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        result["cpu_s"] = statistics.median(times)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision of the model code to compare against")
    parser.add_argument("--configs", nargs="+", default=["64x3x2", "16x3x2"], help="channels x RRG x MRB")
    parser.add_argument("--size", default="600x400", help="WIDTHxHEIGHT of the forward pass (batch 1)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-time", action="store_true")
    parser.add_argument("--json", default=str(HERE / "kernel_count_results.json"))
    parser.add_argument("--no-markdown", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from modeling_mirnet import MIRNetConfig, MIRNetModel

    rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout.strip()
    results = {"machine": machine_info("cpu"), "baseline": rev, "args": vars(args), "configs": {}}
    with tempfile.TemporaryDirectory() as workdir:
        base_modeling, base_configuration = import_baseline(rev, workdir)
        for spec in args.configs:
            features, rrg, mrb = map(int, spec.split("x"))
            knobs = dict(num_features=features, num_rrg=rrg, num_mrb=mrb)
            torch.manual_seed(0)
            before = base_modeling.MIRNetModel(base_configuration.MIRNetConfig(**knobs))
            after = MIRNetModel(MIRNetConfig(**knobs))
            after.load_state_dict(before.state_dict(), strict=True)
            x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(2))
            with torch.inference_mode():
                diff = (before.eval()(x).reconstruction - after.eval()(x).reconstruction).abs().max().item()
            row = results["configs"][spec] = {"max_abs_diff_fp32": diff}
            for case in ("forward", "step"):
                for bf16 in (False, True):
                    key = f"{case}_{'bf16' if bf16 else 'fp32'}"
                    row[key] = {"before": measure(before, case, bf16, args), "after": measure(after, case, bf16, args)}
                    print(spec, key, {k: {kk: vv for kk, vv in v.items() if kk != "top_ops"} for k, v in row[key].items()},
                          flush=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    if not args.no_markdown:
        write_markdown(results, args)
    print(f"wrote {args.json}")


def write_markdown(results: dict, args) -> None:
    m = results["machine"]
    command = "python benchmarks/kernel_count.py " + " ".join(sys.argv[1:])
    lines = [START, "## Kernels per step (CPU)", "",
             f"Produced in one run by `{command}`: the model code at commit `{results['baseline']}` (before) vs this "
             f"tree (after), same weights. Machine: {m.get('cpu')}, torch {m.get('torch')}, {m.get('date')}; one thread, "
             "CPU seconds of the process (median of "
             f"{args.runs}). Forward: batch 1, {args.size}, inference mode (as `MIRNetModel.enhance`). Step: {args.batch} x {args.crop}^2 crops, "
             "forward + Charbonnier + backward + fused Adam. Kernels: aten operator calls that reach a kernel "
             "(TorchDispatchMode, after autograd and autocast; views left out); casts: those that change a dtype.", "",
             "| config | case | kernels before / after | casts before / after | CPU s before / after | speed-up |",
             "|---|---|---:|---:|---:|---:|"]
    for spec, row in results["configs"].items():
        for key in ("forward_fp32", "forward_bf16", "step_fp32", "step_bf16"):
            b, a = row[key]["before"], row[key]["after"]
            t = f"{b['cpu_s']:.3f} / {a['cpu_s']:.3f}" if "cpu_s" in b else "-"
            speed = f"{b['cpu_s'] / a['cpu_s']:.2f}x" if "cpu_s" in b else "-"
            lines.append(f"| {spec} | {key.replace('_', ' ')} | {b['kernels']} / {a['kernels']} | {b['casts']} / {a['casts']} | {t} | {speed} |")
    diffs = ", ".join(f"{spec} {row['max_abs_diff_fp32']:.1e}" for spec, row in results["configs"].items())
    lines += ["", f"Largest fp32 output difference, after vs before, on the same weights (96x128 input): {diffs}. "
              "The before model's state_dict loads strictly into the after model.", "",
              f"Raw numbers: `benchmarks/{Path(args.json).name}`.", END]
    replace_section(str(BENCHMARKS_MD), "\n".join(lines))


if __name__ == "__main__":
    main()
