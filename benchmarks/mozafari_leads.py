"""Screening harness for the Mozafari 2019 accuracy gap: one fixed protocol per lead.

Each lead is a change of the published protocol (a few config fields). For each lead and
seed: conv1/conv2 are trained once per distinct layer setting (2 and 4 epochs on the first
50k training digits, as published), then conv3 learns by exact R-STDP for ``--epochs`` epochs,
scored after every epoch on the 10k held-out training digits (validation) and on the test
set. A lead is judged by the mean validation accuracy of its last 10 epochs; the test set
chooses nothing. Runs checkpoint every epoch and continue where they stopped.

    python benchmarks/mozafari_leads.py --leads base,floor --seeds 1,2 --epochs 200 --out runs/leads
    python benchmarks/mozafari_leads.py --summary --out runs/leads      # the table so far
    python benchmarks/mozafari_leads.py --export results/mozafari2019_leads --out runs/leads

``--export`` writes every run's per-epoch scores and the summary to one small ``leads.json``
(read by notebook 08). ``--set FIELD=VALUE`` changes a config field of every lead (e.g. fewer
samples for a trial run); such runs get folders of their own.

Run one process per core (``OMP_NUM_THREADS=1``) with different leads.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from snnlab.analysis import markdown_table
from snnlab.cli import set_overrides
from snnlab.integrity import atomic_write
from snnlab.runs import recorded_command
from snnlab.viz import mozafari_headline
from snnlab.models import mozafari2019 as mz

#: lead -> (fields of conv1/conv2, fields of the R-STDP stage), each a change of the published protocol
LEADS = {
    "base": ({}, {}),
    "radius2": ({"radius": (3, 2)}, {}),
    "floor": ({}, {"adaptive_min": 0.2, "adaptive_scale": 0.8}),
    "dropout": ({}, {"rstdp_dropout": 0.5}),
    "stabilizer": ({}, {"rstdp_stabilizer": True}),
    # soft bounds that can move every weight: conv3 starts at N(0.8, 0.05), the first update clips
    # the half above 0.8 to 0.8, and there "stabilizer"'s factor (w - 0.2)(0.8 - w) is 0 for good;
    # here the factor w(1 - w) of the STDP layers (bounds 0 and 1), with the rates x4 so that its
    # largest step (0.25 at w = 0.5) equals the plain rule's
    "softbound": ({}, {"rstdp_stabilizer": True, "rstdp_bounds": (0.0, 1.0), "reward_rates": (0.016, -0.012),
                       "punish_rates": (-0.016, 0.002)}),
    "shuffle": ({}, {"shuffle": True}),
    "t30": ({"time_steps": 30}, {}),
    "pointwise": ({"conv1_pointwise": True}, {}),
}
LAST = 10  # epochs averaged


def _layers_key(fields: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in sorted(fields.items())).replace(" ", "") or "published"


def layers_of(lead: str, seed: int, out: Path, log=print, overrides=None) -> Path:
    """The folder of the lead's trained conv1/conv2 (trained here the first time)."""
    layers = {**(overrides or {}), **LEADS[lead][0]}
    lay_dir = out / f"layers-{_layers_key(layers)}-s{seed}"
    if not (lay_dir / "results.json").is_file():
        log(f"[{lead} s{seed}] conv1/conv2 -> {lay_dir}")
        mz.reproduce(mz.Mozafari2019Config(**{**layers, "epochs": (2, 4, 0)}), lay_dir, device="cpu", seed=seed,
                     resume=True, progress=False, log=log)
    return lay_dir


def run_lead(lead: str, seed: int, epochs: int, out: Path, log=print, overrides=None) -> dict:
    """conv1/conv2 (shared by the leads that keep them), then ``epochs`` of R-STDP.
    ``overrides``: config fields changed for every lead (their runs get their own folders)."""
    overrides = overrides or {}
    layers, rstdp = LEADS[lead]
    lay_dir = layers_of(lead, seed, out, log, overrides)
    run_dir = out / (f"{lead}-s{seed}" if not overrides else f"{lead}-{_layers_key(overrides)}-s{seed}")
    if not (run_dir / "checkpoint.pt").is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lay_dir / "checkpoint.pt", run_dir / "checkpoint.pt")
    cfg = mz.Mozafari2019Config(**{**overrides, **layers, **rstdp, "epochs": (2, 4, epochs)})
    log(f"[{lead} s{seed}] R-STDP {epochs} epochs -> {run_dir}")
    return mz.reproduce(cfg, run_dir, device="cpu", seed=seed, resume=True, progress=False,
                        log=lambda m: log(f"[{lead} s{seed}] {m}"))


def proxy(lead: str, seed: int, out: Path, n_fit: int = 30000, log=print, overrides=None) -> dict:
    """A cheap proxy for a lead that changes conv1/conv2: a linear SVM on conv3's input (conv2's
    pooled spikes, 250 x 4 x 4 bits) trained on the first ``n_fit`` training digits, its C chosen
    on their last sixth, scored on the 10k validation digits (never the test set)."""
    from snnlab.coding import Encoder
    from snnlab.data import encoded_mnist
    from snnlab.io import load_model
    from snnlab.svm import LinearSVM, select_svm_c

    net = load_model(layers_of(lead, seed, out, log, overrides) / "weights.pt")
    enc = Encoder.mozafari2019(time_steps=net.config.time_steps)
    times, labels = encoded_mnist(enc, True, limit=60000)
    x = net.conv3_input(torch.cat([times[:n_fit], times[50000:]])).flatten(1)
    y = torch.cat([labels[:n_fit], labels[50000:]])
    c, scores = select_svm_c(x[:n_fit], y[:n_fit])
    clf = LinearSVM(c).fit(x[:n_fit], y[:n_fit])
    acc = 100 * float((clf.predict(x[n_fit:]) == y[n_fit:]).double().mean())
    row = {"lead": lead, "seed": seed, "density": float(x.float().mean()), "svm_c": c,
           "validation_accuracy": acc}
    log(f"[proxy {lead} s{seed}] conv3-input density {row['density']:.3f}, C = {c:g}: "
        f"validation {acc:.2f}% ({len(y) - n_fit} held-out training digits)")
    return row


def summary(runs) -> list:
    """One row per run: the mean of the last 10 epochs' validation and test accuracy, and the
    test accuracy of the epoch validation chooses. ``runs``: ``(lead, seed, history, config)``
    as ``_runs`` yields (histories cut at ``--at``)."""
    rows = []
    for lead, seed, hist, _ in runs:
        val = [100 * h["validation"]["correct"] for h in hist]
        test = [100 * h["test"]["correct"] for h in hist]
        tail = slice(-LAST, None)
        chosen = mozafari_headline({"history": hist}, at=len(hist))  # the protocol's choice on validation
        rows.append({"lead": lead, "seed": seed, "epochs": len(hist),
                     f"val mean last {LAST}": statistics.mean(val[tail]),
                     f"test mean last {LAST}": statistics.mean(test[tail]),
                     "val-chosen epoch": chosen["epoch"], "test at val-chosen": chosen["test_accuracy"],
                     "train last": 100 * hist[-1]["train"]["correct"],
                     "s/epoch": statistics.median(h["seconds"] for h in hist)})
    return rows


def paired(runs) -> tuple[list, list]:
    """The screen's verdict: each lead against ``base`` of the same seed (and the same ``--set``
    fields) at the same epoch, so that a run stopped early is compared fairly:
    difference = mean validation of the lead's last 10 epochs - the same for base's first as many
    epochs. Returns one row per run that has such a base, and one row per lead with the mean
    difference over its seeds. ``runs``: ``(lead, seed, history, config)`` as ``_runs`` yields."""
    val = {(lead, seed): [100 * h["validation"]["correct"] for h in hist] for lead, seed, hist, _ in runs}
    rows = []
    for (lead, seed), v in sorted(val.items()):
        name, _, fields = lead.partition("-")
        base = val.get(("base" + (f"-{fields}" if fields else ""), seed))
        if name == "base" or base is None or len(base) < len(v):
            continue
        n = len(v)
        lead_score, base_score = statistics.mean(v[-LAST:]), statistics.mean(base[max(0, n - LAST):n])
        rows.append({"lead": lead, "seed": seed, "epochs": n, f"val mean last {LAST}": lead_score,
                     "base, same seed and epoch": base_score, "difference": lead_score - base_score})
    by_lead = []
    for lead in dict.fromkeys(r["lead"] for r in rows):
        mine = [r for r in rows if r["lead"] == lead]
        by_lead.append({"lead": lead, "seeds": [r["seed"] for r in mine], "epochs": [r["epochs"] for r in mine],
                        "differences": [r["difference"] for r in mine],
                        "mean difference": statistics.mean(r["difference"] for r in mine)})
    return rows, by_lead


def _runs(out: Path, at=None, also=()):
    """``(lead, seed, history up to epoch at, config)`` of every R-STDP run in ``out`` and ``also``."""
    runs = [(p.parent.name.rsplit("-s", 1), p) for p in sorted(out.glob("*-s*/checkpoint.pt"))
            if not p.parent.name.startswith("layers-")]
    runs += [((lead, seed), Path(folder) / "checkpoint.pt") for lead, seed, folder in also]
    for (lead, seed), path in runs:
        ck = torch.load(path, weights_only=False)
        hist = ck["state"]["history"][:at]
        if hist:
            yield lead, int(seed), hist, ck["config"]


def export(out: Path, dest: Path, at=None, also=()) -> Path:
    """Every run's per-epoch scores (percent) and what its lead changes, with the summary rows
    and the proxy scores (``--proxy``), in ``dest/leads.json``."""
    runs = []
    defaults = dataclasses.asdict(mz.Mozafari2019Config())
    found = list(_runs(out, at, also))
    for lead, seed, hist, config in found:
        layers, rstdp = LEADS.get(lead.split("-", 1)[0], ({}, {}))
        changes = {**layers, **rstdp}
        # fields set for every lead with --set, beyond what the lead itself changes (JSON text
        # compares a saved list with a default tuple)
        others = {k: v for k, v in config.items() if k in defaults and k not in changes
                  and k not in ("epochs", "name") and json.dumps(v) != json.dumps(defaults[k])}
        runs.append({"lead": lead, "seed": seed, "changes": changes, "overrides": others,
                     "config": {k: v for k, v in config.items() if k in ("train_samples", "validation_samples",
                                                                         "test_samples", "epochs", "radius")},
                     **{part: [round(100 * h[part]["correct"], 2) for h in hist]
                        for part in ("train", "validation", "test")},
                     "seconds": [round(h["seconds"], 1) for h in hist]})
    path = dest / "leads.json"
    proxy_file = out / "proxy.json"
    proxies = json.loads(proxy_file.read_text()) if proxy_file.is_file() else []
    pairs, by_lead = paired(found)
    blob = json.dumps({"scored_by": f"mean validation accuracy of the last {LAST} epochs",
                       "summary": summary(found), "paired": pairs, "by_lead": by_lead,
                       "runs": runs, "proxy": proxies}, indent=1).encode()
    atomic_write(path, lambda f: f.write(blob), checked=False)
    return path


def _print_table(rows: list) -> None:
    """``rows`` as a markdown table; differences with their sign, lists joined."""
    def show(key, v):
        if isinstance(v, list):
            return ", ".join(str(show(key, x)) for x in v)
        return f"{v:+.2f}" if isinstance(v, float) and "difference" in key else v
    print(markdown_table([{k: show(k, v) for k, v in r.items()} for r in rows]) + "\n")


def main(argv=None):
    with recorded_command("python", "benchmarks/mozafari_leads.py", argv=argv):  # named in the runs' results.json
        return _main(argv)


def _main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--leads", default="base", help=f"comma-separated, of: {', '.join(LEADS)}")
    p.add_argument("--seeds", default="1", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=200, help="R-STDP epochs per lead (default 200)")
    p.add_argument("--out", default="runs/leads")
    p.add_argument("--summary", action="store_true", help="print the table of what is there and exit")
    p.add_argument("--at", type=int, default=None, help="with --summary: only the first AT epochs of each run")
    p.add_argument("--also", action="append", default=[], metavar="LEAD:SEED:FOLDER",
                   help="with --summary: a run kept in another folder (e.g. the full published run)")
    p.add_argument("--export", metavar="DIR", help="write every run's per-epoch scores to DIR/leads.json and exit")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a config field of every lead (JSON value), e.g. --set test_samples=1000")
    p.add_argument("--proxy", action="store_true",
                   help="instead of R-STDP: a linear SVM on conv3's input for each lead's conv1/conv2")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        also = [(a, int(b), c) for a, b, c in (x.split(":", 2) for x in args.also)]
    except ValueError:
        p.error(f"--also: expected LEAD:SEED:FOLDER, got {args.also}")
    if args.set and (args.export or args.summary):
        p.error("--set: changes the runs to train (or --proxy); --summary and --export read the runs that are there")
    if args.export:
        print(f"wrote {export(out, Path(args.export), args.at, also)}")
        return 0
    try:
        overrides = set_overrides(mz.Mozafari2019Config, args.set)
        mz.Mozafari2019Config(**overrides)  # bad values fail here, in one line
    except (ValueError, TypeError) as e:
        p.error(str(e))
    if args.summary:
        found = list(_runs(out, args.at, also))
        if not found:
            print(f"no runs in {out}")
            return 0
        rows = summary(found)
        pairs, by_lead = paired(found)
        for table in (rows, pairs, by_lead):
            if table:
                _print_table(table)
        (out / f"summary{'' if args.at is None else f'-at{args.at}'}.json").write_text(json.dumps(rows, indent=1))
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
    if args.proxy:  # rows of earlier calls are kept, one per lead and seed
        path = out / "proxy.json"
        rows = {(r["lead"], r["seed"]): r for r in (json.loads(path.read_text()) if path.is_file() else [])}
        for seed in seeds:
            for lead in leads:
                rows[lead, seed] = proxy(lead, seed, out, log=lambda m: print(m, flush=True), overrides=overrides)
                blob = json.dumps(list(rows.values()), indent=1).encode()
                atomic_write(path, lambda f, blob=blob: f.write(blob), checked=False)
        return 0
    for seed in seeds:
        for lead in leads:
            t0 = time.perf_counter()
            res = run_lead(lead, seed, args.epochs, out, log=lambda m: print(m, flush=True), overrides=overrides)
            print(f"[{lead} s{seed}] done in {time.perf_counter() - t0:.0f} s: validation "
                  f"{res['validation_accuracy']:.2f}%, test {res['test_accuracy']:.2f}% at epoch "
                  f"{res['chosen_epoch']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

