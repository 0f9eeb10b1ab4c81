"""Speed and memory of this MIRNet port side by side with the official MIRNet v1 code (`swz30/MIRNet`).

    python benchmarks/benchmark.py --official /path/to/MIRNet                 # CPU: 600x400 and 12 MP, ~10 min
    python benchmarks/benchmark.py --official /path/to/MIRNet --device cuda   # adds the GPU section

Both models get the same seeded random weights (the official model is built with `--seed`, ours is converted from
its state_dict with `convert_checkpoint`) and the same input, so their outputs are compared too. Every case runs in
a fresh subprocess, so each peak memory figure belongs to that case alone. Writes BENCHMARKS.md (the table, the
command, the machine) and a JSON file with the raw numbers. The official code is loaded by path, without running
its `utils/__init__.py` (which imports cv2); it is never copied into this repository.

Ours is also run through the inference path in fp32, bf16 autocast, torch.compile and both (`--cpu-variants`), each
timed and its 8-bit outputs on the bundled eval15 photos compared with fp32's (`--quality-images`).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import types

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # modeling_mirnet is installed: pip install -e .

H100_BF16_DENSE_TFLOPS = 989.0  # NVIDIA H100 SXM, dense bf16 tensor-core peak
GIB = 1024**3


# ---------------------------------------------------------------------------------------------------- models


def load_official_module(root: str):
    """The official model code at `root`; exits with the reason when it is not there."""
    from modeling_mirnet.convert_official_checkpoint import ConversionError, import_official_code

    try:
        return import_official_code(root)
    except ConversionError as err:
        raise SystemExit(f"--official {err} (see benchmarks/README.md)") from None


def prepare_weights(official_root: str, seed: int, workdir: str) -> None:
    """Seeded official weights -> workdir/official.pt, and the same weights converted to ours -> workdir/ours/."""
    from modeling_mirnet.convert_official_checkpoint import convert_checkpoint

    torch.manual_seed(seed)
    official = load_official_module(official_root).MIRNet()
    torch.save(official.state_dict(), os.path.join(workdir, "official.pt"))
    convert_checkpoint({"state_dict": official.state_dict()}).save_pretrained(os.path.join(workdir, "ours"))


def build(which: str, args, device: str):
    """The official or our model with the prepared weights, in eval mode on `device`."""
    if which == "official":
        model = load_official_module(args.official).MIRNet()
        model.load_state_dict(torch.load(os.path.join(args.workdir, "official.pt"), weights_only=True))
    else:
        from modeling_mirnet import MIRNetModel

        model = MIRNetModel.from_pretrained(os.path.join(args.workdir, "ours"))
    return model.eval().to(device)


def run_model(model, which: str, x: torch.Tensor) -> torch.Tensor:
    """One forward pass; the official model returns a tensor, ours an output object."""
    return model(x) if which == "official" else model(x, return_dict=True).reconstruction


def set_memory_format(model, which: str, channels_last: bool) -> None:
    """channels_last on or off: our model has a switch (its default is on for CPU); the official one is converted."""
    if which == "ours":
        model.channels_last = channels_last
    elif channels_last:
        model.to(memory_format=torch.channels_last)


def seeded_input(batch: int, height: int, width: int, device: str, seed: int = 1) -> torch.Tensor:
    """A reproducible input in [0, 1]."""
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)).to(device)


# ---------------------------------------------------------------------------------------------------- memory


def proc_status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss_peak_bytes() -> int:
    """This process's peak resident set size (VmHWM; unlike ru_maxrss it does not inherit the parent's peak)."""
    return proc_status_bytes("VmHWM")


def rss_now_bytes() -> int:
    """This process's current resident set size."""
    return proc_status_bytes("VmRSS")


def reset_rss_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the next peak counts only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass


def available_memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------------------------------------- workers


def cpu_setup(args, which: str, height: int, width: int):
    """(model, input, RSS with the model loaded) for a CPU worker; the RSS peak is reset so it counts only what follows."""
    torch.set_num_threads(args.threads)
    model = build(which, args, "cpu")
    x = seeded_input(1, height, width, "cpu")
    rss_model = rss_now_bytes()
    reset_rss_peak()
    return model, x, rss_model


def worker_cpu_speed(args, which: str) -> dict:
    """CPU seconds per image (median of runs after a warm-up), peak RSS, and the output for the comparison."""
    model, x, rss_model = cpu_setup(args, which, args.height, args.width)
    times = []
    with torch.inference_mode():
        y = run_model(model, which, x)  # warm-up (oneDNN primitive creation)
        for _ in range(args.runs):
            start = time.perf_counter()
            y = run_model(model, which, x)
            times.append(time.perf_counter() - start)
    torch.save(y.contiguous(), os.path.join(args.workdir, f"output_{which}.pt"))
    peak = rss_peak_bytes()
    return {
        "seconds": times,
        "median_s": statistics.median(times),
        "peak_rss_bytes": peak,
        "rss_after_model_bytes": rss_model,
        "peak_above_model_bytes": peak - rss_model,
        "pixels": args.height * args.width,
    }


class FirstTilesOnly:
    """Stands in for the model inside `tiled_forward`: runs the real model on the first `limit` tiles and passes
    the others through unchanged, so the peak memory of a tiled run (set by one tile plus the full-size buffers)
    is measured without paying for every tile; `limit` 0 runs them all."""

    def __init__(self, model, limit: int):
        self.model, self.limit, self.config, self.times, self.tiles = model, limit, model.config, [], 0

    def __call__(self, tile, return_dict=True):
        self.tiles += 1
        if self.limit and self.tiles > self.limit:
            return types.SimpleNamespace(reconstruction=tile)
        start = time.perf_counter()
        out = self.model(tile, return_dict=True)
        self.times.append(time.perf_counter() - start)
        return out


def worker_cpu_tiled(args, which: str) -> dict:
    """A 12 MP photo through `tiled_forward` (as `MIRNetModel.enhance(tile_size=...)` does): peak RSS, time per tile."""
    from modeling_mirnet.tiling import tiled_forward

    model, x, rss_model = cpu_setup(args, which, args.big_height, args.big_width)
    runner = FirstTilesOnly(model, args.big_tiles)
    start = time.perf_counter()
    with torch.inference_mode():
        y = tiled_forward(runner, x, args.tile_size, args.overlap)
    seconds = time.perf_counter() - start
    peak = rss_peak_bytes()
    assert y.shape == x.shape
    per_tile = statistics.median(runner.times)
    return {"seconds": seconds, "tiles": runner.tiles, "tiles_computed": len(runner.times), "median_s_per_tile": per_tile,
            "estimated_all_tiles_s": per_tile * runner.tiles, "peak_rss_bytes": peak, "rss_after_model_bytes": rss_model,
            "peak_above_model_bytes": peak - rss_model}


def worker_flops(args, which: str) -> dict:
    """FLOPs of one forward at the benchmark size and of one training step (torch.utils.flop_counter), on meta."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = load_official_module(args.official).MIRNet() if which == "official" else None
        if model is None:
            from modeling_mirnet import MIRNetConfig, MIRNetModel

            model = MIRNetModel(MIRNetConfig())
        x = torch.empty(1, 3, args.height, args.width)
        crop = torch.empty(args.train_batch, 3, args.crop, args.crop)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run_model(model, which, x)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        run_model(model.train(), which, crop).sum().backward()
    return {"forward_flops_per_image": forward, "train_step_flops": counter.get_total_flops()}


def cuda_variant_model(args, which: str, variant: str):
    """The model prepared for a GPU variant: fp32 / bf16 autocast, channels_last, torch.compile."""
    model = build(which, args, "cuda")
    set_memory_format(model, which, "channels_last" in variant)
    runner = (lambda x: run_model(model, which, x))
    if "compile" in variant:
        runner = torch.compile(runner)
    return model, runner


def cuda_time(fn, iters: int) -> float:
    """Seconds per call of `fn` on the GPU (CUDA events, after a warm-up of 3 calls)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000 / iters


def worker_cuda(args, which: str, variant: str) -> dict:
    """GPU images/s at the benchmark size and training-step time at batch x crop, for one variant."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32 (cuDNN would otherwise use TF32 convolutions)
    model, runner = cuda_variant_model(args, which, variant)
    dtype = torch.bfloat16 if "bf16" in variant else None
    memory_format = torch.channels_last if "channels_last" in variant else torch.contiguous_format
    x = seeded_input(args.gpu_batch, args.height, args.width, "cuda").contiguous(memory_format=memory_format)
    result = {"variant": variant}
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
        y = runner(x)
        seconds = cuda_time(lambda: runner(x), args.gpu_iters)
    result["images_per_s"] = args.gpu_batch / seconds
    result["inference_peak_bytes"] = torch.cuda.max_memory_allocated()
    if variant == "fp32":
        torch.save(y[:1].float().cpu(), os.path.join(args.workdir, f"cuda_output_{which}.pt"))
    # training step: forward + Charbonnier loss + backward + Adam step (the official recipe's loss and optimizer)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    crop = seeded_input(args.train_batch, args.crop, args.crop, "cuda", 2).contiguous(memory_format=memory_format)
    target = seeded_input(args.train_batch, args.crop, args.crop, "cuda", 3)

    def step():
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            diff = runner(crop).float() - target
            loss = torch.sqrt(diff * diff + 1e-6).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    torch.cuda.reset_peak_memory_stats()
    result["train_step_s"] = cuda_time(step, max(3, args.gpu_iters // 2))
    result["train_peak_bytes"] = torch.cuda.max_memory_allocated()
    return result


def worker_cuda_big(args, which: str, tiled: bool) -> dict:
    """Peak GPU memory (and time) for a 12 MP photo, tiled or whole (fp32, inference)."""
    model = build(which, args, "cuda")
    x = seeded_input(1, args.big_height, args.big_width, "cuda")
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.inference_mode():
        if tiled:
            y = model.enhance(x, tile_size=args.tile_size, tile_overlap=args.overlap)
        else:
            y = run_model(model, which, x)
    torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - start, "peak_bytes": torch.cuda.max_memory_allocated(), "shape": list(y.shape)}


def worker_cpu_big_untiled(args, which: str) -> dict:
    """The large photo in one piece on CPU (only run when the estimate says it fits): time and peak RSS."""
    model, x, rss_model = cpu_setup(args, which, args.big_height, args.big_width)
    start = time.perf_counter()
    with torch.inference_mode():
        run_model(model, which, x)
    return {"seconds": time.perf_counter() - start, "peak_rss_bytes": rss_peak_bytes(), "rss_after_model_bytes": rss_model}


def worker_cpu_variant(args, variant: str) -> dict:
    """Ours through the inference path (`Enhancer`) in one precision, compiled or not: seconds per image on the
    seeded input (median of runs after a first call, which also compiles), then the 8-bit outputs for the first
    `--quality-images` eval15 photos (saved for the comparison with fp32) and their PSNR against the references."""
    import numpy as np
    from PIL import Image

    from modeling_mirnet.inference import Enhancer
    from modeling_mirnet.metrics import psnr

    torch.set_num_threads(args.threads)
    precision = "bf16" if "bf16" in variant else "fp32"
    model = build("ours", args, "cpu")
    enhancer = Enhancer(model, precision=precision, compile="compile" in variant)
    x = seeded_input(1, args.height, args.width, "cpu")
    start = time.perf_counter()
    enhancer.forward(x)
    first = time.perf_counter() - start
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        enhancer.forward(x)
        times.append(time.perf_counter() - start)
    low, high = os.path.join(args.quality_dataset, "low"), os.path.join(args.quality_dataset, "high")
    names = sorted(os.listdir(low))[: args.quality_images]
    outputs, scores = [], []
    for name in names:
        out = np.asarray(enhancer(os.path.join(low, name)))
        outputs.append(out)
        scores.append(psnr(out, np.asarray(Image.open(os.path.join(high, name)).convert("RGB"))))
    np.save(os.path.join(args.workdir, f"quality_{variant}.npy"), np.stack(outputs))
    median = statistics.median(times)
    return {"variant": variant, "seconds": times, "median_s": median, "first_call_s": first,
            "compile_s": first - median if "compile" in variant else None, "quality_images": names,
            "psnr_vs_reference": scores, "mean_psnr_vs_reference": float(np.mean(scores))}


WORKERS = {
    "cpu_variant": worker_cpu_variant,
    "cpu_speed": worker_cpu_speed,
    "cpu_big_untiled": worker_cpu_big_untiled,
    "cpu_tiled": worker_cpu_tiled,
    "flops": worker_flops,
    "cuda": worker_cuda,
    "cuda_big": worker_cuda_big,
}


def compare_variants(args, variants: dict) -> dict:
    """Each variant's 8-bit eval15 outputs against fp32's: PSNR over all photos (pooled MSE) and for the worst one."""
    import numpy as np

    path = os.path.join(args.workdir, "quality_fp32.npy")
    if not os.path.exists(path):
        return variants
    reference = np.load(path).astype(np.float64) / 255
    for name, result in variants.items():
        other = os.path.join(args.workdir, f"quality_{name}.npy")
        if "error" in result or not os.path.exists(other):
            continue
        mse = ((np.load(other).astype(np.float64) / 255 - reference) ** 2).reshape(len(reference), -1).mean(axis=1)
        to_db = lambda m: float("inf") if m == 0 else float(10 * np.log10(1 / m))  # noqa: E731
        result["output_vs_fp32_psnr_pooled"] = to_db(mse.mean())
        result["output_vs_fp32_psnr_worst"] = to_db(mse.max())
        result["psnr_change_vs_fp32"] = result["mean_psnr_vs_reference"] - variants["fp32"]["mean_psnr_vs_reference"]
    return variants


def spawn(args, case: str, *case_args) -> dict:
    """Run one case in a fresh Python process (so peaks do not mix) and return its JSON result."""
    command = [sys.executable, os.path.abspath(__file__), *args.passthrough, "--workdir", args.workdir,
               "--worker", json.dumps([case, *case_args])]
    print(f"[benchmark] {case} {' '.join(map(str, case_args))} ...", flush=True)
    started = time.perf_counter()
    cache = os.path.join(args.workdir, "inductor-cache", case + "-" + "-".join(map(str, case_args)))  # cold per case
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"[benchmark]   {json.dumps(result)[:300]} ({time.perf_counter() - started:.0f} s)", flush=True)
    return result


# ---------------------------------------------------------------------------------------------------- report


def machine_info(device: str) -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def replace_section(path: str, section: str) -> None:
    """Put `section` (a block from its `<!-- NAME:start -->` line to its `<!-- NAME:end -->` line) into the markdown
    file at `path`: in place of the block of the same name, or at the end. The other scripts' sections use this."""
    start, end = section.splitlines()[0], section.splitlines()[-1]
    text = open(path).read() if os.path.isfile(path) else ""
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n"
    with open(path, "w") as report:
        report.write(text)


def script_sections(text: str) -> list[str]:
    """The sections of a markdown file written by the other benchmark scripts (`<!-- NAME:start -->` to
    `<!-- NAME:end -->`, in order): benchmark.py keeps them all when it rewrites BENCHMARKS.md."""
    return [m.group(0) for m in re.finditer(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", text, re.S)]


def publish(section: str, write: bool) -> None:
    """Print a BENCHMARKS.md section and, with `write`, put it into BENCHMARKS.md (`replace_section`)."""
    print(section)
    if write:
        replace_section(os.path.join(REPO, "BENCHMARKS.md"), section)


def add_pair_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments the benchmarks that score models on a split of a paired dataset share."""
    parser.add_argument("--model", action="append", required=True, help="LABEL=FOLDER_OR_HUB_ID (repeatable)")
    parser.add_argument("--dataset", default="data/lol", help="folder written by train/prepare_dataset.py")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (auto: what inference picks here)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--limit", type=int, default=None, help="the first N pairs only")
    parser.add_argument("--json", help="also write the per-image figures here")
    parser.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")


def parse_pair_benchmark_arguments(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, remember the command line (`args.argv`, for the tables and JSON) and set torch's threads."""
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def write_per_image_json(args, script: str, summary: dict, names: list[str], per_image: dict) -> None:
    """With `--json`, write a benchmark's summary and per-image figures with the command that made them."""
    if not args.json:
        return
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"command": f"python benchmarks/{script} {' '.join(args.argv)}", "summary": summary, "names": names,
                   "per_image": per_image}, f, indent=1)


def fmt_bytes(n) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 1024**2:.0f} MiB"


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def fmt_db(value) -> str:
    return "identical" if value == float("inf") else f"{value:.2f} dB"


def variant_table(args, results: dict) -> list[str]:
    """The CPU section's second table: ours in fp32, bf16, compiled, both, against the official code and fp32."""
    variants, official = results.get("cpu_variants", {}), results["cpu"].get("official", {})
    if "median_s" not in variants.get("fp32", {}):
        return []
    fp32 = variants["fp32"]
    count = len(fp32["quality_images"])
    lines = [
        "### Precision and compilation (ours, default configuration)",
        "",
        f"Through the package's inference path (`modeling_mirnet.inference.Enhancer`, as the CLI, pipeline and Space"
        f" run it: preprocessing aside, network under autocast, float output), one process per variant, same weights"
        f" and input as above; seconds per {args.width}x{args.height} image, median of {args.runs} after a first call"
        f" (which compiles, for the compiled variants: `compile_model`, inductor with weight freezing). Output change:"
        f" the variant's 8-bit outputs against fp32's on the first {count} bundled eval15 photos"
        f" (`{os.path.relpath(args.quality_dataset, REPO)}`), PSNR of the pooled MSE and of the worst photo; eval15"
        f" change: mean PSNR against the references, variant minus fp32 (random weights: only the change is meaningful).",
        "",
        "| variant | s per image | official fp32 / this | fp32 / this | compile time | output vs fp32: all / worst photo | eval15 PSNR change |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in variants.items():
        if "median_s" not in v:
            lines.append(f"| {name} | {v.get('error', 'failed')} | | | | | |")
            continue
        compile_s = f"{v['compile_s']:.0f} s" if v.get("compile_s") is not None else "-"
        change = "-" if name == "fp32" else (f"{fmt_db(v['output_vs_fp32_psnr_pooled'])} / {fmt_db(v['output_vs_fp32_psnr_worst'])}")
        delta = "-" if name == "fp32" else f"{v['psnr_change_vs_fp32']:+.3f} dB"
        lines.append(f"| {name} | {v['median_s']:.2f} | **{ratio(official.get('median_s'), v['median_s'])}** |"
                     f" {ratio(fp32['median_s'], v['median_s'])} | {compile_s} | {change} | {delta} |")
    return lines + [""]


def write_report(args, results: dict, command: str) -> None:
    info, cpu = results["machine"], results["cpu"]
    lines = [
        "# Benchmarks: this port vs the official MIRNet v1 code",
        "",
        "Produced in one run by (see `benchmarks/README.md` for getting the official code):",
        "",
        "```",
        command,
        "```",
        "",
        f"Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, {info['memory_gib']} GiB RAM"
        + (f", {info['gpu']}" if "gpu" in info else "")
        + f"; Python {info['python']}, torch {info['torch']}; {info['date']}.",
        (
            f"Load average (1, 5, 15 min) at start {info['load_average_start']}, at end {info.get('load_average_end')}"
            " -- the machine is shared, so CPU times carry noise from other jobs; the ratio is what to read."
        ),
        "",
        (
            "Default configuration (64 features, 3 RRGs x 2 MRBs, 3 streams, 2 columns), the same seeded random weights"
            " in both (ours converted from the official state_dict), input `torch.rand` in [0, 1], batch 1, fp32,"
            " `torch.inference_mode()`. Official: its code as published (NCHW). Ours: the package defaults"
            " (channels_last feature maps on CPU)."
        ),
        "",
        "## CPU",
        "",
        "| | official | ours | official / ours |",
        "|---|---|---|---|",
    ]
    off, ours = cpu.get("official", {}), cpu.get("ours", {})
    if "median_s" in off and "median_s" in ours:
        lines.append(
            f"| seconds per {args.width}x{args.height} image (median of {args.runs}, {args.threads} threads)"
            f" | {off['median_s']:.2f} | {ours['median_s']:.2f} | **{ratio(off['median_s'], ours['median_s'])}** |"
        )
        lines.append(
            f"| peak RSS of the process, {args.width}x{args.height} | {fmt_bytes(off['peak_rss_bytes'])}"
            f" | {fmt_bytes(ours['peak_rss_bytes'])} | {ratio(off['peak_rss_bytes'], ours['peak_rss_bytes'])} |"
        )
        lines.append(
            f"| peak RSS above the loaded model (activations), {args.width}x{args.height}"
            f" | {fmt_bytes(off['peak_above_model_bytes'])} | {fmt_bytes(ours['peak_above_model_bytes'])}"
            f" | {ratio(off['peak_above_model_bytes'], ours['peak_above_model_bytes'])} |"
        )
    flops = results.get("flops", {})
    if "forward_flops_per_image" in flops.get("official", {}) and "forward_flops_per_image" in flops.get("ours", {}):
        fo, fu = flops["official"]["forward_flops_per_image"], flops["ours"]["forward_flops_per_image"]
        lines.append(f"| GFLOP per {args.width}x{args.height} image (torch flop counter) | {fo / 1e9:.0f} | {fu / 1e9:.0f} | {ratio(fo, fu)} |")
    big = results.get("cpu_12mp", {})
    mp = f"{args.big_width}x{args.big_height}"
    tiled = big.get("ours_tiled", {})
    if "peak_rss_bytes" in tiled:
        computed = "all" if tiled["tiles_computed"] == tiled["tiles"] else f"first {tiled['tiles_computed']}"
        lines.append(
            f"| {mp} photo, tiled ({args.tile_size} px tiles, {args.overlap} px overlap, {tiled['tiles']} tiles, {computed}"
            f" computed): peak RSS | - | {fmt_bytes(tiled['peak_rss_bytes'])} | |"
        )
        lines.append(
            f"| {mp} photo, tiled: seconds per tile (median) / whole photo (per tile x {tiled['tiles']})"
            f" | - | {tiled['median_s_per_tile']:.1f} / {tiled['estimated_all_tiles_s']:.0f} | |"
        )
    elif big:
        lines.append(f"| {mp} photo, tiled | - | {tiled.get('error', 'not run')} | |")
    for which in ("official", "ours"):
        estimate = big.get(f"{which}_untiled_estimate")
        if estimate:
            big[f"{which}_untiled_text"] = (
                f"not run: estimated {estimate['estimated_total_bytes'] / GIB:.1f} GiB"
                + (" > available" if estimate["estimated_total_bytes"] > estimate["available_bytes"] else "")
            )
    if big.get("official_untiled_text"):
        lines.append(f"| {mp} photo, whole (untiled) | {big['official_untiled_text']} | {big['ours_untiled_text']} | |")
    if "max_abs_diff" in cpu:
        lines.append(f"| max abs difference of the outputs (fp32) | | {cpu['max_abs_diff']:.2e} | |")
    lines += [""]
    if big.get("official_untiled_estimate"):
        lines += [
            (
                f"Untiled {mp} estimate: (peak RSS above the loaded model at {args.width}x{args.height}) x (pixels"
                f" ratio, {args.big_width * args.big_height / (args.width * args.height):.0f}) + the model's RSS;"
                " activation memory grows linearly with the pixel count. A run is attempted only with `--untiled-12mp`"
                " and when the estimate is under half of the available memory"
                f" ({fmt_bytes(big['official_untiled_estimate']['available_bytes'])} at the time)."
            ),
            "",
        ]
    lines += variant_table(args, results)
    lines += ["## GPU", ""]
    gpu = results.get("cuda")
    if not gpu:
        lines += [
            (
                "**Not measured yet**: no GPU was available when this file was produced. The same script measures it"
                " with `--device cuda`: images/s at 600x400, training-step time (batch 4 x 128 crop, Charbonnier +"
                " Adam), for fp32, bf16 autocast, channels_last and torch.compile, the fraction of the H100 dense bf16"
                f" peak ({H100_BF16_DENSE_TFLOPS:.0f} TFLOP/s) from FLOPs counted with `torch.utils.flop_counter`, and"
                " peak GPU memory for a 12 MP photo with and without tiling."
            ),
            "",
        ]
    else:
        lines += [
            (
                f"Inference: batch {args.gpu_batch} at {args.width}x{args.height}. Training step: batch"
                f" {args.train_batch} x {args.crop}x{args.crop} crop, forward + Charbonnier loss + backward + Adam."
                f" Fraction of peak = counted FLOPs x rate / {H100_BF16_DENSE_TFLOPS:.0f} TFLOP/s (H100 dense bf16),"
                " whatever the variant's precision. fp32 variants run with TF32 off."
            ),
            "",
            (
                "| variant | official images/s | ours images/s | ratio | ours % of bf16 peak | official train step"
                " | ours train step | ratio | ours train % of bf16 peak |"
            ),
            "|---|---|---|---|---|---|---|---|---|",
        ]
        fu = flops.get("ours", {}).get("forward_flops_per_image")
        ft = flops.get("ours", {}).get("train_step_flops")
        for variant in args.gpu_variants:
            o, u = gpu.get(f"official/{variant}", {}), gpu.get(f"ours/{variant}", {})
            peak = f"{100 * fu * u['images_per_s'] / (H100_BF16_DENSE_TFLOPS * 1e12):.1f}%" if fu and "images_per_s" in u else "-"
            lines.append(
                f"| {variant} | {o.get('images_per_s', 0):.1f} | {u.get('images_per_s', 0):.1f}"
                f" | **{ratio(u.get('images_per_s'), o.get('images_per_s'))}** | {peak}"
                f" | {1e3 * o.get('train_step_s', 0):.0f} ms | {1e3 * u.get('train_step_s', 0):.0f} ms"
                f" | {ratio(o.get('train_step_s'), u.get('train_step_s'))}"
                + (f" | {100 * ft / u['train_step_s'] / (H100_BF16_DENSE_TFLOPS * 1e12):.1f}% |" if ft and "train_step_s" in u else " | - |")
            )
        for key, value in gpu.items():
            if isinstance(value, dict) and "error" in value:
                lines.append(f"\n`{key}` failed: {value['error']}")
        if "max_abs_diff" in gpu:
            lines += ["", f"Max abs difference of the fp32 GPU outputs: {gpu['max_abs_diff']:.2e}."]
        big_gpu = gpu.get("12mp", {})
        if big_gpu:
            lines += ["", f"{mp} photo on the GPU (fp32): " + "; ".join(
                f"{k}: {fmt_bytes(v['peak_bytes'])} peak, {v['seconds']:.1f} s" if "peak_bytes" in v else f"{k}: {v.get('error', v)}"
                for k, v in big_gpu.items()
            ) + "."]
        lines.append("")
    lines += ["Raw numbers: `" + os.path.relpath(args.json, REPO) + "`. What was tried and what each change gave:"
              " `benchmarks/NOTES.md`.", ""]
    kept = script_sections(open(args.output).read()) if os.path.isfile(args.output) else []
    with open(args.output, "w") as report:
        report.write("\n".join(lines + kept) + ("\n" if kept else ""))


# ---------------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, help="checkout of https://github.com/swz30/MIRNet (v1)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda adds the GPU section")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--runs", type=int, default=3, help="timed CPU runs per model (after one warm-up)")
    parser.add_argument("--size", default="600x400", help="WIDTHxHEIGHT of the timed image")
    parser.add_argument("--big-size", default="4000x3000", help="WIDTHxHEIGHT of the large photo (12 MP)")
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--big-tiles", type=int, default=3,
                        help="CPU tiled 12 MP case: compute only the first N tiles (0: all); the peak is per tile")
    parser.add_argument("--cpu-variants", default="bf16,compile,bf16+compile",
                        help="ours through the inference path besides fp32: bf16 autocast, torch.compile, or both")
    parser.add_argument("--quality-dataset", default=os.path.join(REPO, "datasets", "lol_eval15"),
                        help="low/ + high/ pairs for the output comparison of the variants (default: bundled eval15)")
    parser.add_argument("--quality-images", type=int, default=15, help="how many of its photos (sorted by name)")
    parser.add_argument("--skip-12mp", action="store_true", help="leave out the large-photo cases")
    parser.add_argument("--untiled-12mp", action="store_true", help="also run the large photo whole when it fits safely")
    parser.add_argument("--gpu-batch", type=int, default=4, help="images per GPU inference call")
    parser.add_argument("--gpu-iters", type=int, default=20)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--gpu-variants", default="fp32,fp32+channels_last,bf16,bf16+channels_last,bf16+channels_last+compile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(REPO, "BENCHMARKS.md"))
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "results.json"))
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.width, args.height = map(int, args.size.lower().split("x"))
    args.big_width, args.big_height = map(int, args.big_size.lower().split("x"))
    args.gpu_variants = [v for v in args.gpu_variants.split(",") if v]
    args.passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        case, *case_args = json.loads(args.worker)
        print(json.dumps(WORKERS[case](args, *case_args)))
        return
    command = "python benchmarks/benchmark.py " + " ".join(shlex.quote(a) for a in args.passthrough)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    results = {"machine": machine_info(args.device), "args": {k: v for k, v in vars(args).items() if k != "passthrough"}}
    with tempfile.TemporaryDirectory(prefix="mirnet-bench-") as workdir:
        args.workdir = workdir
        prepare_weights(args.official, args.seed, workdir)
        cpu = results["cpu"] = {which: spawn(args, "cpu_speed", which) for which in ("official", "ours")}
        outputs = [os.path.join(workdir, f"output_{w}.pt") for w in ("official", "ours")]
        if all(map(os.path.exists, outputs)):
            a, b = (torch.load(p, weights_only=True) for p in outputs)
            cpu["max_abs_diff"] = (a - b).abs().max().item()
        variants = ["fp32"] + [v for v in args.cpu_variants.split(",") if v]
        results["cpu_variants"] = compare_variants(args, {v: spawn(args, "cpu_variant", v) for v in variants})
        results["flops"] = {which: spawn(args, "flops", which) for which in ("official", "ours")}
        if not args.skip_12mp:
            big = results["cpu_12mp"] = {"ours_tiled": spawn(args, "cpu_tiled", "ours")}
            scale = args.big_width * args.big_height / (args.width * args.height)
            for which in ("official", "ours"):
                if "peak_above_model_bytes" not in cpu[which]:
                    continue
                estimate = {
                    "estimated_total_bytes": int(cpu[which]["peak_above_model_bytes"] * scale + cpu[which]["rss_after_model_bytes"]),
                    "available_bytes": available_memory_bytes(),
                }
                big[f"{which}_untiled_estimate"] = estimate
                if args.untiled_12mp and estimate["estimated_total_bytes"] < estimate["available_bytes"] / 2:
                    big[f"{which}_untiled"] = spawn(args, "cpu_big_untiled", which)
        if args.device == "cuda":
            gpu = results["cuda"] = {}
            for variant in args.gpu_variants:
                for which in ("official", "ours"):
                    gpu[f"{which}/{variant}"] = spawn(args, "cuda", which, variant)
            outputs = [os.path.join(workdir, f"cuda_output_{w}.pt") for w in ("official", "ours")]
            if all(map(os.path.exists, outputs)):
                a, b = (torch.load(p, weights_only=True) for p in outputs)
                gpu["max_abs_diff"] = (a - b).abs().max().item()
            if not args.skip_12mp:
                gpu["12mp"] = {
                    "ours tiled": spawn(args, "cuda_big", "ours", True),
                    "ours whole": spawn(args, "cuda_big", "ours", False),
                    "official whole": spawn(args, "cuda_big", "official", False),
                }
    results["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as raw:
        json.dump(results, raw, indent=1)
    write_report(args, results, command)
    print(f"[benchmark] wrote {args.output} and {args.json}")


if __name__ == "__main__":
    main()
