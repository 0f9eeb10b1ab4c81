"""Photos per second of `mirnet-enhance` on 1 vs N processes (`accelerate launch`), one thread each.

    python benchmarks/cli_processes.py --images datasets/lol_eval15/low --model space/checkpoints/mirnet-lol --write

Each run enhances every photo in --images (--repeat times over, as copies) into a fresh folder, in a fresh launch;
the rate is photos over the enhancement loop's seconds (what the CLI's summary line reports: the model is loaded
before it, on every process at once). Run it on an otherwise idle machine: the ratio is what it measures.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark import machine_info, publish  # noqa: E402


def launch(processes: int, images: Path, output: Path, model: str, precision: str) -> float:
    """One launch on `processes` CPU processes; the enhancement loop's seconds from the summary line."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29561",
               "-m", "modeling_mirnet.cli", str(images), "-o", str(output), "--model", model, "--precision", precision]
    if processes == 1:  # accelerate's multi-process launcher wants at least two; one is the plain CLI
        command = [sys.executable, "-m", "modeling_mirnet.cli", str(images), "-o", str(output), "--model", model, "--precision", precision]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    match = re.search(r"^enhanced (\d+) image\(s\) into .* in ([\d.]+) s", result.stdout, re.M)
    if result.returncode != 0 or not match:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return int(match.group(1)), float(match.group(2))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=Path("datasets/lol_eval15/low"))
    parser.add_argument("--model", default="space/checkpoints/mirnet-lol")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2, help="copies of each photo (more photos per run)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirnet-cli-bench-"))
    try:
        photos = work / "photos"
        photos.mkdir()
        for path in sorted(args.images.iterdir()):
            for k in range(args.repeat):
                shutil.copyfile(path, photos / f"{path.stem}_{k}{path.suffix}")
        rates = {}
        for n in args.processes:
            count, seconds = launch(n, photos, work / f"out{n}", args.model, args.precision)
            rates[n] = (count, seconds, count / seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rates[args.processes[0]][2]
    machine = machine_info("cpu")
    lines = ["<!-- cli-processes:start -->", "## Many photos: the CLI on several processes", "",
             f"`python benchmarks/cli_processes.py {' '.join(sys.argv[1:])}` ({machine['cpu']}, {machine['logical_cpus']} "
             f"logical CPUs, {machine['date']}): {args.repeat} copies of each photo in `{args.images}`, "
             f"`{args.model}`, one thread per process, precision {args.precision}; seconds of the enhancement loop.", "",
             "| processes | photos | seconds | photos / s | vs 1 process |", "|---:|---:|---:|---:|---:|"]
    for n, (count, seconds, rate) in rates.items():
        lines.append(f"| {n} | {count} | {seconds:.1f} | {rate:.2f} | {rate / base:.2f}x |")
    publish("\n".join(lines + ["<!-- cli-processes:end -->"]), args.write)


if __name__ == "__main__":
    main()
