"""Screening harness for the Mozafari 2019 accuracy gap: one fixed protocol per lead.

Each lead is a change of the published protocol (a few config fields). For each lead and
seed: conv1/conv2 are trained once per distinct layer setting (2 and 4 epochs on the first
50k training digits, as published), then conv3 learns by exact R-STDP for ``--epochs`` epochs,
scored after every epoch on the 10k held-out training digits (validation) and on the test
set. A lead is judged by the mean validation accuracy of its last 10 epochs; the test set
chooses nothing. Runs checkpoint every epoch and continue where they stopped.

    python benchmarks/mozafari_leads.py --leads base,floor --seeds 1,2 --epochs 200 --out runs/leads
    python benchmarks/mozafari_leads.py --summary --out runs/leads      # the table so far

Run one process per core (``OMP_NUM_THREADS=1``) with different leads.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

from snnlab.models import mozafari2019 as mz

#: lead -> (fields of conv1/conv2, fields of the R-STDP stage), each a change of the published protocol
LEADS = {
    "base": ({}, {}),
    "radius2": ({"radius": (3, 2)}, {}),
    "floor": ({}, {"adaptive_min": 0.2, "adaptive_scale": 0.8}),
    "dropout": ({}, {"rstdp_dropout": 0.5}),
    "stabilizer": ({}, {"rstdp_stabilizer": True}),
    "shuffle": ({}, {"shuffle": True}),
    "t30": ({"time_steps": 30}, {}),
}
LAST = 10  # epochs averaged


def _layers_key(fields: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in sorted(fields.items())).replace(" ", "") or "published"


def run_lead(lead: str, seed: int, epochs: int, out: Path, log=print) -> dict:
    layers, rstdp = LEADS[lead]
    base = dict(epochs=(2, 4, 0), **layers)
    lay_dir = out / f"layers-{_layers_key(layers)}-s{seed}"
    if not (lay_dir / "results.json").is_file():
        log(f"[{lead} s{seed}] conv1/conv2 -> {lay_dir}")
        mz.reproduce(mz.Mozafari2019Config(**base), lay_dir, device="cpu", seed=seed, resume=True, progress=False,
                     log=log)
    run_dir = out / f"{lead}-s{seed}"
    if not (run_dir / "checkpoint.pt").is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lay_dir / "checkpoint.pt", run_dir / "checkpoint.pt")
    cfg = mz.Mozafari2019Config(**dict(base, epochs=(2, 4, epochs), **rstdp))
    log(f"[{lead} s{seed}] R-STDP {epochs} epochs -> {run_dir}")
    return mz.reproduce(cfg, run_dir, device="cpu", seed=seed, resume=True, progress=False,
                        log=lambda m: log(f"[{lead} s{seed}] {m}"))


def summary(out: Path) -> list:
    rows = []
    for path in sorted(out.glob("*-s*/checkpoint.pt")):
        if path.parent.name.startswith("layers-"):
            continue
        import torch

        ck = torch.load(path, weights_only=False)
        hist = ck["state"]["history"]
        if not hist:
            continue
        lead, seed = path.parent.name.rsplit("-s", 1)
        val = [100 * h["validation"]["correct"] for h in hist]
        test = [100 * h["test"]["correct"] for h in hist]
        tail = slice(-LAST, None)
        best = max(range(len(val)), key=lambda i: (val[i], i))
        rows.append({"lead": lead, "seed": int(seed), "epochs": len(hist),
                     f"val mean last {LAST}": statistics.mean(val[tail]),
                     f"test mean last {LAST}": statistics.mean(test[tail]),
                     "val-chosen epoch": best + 1, "test at val-chosen": test[best],
                     "train last": 100 * hist[-1]["train"]["correct"],
                     "s/epoch": statistics.median(h["seconds"] for h in hist)})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--leads", default="base", help=f"comma-separated, of: {', '.join(LEADS)}")
    p.add_argument("--seeds", default="1", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=200, help="R-STDP epochs per lead (default 200)")
    p.add_argument("--out", default="runs/leads")
    p.add_argument("--summary", action="store_true", help="print the table of what is there and exit")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.summary:
        rows = summary(out)
        if not rows:
            print(f"no runs in {out}")
            return 0
        cols = list(rows[0])
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
        (out / "summary.json").write_text(json.dumps(rows, indent=1))
        return 0
    leads = args.leads.split(",")
    unknown = [x for x in leads if x not in LEADS]
    if unknown:
        p.error(f"--leads: unknown {', '.join(unknown)}; expected some of {', '.join(LEADS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if args.epochs < 1:
        p.error("--epochs: expected a positive number")
    for seed in seeds:
        for lead in leads:
            t0 = time.perf_counter()
            res = run_lead(lead, seed, args.epochs, out, log=lambda m: print(m, flush=True))
            print(f"[{lead} s{seed}] done in {time.perf_counter() - t0:.0f} s: validation "
                  f"{res['validation_accuracy']:.2f}%, test {res['test_accuracy']:.2f}% at epoch "
                  f"{res['chosen_epoch']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

