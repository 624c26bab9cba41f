"""Command line: ``snnlab reproduce MODEL``, ``snnlab evaluate NAME``, ``snnlab classify NAME
IMAGE...`` (also ``python -m snnlab``).

Examples::

    snnlab reproduce kheradpisheh2018 --quick
    snnlab reproduce mozafari2019 --device cuda --out runs/mz-full
    snnlab reproduce mozafari2019 --quick --epochs 1,1,2 --train-samples 2000,4000,10000
    snnlab reproduce mozafari2019 --out runs/mz-full --resume
    snnlab reproduce kheradpisheh2018 --quick --data folder:my_images --set image_size=[64,64]
    snnlab evaluate kheradpisheh2018_quick
    snnlab classify mozafari2019_quick digit.png photo.jpg

Bad arguments, missing or corrupted data and files, and a folder in use fail at once with a
one-line message and exit code 2, before any work; Ctrl-C ends with one line and exit code
130, and the run continues with ``--resume``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from . import models

__all__ = ["main", "build_parser"]

#: largest seed + 1: the range that torch's and numpy's generators both take (and in which
#: the per-epoch seeds derived from it stay within 64 bits)
SEED_LIMIT = 2 ** 32

#: command-line option -> config field, where a model names it differently
_ALIASES = {"train_samples": ("train_samples", "n_train"), "test_samples": ("test_samples", "n_test")}

#: models whose protocol takes another dataset (``--data``)
_DATA = "the dataset: mnist (default) or folder:PATH, a folder PATH/<class>/<image> (kheradpisheh2018 only)"


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


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected an integer in 0..{SEED_LIMIT - 1}, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnlab", description="Spiking-network reproductions on MNIST.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("reproduce", help="run a published protocol and write a results folder")
    r.add_argument("model", help=f"one of: {', '.join(sorted(models.MODELS))}")
    r.add_argument("--quick", action="store_true", help="CPU-sized preset (fewer samples and epochs)")
    r.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    r.add_argument("--seed", type=_seed, default=1, help=f"seed of the initial weights, 0..{SEED_LIMIT - 1} (default 1)")
    r.add_argument("--out", default=None, help="output folder (default runs/MODEL[-quick])")
    again = r.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint in --out (--epochs may grow for layers not yet followed by a trained one)")
    again.add_argument("--overwrite", action="store_true",
                       help="start from scratch even where --out holds an interrupted run (its checkpoint is deleted)")
    r.add_argument("--epochs", type=_ints, help="epochs per layer, comma-separated (e.g. 2,4,680)")
    r.add_argument("--train-samples", type=_ints, help="training samples per layer, comma-separated")
    r.add_argument("--test-samples", type=int, help="test samples (at most 10000)")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field (JSON value), e.g. --set rstdp_mode='\"batched\"'")
    r.add_argument("--data", help=_DATA)
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    e = sub.add_parser("evaluate", help="measure a trained network's accuracy on the MNIST test set again")
    e.add_argument("name", help="a trained network (see snnlab.pretrained.names())")
    e.add_argument("--test-samples", type=int, help="the first N test digits (default: all 10000)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    c = sub.add_parser("classify", help="the decision of a trained network on image files")
    c.add_argument("name", help="a trained network (see snnlab.pretrained.names())")
    c.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size, colour or polarity)")
    return p


def _per_layer(name: str, values: tuple, default):
    # a comma-separated option for a per-layer tuple field, or for a single int field
    option = f"--{name.replace('_', '-')}"
    if isinstance(default, tuple):
        if len(values) != len(default):
            raise ValueError(f"{option}: expected {len(default)} comma-separated values (one per layer), "
                             f"got {','.join(map(str, values))}")
        return values
    if len(values) != 1:
        raise ValueError(f"{option}: expected one value for this model, got {','.join(map(str, values))}")
    return values[0]


def _json_value(key: str, value: str, default):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if isinstance(default, str):  # a bare word for a text field: --set rstdp_mode=batched
            return value
        raise ValueError(f"--set {key}: {value!r} is not a JSON value (e.g. 3, 2.5, [5, 3, 5], null, true, "
                         'or "text" in double quotes)') from None


def _config(mod, args):
    cfg_cls = models.config_class(args.model)
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    defaults = cfg_cls()
    over = {}
    for option in ("epochs", "train_samples", "test_samples", "data"):
        given = getattr(args, option)
        if given is None:
            continue
        key = next((k for k in _ALIASES.get(option, (option,)) if k in fields), None)
        if key is None and option == "data":
            raise ValueError(f"--data: {args.model} learns from MNIST only (image folders serve kheradpisheh2018), "
                             f"got {given!r}")
        if key is None:
            raise ValueError(f"--{option.replace('_', '-')}: not a setting of {args.model}")
        over[key] = given if isinstance(given, (int, str)) else _per_layer(option, given, getattr(defaults, key))
    over.update(set_overrides(cfg_cls, args.set))
    return cfg_cls.quick(**over) if args.quick else cfg_cls(**over)


def set_overrides(cfg_cls, items) -> dict:
    """The config fields given as ``--set FIELD=VALUE`` items (VALUE in JSON; a bare word for a
    text field), checked against ``cfg_cls``'s fields (their values are checked by the config).

    Args:
        cfg_cls: a config dataclass (e.g. ``Mozafari2019Config``).
        items: ``"FIELD=VALUE"`` texts.

    Raises:
        ValueError: an item is not ``FIELD=VALUE`` with a field of ``cfg_cls``, or VALUE is not JSON.

    Example:
        >>> from snnlab.models.mozafari2019 import Mozafari2019Config
        >>> set_overrides(Mozafari2019Config, ["time_steps=30", "rstdp_mode=batched"])
        {'time_steps': 30, 'rstdp_mode': 'batched'}
    """
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    defaults = cfg_cls()
    over = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set: expected FIELD=VALUE with FIELD one of {', '.join(sorted(fields))}, got {item!r}")
        over[key] = _json_value(key, value, getattr(defaults, key))
    return over


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = str(err) or type(err).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _prepare(cfg, args, out: Path) -> None:
    # everything that can refuse the run, before any work
    from .data import ensure_mnist
    from .runs import CHECKPOINT, Run, check_fresh_start

    if args.resume:  # refuse a corrupted or incompatible checkpoint
        with Run(out, resume=True) as run:  # released even when it refuses (a traceback keeps run alive)
            run.check_resume(cfg, args.seed)
    elif check_fresh_start(out, args.overwrite):
        print(f"--overwrite: the interrupted run in {out} is discarded", flush=True)
    elif (out / CHECKPOINT).is_file():
        print(f"starting over: the finished run in {out} is replaced (--resume would continue it)", flush=True)
    if getattr(cfg, "data", "mnist") == "mnist":
        ensure_mnist()


def _check_folder(cfg) -> None:
    # every image of a --data folder read once, before the output folder is touched: a bad
    # file or layout stops the command with nothing written
    from .images import list_image_folder, read_image_folder

    data = getattr(cfg, "data", "mnist")
    if data != "mnist":
        read_image_folder(list_image_folder(data[len("folder:"):], "--data")[0], cfg.image_size, "--data")


def _evaluate(args, parser) -> int:
    from .pretrained import evaluate, pretrained

    try:  # bad data files raise DataIntegrityError, a ValueError
        if args.test_samples is not None and not 1 <= args.test_samples <= 10000:
            raise ValueError(f"--test-samples: expected an int in 1..10000, got {args.test_samples}")
        p = pretrained(args.name)
        r = evaluate(p, args.test_samples, progress=not args.no_progress)
    except (ValueError, TypeError, OSError) as err:
        parser.exit(2, f"snnlab: error: {_one_line(err)}\n")
    n = r["samples"]
    differs = n == 10000 and round(r["accuracy"], 2) != round(p.accuracy, 2)
    if n < 10000:
        verdict = f"the registered {p.accuracy:.2f}% is on all 10000"
    else:
        verdict = f"registered: {p.accuracy:.2f}%, " + ("DIFFERENT" if differs else "the same")
    print(f"{args.name}: test accuracy {r['accuracy']:.2f}% on the first {n} test digits ({verdict}), "
          f"{r['seconds']:.0f} s", flush=True)
    return 1 if differs else 0


def _classify(args, parser) -> int:
    import torch

    from .images import mnist_like, read_image
    from .pretrained import predict, pretrained

    try:  # every image read before any decision is printed
        digits = torch.stack([mnist_like(read_image(f, name="IMAGE"), name=f"IMAGE {f}") for f in args.images])
        p = pretrained(args.name)
        out = predict(p, digits)
    except (ValueError, TypeError, OSError) as err:
        parser.exit(2, f"snnlab: error: {_one_line(err)}\n")
    for i, f in enumerate(args.images):
        d = int(out["decision"][i])
        line = f"{f}: {d}" if d >= 0 else f"{f}: no decision (no conv3 neuron reached a positive potential)"
        if "feature" in out and d >= 0:
            line += f" (conv3 feature {int(out['feature'][i])}, potential {float(out['potential'][i]):.2f})"
        print(line, flush=True)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``snnlab`` command; returns the exit code (errors exit through
    ``SystemExit``: 2 for bad input, 130 for Ctrl-C). ``evaluate`` returns 1 when the whole
    test set gives another accuracy than the recorded one."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "reproduce":
        from .runs import recorded_command

        with recorded_command("snnlab", argv=argv):  # results.json names the command as typed
            return _reproduce(args, parser)
    try:
        return _evaluate(args, parser) if args.command == "evaluate" else _classify(args, parser)
    except KeyboardInterrupt:
        parser.exit(130, "snnlab: interrupted\n")


def _reproduce(args, parser) -> int:
    from . import default_device
    from .data import DataIntegrityError
    from .integrity import FolderLock, IntegrityError
    from .runs import check_writable

    out = Path(args.out or f"runs/{args.model}{'-quick' if args.quick else ''}")
    lock = FolderLock(out)
    try:
        try:
            mod = models.get(args.model)
            cfg = _config(mod, args)
            device = default_device(args.device)
            _check_folder(cfg)
            check_writable(out)
            lock.acquire()  # released on any exit; the OS drops it if the process is killed
            _prepare(cfg, args, out)
        except (ValueError, TypeError, OSError) as err:
            parser.exit(2, f"snnlab: error: {_one_line(err)}\n")
        t0 = time.perf_counter()
        name = getattr(cfg, "name", "quick" if args.quick else "full")
        print(f"snnlab reproduce {args.model} ({name}) on {device}, seed {args.seed} -> {out}", flush=True)
        try:
            results = mod.reproduce(cfg, out, device=device, seed=args.seed, resume=args.resume,
                                    progress=not args.no_progress)
        except (IntegrityError, DataIntegrityError, OSError) as err:  # faults met on the way
            parser.exit(2, f"snnlab: error: {_one_line(err)}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"snnlab: interrupted; continue with --resume (--out {out})\n")
    finally:
        lock.release()
    acc = results.get("test_accuracy", results.get("best_test_accuracy"))
    paper = results.get("paper_accuracy")
    shown = "n/a" if acc is None else f"{acc:.2f}%"
    how = f" (epoch {results['chosen_epoch']}, chosen by {results['chosen_by']})" if results.get("chosen_epoch") else ""
    print(f"done in {time.perf_counter() - t0:.0f} s: test accuracy {shown}{how} "
          f"(paper {paper}%), results in {out}/results.json", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
