"""Output folders of reproduction runs: checkpoints, ``results.json``, curves and weights.

A run folder holds ``checkpoint.pt`` (written atomically after every epoch of every
layer), ``results.json``, ``curves.png`` and ``weights.pt`` (the trained network with its
config, see :func:`snnlab.io.save_model`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from . import __version__
from .training import atomic_save

__all__ = ["Run", "check_writable", "check_epochs_extension", "config_mismatch", "read_checkpoint", "PhaseTimer"]


def check_writable(out) -> Path:
    """Create ``out`` if needed and check it can be written; raise ``ValueError`` otherwise."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"out: cannot write to {out} ({err.strerror or err})") from None
    return out


def check_epochs_extension(old, new, done) -> None:
    """Check that a resumed run may use epochs ``new`` instead of the checkpoint's ``old``.

    Continuing then gives exactly the weights of an uninterrupted run with ``new``: layers
    whose successors have started training keep their epochs, the others need at least the
    epochs already done.

    Args:
        old, new: epochs per layer; ``done``: epochs finished per layer.

    Raises:
        ValueError: naming the layer whose epochs cannot change.

    Example:
        >>> check_epochs_extension((2, 4, 20), (2, 4, 680), [2, 4, 20])  # more R-STDP epochs
        >>> check_epochs_extension((2, 4, 20), (2, 8, 680), [2, 4, 20])
        Traceback (most recent call last):
        ...
        ValueError: epochs: layer 2 already trained for 4 epochs before layer 3 started; resume with 4 epochs there, got 8
    """
    old, new = tuple(old), tuple(new)
    if len(old) != len(new):
        raise ValueError(f"epochs: expected {len(old)} values as in the checkpoint, got {len(new)}")
    started = [i for i, d in enumerate(done) if d > 0]
    last = started[-1] if started else 0
    for i, (o, n, d) in enumerate(zip(old, new, done)):
        if i < last and o != n:
            raise ValueError(f"epochs: layer {i + 1} already trained for {o} epochs before layer {last + 1} "
                             f"started; resume with {o} epochs there, got {n}")
        if n < d:
            raise ValueError(f"epochs: layer {i + 1} has {d} epochs done; resume with at least {d}, got {n}")


class PhaseTimer:
    """Accumulates wall time per named phase (kept across resumes in the checkpoint)."""

    def __init__(self, seconds: dict | None = None):
        self.seconds = dict(seconds or {})

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.t0

        return _Ctx()


def read_checkpoint(path):
    """``torch.load`` of a checkpoint, ``None`` if there is none; an unreadable file raises
    ``ValueError`` (a run must never restart silently over a checkpoint it cannot read)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=False)
    except Exception as err:
        raise ValueError(f"resume: checkpoint {path} is unreadable ({err}); delete it to start over") from None


def config_mismatch(saved: dict, saved_seed, config, seed, done=None) -> list:
    """Names of the fields (and ``"seed"``) in which a checkpoint's run differs from ``config``
    and ``seed``, ``epochs`` and the config class's ``RESUME_FREE`` fields aside; a field added
    to the config class since the checkpoint was written counts with its default. Fields that
    only one layer's training reads (the class's ``LAYER_FIELDS``, ``{layer: names}``) may
    differ while that layer has not started (``done``: epochs finished per layer), so later
    stages can branch from one checkpoint of the earlier ones.

    Example:
        >>> from snnlab.models.mozafari2019 import Mozafari2019Config
        >>> old = dataclasses.asdict(Mozafari2019Config(epochs=(2, 4, 20)))
        >>> config_mismatch(old, 1, Mozafari2019Config(epochs=(2, 4, 680), test_samples=100), 2)
        ['test_samples', 'seed']
    """
    new = dataclasses.asdict(config)
    old = {**dataclasses.asdict(type(config)()), **saved}
    free = {"epochs", *getattr(type(config), "RESUME_FREE", ())}
    for layer, names in getattr(type(config), "LAYER_FIELDS", {}).items():
        if done is not None and done[layer] == 0:
            free.update(names)
    diff = sorted(k for k in old.keys() | new.keys() if k not in free and old.get(k) != new.get(k))
    return diff + (["seed"] if saved_seed != seed else [])


class Run:
    """One reproduction's output folder.

    Args:
        out: folder (created if missing).
        resume: continue from ``checkpoint.pt`` if present; otherwise a stale checkpoint
            is removed so the run starts afresh.

    Example:
        >>> import tempfile
        >>> run = Run(tempfile.mkdtemp(), resume=False)
        >>> run.load_checkpoint() is None
        True
    """

    def __init__(self, out, resume: bool = False):
        self.out = check_writable(out)
        self.ckpt = self.out / "checkpoint.pt"
        if not resume and self.ckpt.exists():
            self.ckpt.unlink()

    def load_checkpoint(self):
        return read_checkpoint(self.ckpt)

    def check_resume(self, config, seed: int) -> None:
        """Raise ``ValueError`` now if the checkpoint (if any) cannot continue with ``config`` and ``seed``.

        A file of another format (a model that keeps its own checkpoints) is left to that model.
        """
        ck = self.load_checkpoint()
        if isinstance(ck, dict) and "state" in ck:
            self._check_compatible(ck, config, seed)

    def _check_compatible(self, ck, config, seed):
        diff = config_mismatch(ck["config"], ck["seed"], config, seed, ck["state"]["done"])
        if diff:
            raise ValueError(f"resume: the checkpoint in {self.out} was made with another config or seed "
                             f"(differs in: {', '.join(diff)}); use another --out or delete it")
        old = {**dataclasses.asdict(type(config)()), **ck["config"]}
        check_epochs_extension(old["epochs"], config.epochs, ck["state"]["done"])

    def save_checkpoint(self, state: dict) -> None:
        atomic_save(state, self.ckpt)

    def restore(self, net, config, seed: int, fresh: dict, log=print) -> dict:
        """Load ``net``'s weights and the protocol state from the checkpoint, if any.

        Returns the saved state, or ``fresh`` when there is no checkpoint; a checkpoint of
        another config or seed raises ``ValueError`` rather than mixing two runs. The one
        change allowed is ``epochs`` of layers not yet followed by a trained layer (see
        :func:`check_epochs_extension`), so a run can be extended, e.g. more R-STDP epochs.
        """
        ck = self.load_checkpoint()
        if ck is None:
            return fresh
        self._check_compatible(ck, config, seed)
        net.load_state_dict(ck["model"])
        log(f"resuming from {self.ckpt}: epochs done per layer {ck['state']['done']}")
        return ck["state"]

    def saver(self, net, config, seed: int, state: dict, timer: "PhaseTimer"):
        """A function that checkpoints ``net`` and ``state`` (with the phase times)."""
        def save():
            state["seconds"] = timer.seconds
            self.save_checkpoint({"config": dataclasses.asdict(config), "seed": seed,
                                  "model": net.state_dict(), "state": state})
        return save

    def header(self, name: str, config, seed: int, device) -> dict:
        return {
            "model": name,
            "config": dataclasses.asdict(config),
            "seed": seed,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "snnlab": __version__,
            "python": platform.python_version(),
        }

    def write_results(self, results: dict) -> Path:
        path = self.out / "results.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=2, default=_jsonable))
        os.replace(tmp, path)
        return path

    def plot_curves(self, epochs, series: dict, ylabel: str, title: str, reference: dict | None = None,
                    mark: int | None = None) -> Path:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, values in series.items():
            ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, label=label)
        if mark is not None:
            ax.axvline(mark, ls=":", lw=1, color="black")
        for label, value in (reference or {}).items():
            ax.axhline(value, ls="--", lw=1, color="gray")
            ax.annotate(label, (epochs[0] if len(epochs) else 0, value), fontsize=8, va="bottom")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = self.out / "curves.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _jsonable(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
