"""Command line: ``snnlab reproduce MODEL`` (also ``python -m snnlab``).

Examples::

    snnlab reproduce kheradpisheh2018 --quick
    snnlab reproduce mozafari2019 --device cuda --out runs/mz-full
    snnlab reproduce mozafari2019 --quick --epochs 1,1,2 --train-samples 2000,4000,10000
    snnlab reproduce mozafari2019 --out runs/mz-full --resume

Bad arguments fail at once with a one-line message and exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from . import models

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(2, f"snnlab: error: {message}\n")


def _ints(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnlab", description="Spiking-network reproductions on MNIST.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("reproduce", help="run a published protocol and write a results folder")
    r.add_argument("model", help=f"one of: {', '.join(sorted(models.MODELS))}")
    r.add_argument("--quick", action="store_true", help="CPU-sized preset (fewer samples and epochs)")
    r.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    r.add_argument("--seed", type=int, default=1, help="seed of the initial weights (default 1)")
    r.add_argument("--out", default=None, help="output folder (default runs/MODEL[-quick])")
    r.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out (--epochs may grow for layers not yet followed by a trained one)")
    r.add_argument("--epochs", type=_ints, help="epochs per layer, comma-separated (e.g. 2,4,680)")
    r.add_argument("--train-samples", type=_ints, help="training samples per layer, comma-separated")
    r.add_argument("--test-samples", type=int, help="test samples (at most 10000)")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field (JSON value), e.g. --set rstdp_mode='\"batched\"'")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _config(mod, args):
    cfg_cls = next(getattr(mod, n) for n in dir(mod) if n.endswith("Config"))
    over = {}
    if args.epochs is not None:
        over["epochs"] = args.epochs
    if args.train_samples is not None:
        over["train_samples"] = args.train_samples
    if args.test_samples is not None:
        over["test_samples"] = args.test_samples
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set: expected FIELD=VALUE with FIELD one of {', '.join(sorted(fields))}, got {item!r}")
        try:
            over[key] = json.loads(value)
        except json.JSONDecodeError:
            over[key] = value
    for key in ("epochs", "train_samples"):
        if key in over and key in fields:
            default = getattr(cfg_cls(), key)
            if isinstance(default, tuple) and len(tuple(over[key])) != len(default):
                raise ValueError(f"--{key.replace('_', '-')}: expected {len(default)} comma-separated values "
                                 f"(one per layer), got {','.join(map(str, over[key]))}")
    return cfg_cls.quick(**over) if args.quick else cfg_cls(**over)


def main(argv=None) -> int:
    """Entry point of the ``snnlab`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        mod = models.get(args.model)
        cfg = _config(mod, args)
        from . import default_device

        device = default_device(args.device)
        from .runs import check_writable

        out = args.out or f"runs/{args.model}{'-quick' if args.quick else ''}"
        check_writable(out)
        if args.resume:  # refuse an incompatible checkpoint before any work
            if hasattr(mod, "check_resume"):  # a model with its own checkpoint format
                mod.check_resume(out, cfg, args.seed)
            else:
                from .runs import Run

                Run(out, resume=True).check_resume(cfg, args.seed)
    except (ValueError, TypeError) as err:
        parser.exit(2, f"snnlab: error: {err}\n")
    t0 = time.perf_counter()
    print(f"snnlab reproduce {args.model} ({cfg.name}) on {device}, seed {args.seed} -> {out}", flush=True)
    results = mod.reproduce(cfg, out, device=device, seed=args.seed, resume=args.resume,
                            progress=not args.no_progress)
    acc = results.get("test_accuracy", results.get("best_test_accuracy"))
    paper = results.get("paper_accuracy")
    shown = "n/a" if acc is None else f"{acc:.2f}%"
    how = f" (epoch {results['chosen_epoch']}, chosen by {results['chosen_by']})" if results.get("chosen_epoch") else ""
    print(f"done in {time.perf_counter() - t0:.0f} s: test accuracy {shown}{how} "
          f"(paper {paper}%), results in {out}/results.json", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
