"""Whole jobs, end to end: the README's commands timed phase by phase, several runs, medians.

Runs ``snnlab reproduce MODEL --quick`` (or any other arguments) ``--repeats`` times, each in a
fresh process and a fresh output folder, with the encoded MNIST spikes already cached (as they
are after a user's first run: encoding is measured once, separately, by ``--encode``). For each
run it records the wall time seen from outside (imports included) and the phases the run
wrote into its ``results.json``; it prints one markdown table (median and range over the runs)
and writes every figure to ``--json``.

    python benchmarks/jobs.py kheradpisheh2018 --repeats 3
    python benchmarks/jobs.py mozafari2019 --repeats 3 --json results/bench/jobs-mz.json
    python benchmarks/jobs.py kheradpisheh2018 --repeats 1 -- --train-samples 200,200 --test-samples 100

Arguments after ``--`` replace ``--quick``. Run it on a quiet machine: another busy process
on the cores shows up directly in these times.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(model: str, extra: list, out: Path) -> dict:
    """One ``snnlab reproduce`` in its own process: outside wall time, phases, test accuracy."""
    cmd = [sys.executable, "-m", "snnlab", "reproduce", model, *extra, "--out", str(out), "--no-progress"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"jobs: {' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    res = json.loads((out / "results.json").read_text())
    return {"wall_s": wall, "phases_s": res.get("wall_time_per_phase_s", {}),
            "test_accuracy": res.get("test_accuracy"), "command": " ".join(["snnlab", *cmd[3:]])}


def encode_all(model: str) -> float:
    """Fill the encoded-spike caches this model reads (the full train and test splits); seconds."""
    from snnlab.coding import Encoder
    from snnlab.data import encoded_mnist

    enc = getattr(Encoder, model)()
    t0 = time.perf_counter()
    for train in (True, False):
        encoded_mnist(enc, train)
    return time.perf_counter() - t0


def table(runs: list) -> str:
    """Markdown: one row per phase and for the outside wall time, median and range over ``runs``."""
    phases = list(runs[0]["phases_s"])
    rows = [(p, [r["phases_s"].get(p, 0.0) for r in runs]) for p in phases]
    rows.append(("sum of phases", [sum(r["phases_s"].values()) for r in runs]))
    rows.append(("**end to end (process)**", [r["wall_s"] for r in runs]))
    lines = ["| phase | median s | min-max s |", "| --- | ---: | ---: |"]
    for name, vals in rows:
        lines.append(f"| {name} | {statistics.median(vals):.1f} | {min(vals):.1f}-{max(vals):.1f} |")
    accs = sorted({r["test_accuracy"] for r in runs})
    lines.append(f"\n{len(runs)} runs; test accuracy {', '.join(f'{a:.2f}%' for a in accs)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = None
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=("kheradpisheh2018", "mozafari2019"))
    p.add_argument("--repeats", type=int, default=3, help="runs (default 3)")
    p.add_argument("--json", default=None, help="write every run's figures here")
    p.add_argument("--keep", default=None, help="keep the run folders under this folder (default: a temporary one)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats: expected a positive int, got {args.repeats}")
    extra = ["--quick"] if extra is None else extra
    print(f"encoding cache for {args.model}: {encode_all(args.model):.1f} s", flush=True)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="snnlab-jobs-"))
    runs = []
    for i in range(args.repeats):
        r = run_once(args.model, extra, base / f"run{i + 1}")
        print(f"run {i + 1}/{args.repeats}: {r['wall_s']:.1f} s, test {r['test_accuracy']:.2f}%", flush=True)
        runs.append(r)
    print(f"\n`{runs[0]['command']}` (threads: {os.environ.get('OMP_NUM_THREADS', 'torch default')})\n")
    print(table(runs))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"model": args.model, "args": extra, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
