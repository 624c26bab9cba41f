"""Output folders of reproduction runs: checkpoints, ``results.json``, curves and weights.

A run folder holds ``checkpoint.pt`` (written after every epoch of every layer),
``results.json``, ``curves.png`` and ``weights.pt`` (the trained network with its config, see
:func:`snnlab.io.save_model`). Every file is written atomically and, but the figure, with a
SHA-256 sidecar verified on load (:mod:`snnlab.integrity`); ``results.json.sha256`` also
names the checkpoint the results were computed from, which tells a finished run from an
interrupted one. A :class:`Run` locks its folder, so two runs never write into one.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import weakref
from pathlib import Path

import torch

from . import __version__
from .integrity import FolderLock, IntegrityError, atomic_write, recorded, remove_leftovers, save_torch, sha256_file, sidecar, verify

__all__ = ["Run", "session_info", "git_state", "command_line", "recorded_command", "check_writable", "check_epochs_extension",
           "config_mismatch", "read_checkpoint", "PhaseTimer", "write_results", "interrupted_run", "check_fresh_start",
           "discard_checkpoint"]

CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"


def git_state(repo=None) -> tuple:
    """``(commit, clean)`` of the git checkout holding ``repo``: the short hash of ``HEAD`` and
    whether the tracked files equal it.

    Args:
        repo: a folder inside the checkout (default: this package's source folder).

    Returns:
        ``("unknown", None)`` outside a checkout or without git; ``clean`` is ``None`` when
        git cannot compare the files.

    Example:
        >>> commit, clean = git_state()
        >>> isinstance(commit, str) and clean in (True, False, None)
        True
    """
    repo = Path(__file__).resolve().parent if repo is None else repo

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown", None
        diff = git("diff", "--quiet", "HEAD").returncode  # 0 same, 1 differs, else an error
        return head.stdout.strip(), {0: True, 1: False}.get(diff)
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


#: the command that started the run as the user typed it (see :func:`recorded_command`); unset,
#: :func:`session_info` rebuilds it from ``sys.argv``
command_line: contextvars.ContextVar = contextvars.ContextVar("command_line", default=None)


@contextlib.contextmanager
def recorded_command(*words, argv=None):
    """Within the block, runs record the command ``words`` followed by ``argv`` (default:
    ``sys.argv[1:]``), as the user typed it also when an entry point's ``main(argv)`` is called
    from Python.

    Args:
        words: the program, e.g. ``"snnlab"``; argv: its arguments.

    Example:
        >>> with recorded_command("snnlab", argv=["reproduce", "mozafari2019", "--quick"]):
        ...     session_info()["command"]
        'snnlab reproduce mozafari2019 --quick'
    """
    args = sys.argv[1:] if argv is None else argv
    token = command_line.set(shlex.join([*words, *map(str, args)]))
    try:
        yield
    finally:
        command_line.reset(token)


def session_info(repo=None) -> dict:
    """This process as one session of a run: UTC start time, the command line, and the commit
    of the code with whether its tracked files were clean (:func:`git_state`).

    Args:
        repo: a folder inside the checkout (default: this package's source folder).

    Example:
        >>> sorted(session_info())
        ['clean_tree', 'command', 'commit', 'started']
    """
    commit, clean = git_state(repo)
    command = command_line.get()
    if command is None:
        first = sys.argv[0] if sys.argv and sys.argv[0] else "-"
        # a console script by its name, a Python file or -c as run by python
        head = ["python", first] if first.endswith(".py") or first.startswith("-") else [os.path.basename(first)]
        command = shlex.join([*head, *sys.argv[1:]])
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
            "commit": commit, "clean_tree": clean}


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
    """``torch.load`` of a checkpoint, ``None`` if there is none; a file that does not match its
    SHA-256 sidecar raises :class:`~snnlab.integrity.IntegrityError`, an unreadable one
    ``ValueError`` (a run must never restart silently over a checkpoint it cannot read).

    Example:
        >>> import tempfile, os
        >>> read_checkpoint(os.path.join(tempfile.mkdtemp(), "checkpoint.pt")) is None
        True
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        verify(path)
    except IntegrityError as err:
        raise IntegrityError(f"resume: checkpoint {err}") from None
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


def write_results(out, results: dict) -> Path:
    """Write ``out/results.json`` atomically; its sidecar lists its SHA-256 and the checkpoint's.

    Args:
        out: the run folder.
        results: JSON-serialisable dict (tensors, paths and tuples are converted).

    Returns:
        The path written.

    Shape:
        - tensors in ``results`` become nested lists.

    Example:
        >>> import tempfile
        >>> write_results(tempfile.mkdtemp(), {"accuracy": torch.tensor(0.5)}).read_text()
        '{\\n  "accuracy": 0.5\\n}'
    """
    out = Path(out)
    ckpt = out / CHECKPOINT
    also = {CHECKPOINT: sha256_file(ckpt)} if ckpt.is_file() else {}
    text = json.dumps(results, indent=2, default=_jsonable).encode()
    atomic_write(out / RESULTS, lambda f: f.write(text), also)
    return out / RESULTS


def interrupted_run(out) -> str | None:
    """Why ``out`` holds an interrupted run, or ``None``: a checkpoint that no ``results.json``
    was computed from (checked by hash; for folders from before sidecars, by modification time).

    Args:
        out: a run folder.

    Shape:
        - no tensors.

    Example:
        >>> import tempfile
        >>> interrupted_run(tempfile.mkdtemp()) is None
        True
    """
    out = Path(out)
    ckpt, results = out / CHECKPOINT, out / RESULTS
    if not ckpt.is_file():
        return None
    if not results.is_file():
        return "a checkpoint and no results.json"
    try:
        source = recorded(results, CHECKPOINT)
    except IntegrityError:
        source = set()
    if source is None:
        finished = results.stat().st_mtime_ns >= ckpt.stat().st_mtime_ns
    else:
        finished = sha256_file(ckpt) in source
    return None if finished else "its checkpoint is not the one its results.json was computed from"


def discard_checkpoint(out) -> None:
    """Delete ``out/checkpoint.pt`` and its sidecar (the run then starts from scratch).

    Args:
        out: a run folder.

    Shape:
        - no tensors.

    Example:
        >>> import tempfile
        >>> discard_checkpoint(tempfile.mkdtemp())  # nothing there: nothing to do
    """
    ckpt = Path(out) / CHECKPOINT
    ckpt.unlink(missing_ok=True)
    sidecar(ckpt).unlink(missing_ok=True)


def check_fresh_start(out, overwrite: bool = False) -> bool:
    """Before a run starts from scratch in ``out``: refuse to lose an interrupted run.

    Args:
        out: the run folder.
        overwrite: discard an interrupted run's checkpoint instead of refusing.

    Returns:
        Whether an interrupted run was discarded.

    Raises:
        ValueError: ``out`` holds an interrupted run and ``overwrite`` is false.

    Shape:
        - no tensors.

    Example:
        >>> import tempfile
        >>> check_fresh_start(tempfile.mkdtemp())
        False
    """
    why = interrupted_run(out)
    if why is None:
        return False
    if not overwrite:
        raise ValueError(f"out: {out} holds an interrupted run ({why}); continue it with --resume "
                         f"(resume=True), or start over with --overwrite (or delete its {CHECKPOINT})")
    discard_checkpoint(out)
    return True


class Run:
    """One reproduction's output folder, locked while the object lives (:meth:`close`
    releases it; so does the end of the process, even by ``kill -9``).

    Args:
        out: folder (created if missing).
        resume: continue from ``checkpoint.pt`` if present. Otherwise the checkpoint of a
            finished run is removed so the run starts afresh, and an interrupted run is
            refused (``ValueError``) unless ``overwrite``.
        overwrite: start afresh even over an interrupted run (its checkpoint is deleted).

    A checkpoint is checked against the config class of the run that continues it: besides
    its ``RESUME_FREE`` and ``LAYER_FIELDS``, the class may define ``upgrade_checkpoint``
    (checkpoint -> checkpoint) to read those an earlier version of its model wrote, and an
    ``int`` ``epochs`` (one training stage) may grow past the epochs done.

    Raises:
        snnlab.integrity.FolderBusyError: another process is running in ``out``.

    Example:
        >>> import tempfile
        >>> run = Run(tempfile.mkdtemp(), resume=False)
        >>> run.load_checkpoint() is None
        True
    """

    def __init__(self, out, resume: bool = False, overwrite: bool = False):
        self.out = check_writable(out)
        self.ckpt = self.out / CHECKPOINT
        self.resume = resume
        self._lock = FolderLock(self.out).acquire()
        weakref.finalize(self, self._lock.release)
        try:
            #: this process's :func:`session_info`, added to the run's ``sessions`` by :meth:`restore`
            self.started = session_info()
            remove_leftovers(self.out)  # of a killed run: no writer is active while we hold the lock
            if not resume:
                check_fresh_start(self.out, overwrite)
                discard_checkpoint(self.out)  # a finished run's: this one replaces it
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the folder's lock."""
        self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def load_checkpoint(self):
        return read_checkpoint(self.ckpt)

    def _load_for(self, config):
        # the checkpoint in its current form: the config class's upgrade_checkpoint (if any)
        # converts one written by an earlier version of its model
        ck = self.load_checkpoint()
        upgrade = getattr(type(config), "upgrade_checkpoint", None)
        if ck is not None and upgrade is not None:
            ck = upgrade(ck)
        if ck is not None and not (isinstance(ck, dict) and {"config", "seed", "model", "state"} <= set(ck)):
            raise ValueError(f"resume: {self.ckpt} is not a checkpoint of this model; use another --out or delete it")
        return ck

    def check_resume(self, config, seed: int) -> None:
        """Raise ``ValueError`` now if the checkpoint (if any) cannot continue with ``config`` and ``seed``."""
        ck = self._load_for(config)
        if ck is not None:
            self._check_compatible(ck, config, seed)

    def _check_compatible(self, ck, config, seed):
        diff = config_mismatch(ck["config"], ck["seed"], config, seed, ck["state"]["done"])
        if diff:
            raise ValueError(f"resume: the checkpoint in {self.out} was made with another config or seed "
                             f"(differs in: {', '.join(diff)}); use another --out or delete it")
        old = {**dataclasses.asdict(type(config)()), **ck["config"]}
        if isinstance(config.epochs, int):  # a protocol with one training stage
            done = ck["state"]["done"][0]
            if config.epochs < done:
                raise ValueError(f"resume: the checkpoint in {self.out} has {done} epochs done; "
                                 f"epochs must be >= {done}, got {config.epochs}")
        else:
            check_epochs_extension(old["epochs"], config.epochs, ck["state"]["done"])

    def save_checkpoint(self, state: dict) -> None:
        save_torch(state, self.ckpt)

    def restore(self, net, config, seed: int, fresh: dict, log=print) -> dict:
        """Load ``net``'s weights and the protocol state from the checkpoint, if any.

        Returns the saved state, or ``fresh`` when there is no checkpoint; a checkpoint of
        another config or seed raises ``ValueError`` rather than mixing two runs. The one
        change allowed is ``epochs`` of layers not yet followed by a trained layer (see
        :func:`check_epochs_extension`), so a run can be extended, e.g. more R-STDP epochs.
        """
        ck = self._load_for(config)
        if ck is None:
            if self.resume:
                log(f"resume: no checkpoint in {self.out}; starting from scratch")
            state = fresh
        else:
            self._check_compatible(ck, config, seed)
            net.load_state_dict(ck["model"])
            log(f"resuming from {self.ckpt}: epochs done per layer {ck['state']['done']}")
            state = ck["state"]
        # every process that worked on the run, in order (a checkpoint written before sessions were
        # recorded lists only those since)
        state.setdefault("sessions", []).append(self.started)
        return state

    def saver(self, net, config, seed: int, state: dict, timer: "PhaseTimer"):
        """A function that checkpoints ``net`` and ``state`` (with the phase times)."""
        def save():
            state["seconds"] = timer.seconds
            self.save_checkpoint({"config": dataclasses.asdict(config), "seed": seed,
                                  "model": net.state_dict(), "state": state})
        return save

    def header(self, name: str, config, seed: int, device, state: dict | None = None) -> dict:
        """The common part of ``results.json``: what ran, where, and from which code.

        ``command``, ``commit`` and ``clean_tree`` are this process's (the one writing the
        results); ``sessions`` lists every process that worked on the run, this one last.

        Args:
            name: the model's name; config, seed: the run's; device: where it ran.
            state: the run's state from :meth:`restore` (for its ``sessions``).

        Example:
            >>> import tempfile
            >>> from snnlab.models.mozafari2019 import Mozafari2019Config
            >>> with Run(tempfile.mkdtemp()) as run:
            ...     h = run.header("mozafari2019", Mozafari2019Config(), 1, "cpu")
            >>> h["sessions"] == [run.started] and h["command"] == run.started["command"]
            True
        """
        return {
            "model": name,
            **{k: self.started[k] for k in ("command", "commit", "clean_tree")},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sessions": list((state or {}).get("sessions", [self.started])),
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
        return write_results(self.out, results)

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
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), checked=False)
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
