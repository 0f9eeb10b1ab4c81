#!/usr/bin/env python
"""Run a list of experiment configs (e.g. the study's 19) one after another and tabulate them.

    python train/sweep.py train/configs/lol_*.yaml                       # LoL experiments 1-12
    python train/sweep.py train/configs/*.yaml --set num_train_epochs=1  # quick pass over all 19
    python train/sweep.py train/configs/*.yaml --table_only              # just (re)write the table

Each run is `accelerate launch train/train.py --config FILE --resume_from_checkpoint latest`, so an interrupted sweep
continues where it stopped and finished runs are not trained again. The table (OUTPUT_ROOT/sweep_results.md and .json) has,
per experiment: min validation loss and max validation PSNR side by side, the study's published figure
(`meta.seed_reported_min_val_loss`, `meta.seed_reported_val_psnr`: its max_val=255 convention), that PSNR's true
equivalent (published - 48.13 dB) and ours (true PSNR, data range 1); then the epoch of our best PSNR, SSIM there,
training minutes and the config's `meta.note` (crashed, diverged, copy slip in the write-up).
"""

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
from modeling_mirnet.metrics import INFLATION_DB


def flag(key: str, value) -> list[str]:
    """`--key value` (or `--key` / `--no-key` for booleans) for train.py."""
    if isinstance(value, bool):
        return [f"--{key}" if value else f"--no-{key}"]
    return [f"--{key}", str(value)]


def parse_set(items: list[str]) -> dict:
    values = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"error: --set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        values[key] = yaml.safe_load(value)
    return values


def run_dir(config: dict, path: Path, output_root: Path | None) -> Path:
    name = config.get("experiment") or path.stem
    return output_root / name if output_root else Path(config.get("output_dir", f"runs/{name}"))


def training_minutes(history: list[dict]) -> float | None:
    """Training + validation time over all epochs (checkpointing excluded); the last `seconds` for older histories."""
    if not history:
        return None
    if all("train_seconds" in h for h in history):
        return sum(h["train_seconds"] + (h.get("validation_seconds") or 0.0) for h in history) / 60
    return history[-1]["seconds"] / 60 if history[-1].get("seconds") is not None else None


def summarize(path: Path, config: dict, out: Path) -> dict:
    meta = config.get("meta", {}) or {}
    row = {"number": meta.get("number"), "experiment": config.get("experiment") or path.stem, "config": str(path),
           "changed": meta.get("changed", {}), "output_dir": str(out), "epochs_planned": config.get("num_train_epochs")}
    state_file = out / "trainer_state.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        history = state["history"]
        if meta.get("budget_epochs"):  # a fixed-budget study: the run as it stood after its budget (it may go on later)
            history = [h for h in history if h["epoch"] <= meta["budget_epochs"]]
            row["budget_epochs"] = meta["budget_epochs"]
        row.update(epochs_done=history[-1]["epoch"] if history else 0, train_minutes=training_minutes(history))
        validated = [h for h in history if h.get("val_psnr") is not None]  # --validation_epochs: not every epoch is validated
        if validated:
            best = max(validated, key=lambda h: h["val_psnr"])
            row.update(min_val_loss=min(h["val_loss"] for h in validated), max_val_psnr=best["val_psnr"],
                       best_epoch=best["epoch"], val_ssim_at_best=best["val_ssim"])
    seed = meta.get("seed_reported_val_psnr")
    row["seed_reported_val_psnr"] = seed
    row["seed_true_val_psnr"] = None if seed is None else seed - INFLATION_DB
    row["seed_reported_min_val_loss"] = meta.get("seed_reported_min_val_loss")
    row["note"] = meta.get("note")
    return row


def fmt(value, digits=2) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_table(rows: list[dict], output_root: Path) -> Path:
    lines = [
        "| # | experiment | change | epochs | min val loss: published | min val loss: ours | max val PSNR: published (+48.13) "
        "| published - 48.13 (true) | ours (true, dB) | epoch | SSIM there | minutes | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = ", ".join(f"{k}={v}" for k, v in (r["changed"] or {}).items()) or "(baseline)"
        note = (r.get("note") or "").replace("|", "/")
        lines.append(
            f"| {fmt(r['number'])} | {r['experiment']} | {change} | {fmt(r.get('epochs_done'))}/{fmt(r['epochs_planned'])} | "
            f"{fmt(r.get('seed_reported_min_val_loss'), 4)} | {fmt(r.get('min_val_loss'), 5)} | "
            f"{fmt(r.get('seed_reported_val_psnr'), 4)} | {fmt(r.get('seed_true_val_psnr'))} | {fmt(r.get('max_val_psnr'))} | "
            f"{fmt(r.get('best_epoch'))} | {fmt(r.get('val_ssim_at_best'), 4)} | {fmt(r.get('train_minutes'), 1)} | {note} |"
        )
    lines += [
        "",
        "Ours: max true PSNR (data range 1) on the 8-bit output of whole validation images (its epoch, SSIM there), min loss.",
        f"Published: the study's figures as printed; it computed PSNR with max_val=255 on [0, 1] images, {INFLATION_DB:.2f} dB",
        "too high, so 'published - 48.13' is the figure to compare with ours. Its validation used random 128x128 crops of 185 pairs;",
        "ours uses whole images (LoL: 145 pairs, 40 of its 185 withheld). 'n/a': no published figure (crashed run, or a loss",
        "that is not comparable), or not run yet. Minutes: training + validation time over all epochs, checkpointing excluded.",
    ]
    output_root.mkdir(parents=True, exist_ok=True)
    (output_root / "sweep_results.json").write_text(json.dumps(rows, indent=2))
    md = output_root / "sweep_results.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="+", type=Path, help="experiment config files (YAML/JSON)")
    p.add_argument("--launcher", default="accelerate launch", help="command that runs train.py (e.g. 'python')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a flag in every run")
    p.add_argument("--output_root", type=Path, default=None, help="put each run in OUTPUT_ROOT/<experiment> (default: the configs' output_dir)")
    p.add_argument("--table_only", action="store_true", help="do not train; tabulate what the run folders hold")
    args = p.parse_args(argv)
    overrides = parse_set(args.set)
    missing = [str(c) for c in args.configs if not c.is_file()]
    if missing:
        print(f"error: config file(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2

    rows, failed = [], []
    for path in args.configs:
        config = {**(yaml.safe_load(path.read_text()) or {}), **overrides}
        out = run_dir(config, path, args.output_root)
        if not args.table_only:
            command = shlex.split(args.launcher) + [str(HERE / "train.py"), "--config", str(path), "--output_dir", str(out),
                                                    "--resume_from_checkpoint", "latest"]
            for key, value in overrides.items():
                command += flag(key, value)
            print("$", shlex.join(command), flush=True)
            if subprocess.run(command).returncode != 0:
                failed.append(path.name)
        rows.append(summarize(path, config, out))
    root = args.output_root or Path("runs")
    print(f"table: {write_table(rows, root)}")
    if failed:
        print(f"error: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
