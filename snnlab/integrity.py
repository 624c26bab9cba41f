"""Files a run writes: atomic writes, SHA-256 sidecars verified on load, and run-folder locks.

Every file is written to a temporary file in its folder and renamed over the old one, so a
crash never leaves a partial file. Beside it, ``<name>.sha256`` lists its SHA-256 in
``sha256sum`` format (``sha256sum -c`` checks it); a file whose hash is not listed there is
refused on load with one :class:`IntegrityError`. While a file is being replaced, its sidecar
lists both the old and the new hash, so a crash between the two renames leaves a file that
still verifies. A file without a sidecar was written before sidecars existed and is loaded
unchecked.

A run folder is locked with ``flock`` on ``<folder>/.lock``: the OS releases the lock when its
process dies, so even ``kill -9`` leaves no stale lock.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; run folders are then not locked
    fcntl = None

__all__ = ["IntegrityError", "FolderBusyError", "sha256_file", "sidecar", "recorded", "verify", "atomic_write",
           "save_torch", "load_torch", "FolderLock", "remove_leftovers"]

SUFFIX = ".sha256"


class IntegrityError(ValueError):
    """A file exists but does not match the SHA-256 recorded when it was written."""


class FolderBusyError(ValueError):
    """Another process holds the lock of a run folder."""


def sha256_file(path) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits: :math:`h = \\mathrm{SHA256}(bytes)`.

    Args:
        path: the file.

    Shape:
        - no tensors; returns a str of 64 hex digits.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x")
        >>> _ = open(p, "wb").write(b"abc")
        >>> sha256_file(p)[:16]
        'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar(path) -> Path:
    """The sidecar of ``path``: ``<path>.sha256``.

    Args:
        path: a file (it need not exist).

    Shape:
        - no tensors.

    Example:
        >>> sidecar("runs/a/weights.pt").name
        'weights.pt.sha256'
    """
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def _entries(path: Path) -> dict | None:
    # {file name: set of hashes} from path's sidecar; None when there is no sidecar
    side = sidecar(path)
    try:
        text = side.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise IntegrityError(f"{side} is unreadable ({err}); restore it, or delete it and {path.name}") from None
    out = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise IntegrityError(f"{side} is corrupted (not a SHA-256 list: {line[:80]!r}); "
                                 f"restore it, or delete it and {path.name}")
        out.setdefault(name, set()).add(digest)
    return out


def recorded(path, name: str | None = None) -> set | None:
    """The hashes that ``path``'s sidecar lists for ``name`` (default: ``path`` itself).

    ``None`` when there is no sidecar; a results file's sidecar also lists the checkpoint
    its results were computed from.

    Args:
        path: the file whose sidecar is read.
        name: a file name listed there.

    Shape:
        - no tensors; returns a set of hex str or ``None``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> recorded(p) is None
        True
        >>> _ = atomic_write(p, lambda f: f.write(b"hi"))
        >>> len(recorded(p)), recorded(p, "other.pt")
        (1, set())
    """
    entries = _entries(Path(path))
    if entries is None:
        return None
    return entries.get(Path(path).name if name is None else name, set())


def verify(path) -> str | None:
    """Check ``path`` against its sidecar: :math:`\\mathrm{SHA256}(file) \\in` recorded hashes.

    Args:
        path: an existing file.

    Returns:
        Its hash, or ``None`` when it has no sidecar (a file from before sidecars: unchecked).

    Raises:
        IntegrityError: the file's hash is not the one recorded when it was written.

    Shape:
        - no tensors.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> digest = atomic_write(p, lambda f: f.write(b"hi"))
        >>> verify(p) == digest
        True
        >>> _ = open(p, "ab").write(b"!")
        >>> verify(p)
        Traceback (most recent call last):
        ...
        snnlab.integrity.IntegrityError: ...x.txt is corrupted: ...
    """
    path = Path(path)
    want = recorded(path)
    if want is None:
        return None
    got = sha256_file(path)
    if got not in want:
        raise IntegrityError(
            f"{path} is corrupted: its SHA-256 {got[:16]}... is not the one recorded in {sidecar(path).name} "
            f"when it was written; nothing was changed. Restore it, or delete it and {sidecar(path).name}")
    return got


def _temporary(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return tmp


def _write_sidecar(path: Path, digests, also: dict) -> None:
    lines = [f"{d}  {path.name}\n" for d in dict.fromkeys(digests)]
    lines += [f"{d}  {name}\n" for name, d in also.items()]
    side = sidecar(path)
    tmp = _temporary(side)
    try:
        Path(tmp).write_text("".join(lines))
        os.replace(tmp, side)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path, write, also: dict | None = None, checked: bool = True) -> str:
    """Write a file atomically (temporary file, then rename) with its SHA-256 sidecar.

    ``write(f)`` fills a binary file object. The sidecar first lists the new hash and the
    old file's, then, once the new file is in place, the new one only: a crash at any point
    leaves a complete file (old or new) that verifies.

    Args:
        path: the file to (re)place; its folder is created.
        write: ``write(f)`` writes the content into binary file ``f``.
        also: ``{file name: hash}`` to list in the sidecar too (e.g. the checkpoint that
            results were computed from).
        checked: write the sidecar (``False``: atomic only, e.g. for figures).

    Returns:
        The new file's SHA-256.

    Shape:
        - no tensors.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> atomic_write(p, lambda f: f.write(b"abc"))[:8]
        'ba7816bf'
        >>> open(p + ".sha256").read().split()[1]
        'x.txt'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if not checked:
            os.replace(tmp, path)
            return sha256_file(path)
        digest = sha256_file(tmp)
        old = _current(path)
        _write_sidecar(path, [digest, *old], also or {})
        os.replace(tmp, path)
        if old:
            _write_sidecar(path, [digest], also or {})
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def _current(path: Path) -> list:
    # hashes under which the file now at path is accepted while it is being replaced
    if not path.is_file():
        return []
    try:
        listed = recorded(path)
    except IntegrityError:  # a broken sidecar is replaced, never trusted
        return []
    return sorted(listed) if listed else [sha256_file(path)]


def save_torch(obj, path, also: dict | None = None) -> str:
    """``torch.save`` through :func:`atomic_write` (temporary file, rename, SHA-256 sidecar).

    Args:
        obj: what ``torch.save`` accepts.
        path: destination.
        also: extra sidecar entries (see :func:`atomic_write`).

    Returns:
        The file's SHA-256.

    Shape:
        - any tensors, saved as they are.

    Example:
        >>> import tempfile, os, torch
        >>> p = os.path.join(tempfile.mkdtemp(), "t.pt")
        >>> _ = save_torch({"w": torch.ones(2)}, p)
        >>> load_torch(p)["w"].tolist()
        [1.0, 1.0]
    """
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), also)


def load_torch(path, **kwargs):
    """:func:`verify`, then ``torch.load(path, **kwargs)``.

    Args:
        path: a file saved by :func:`save_torch` (or an unchecked older one).
        kwargs: passed to ``torch.load`` (``map_location``, ``weights_only``).

    Raises:
        IntegrityError: the file does not match its sidecar.

    Shape:
        - returns what was saved.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.pt")
        >>> _ = save_torch([1, 2], p)
        >>> load_torch(p)
        [1, 2]
    """
    import torch

    verify(path)
    return torch.load(path, **kwargs)


def remove_leftovers(folder) -> list:
    """Delete temporary files that a killed writer left in ``folder`` (``.<name>.*.tmp``).

    Call it only while holding the folder's :class:`FolderLock` (no writer can be active).

    Args:
        folder: a run folder.

    Returns:
        The names removed.

    Shape:
        - no tensors.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / ".weights.pt.x1y2.tmp").write_bytes(b"")
        >>> remove_leftovers(d)
        ['.weights.pt.x1y2.tmp']
    """
    removed = []
    for p in sorted(Path(folder).glob(".*.tmp")):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


# folders locked by this process: real path -> [file descriptor, holders]
_HELD: dict = {}


class FolderLock:
    """Exclusive lock of a run folder for this process: ``flock`` on ``<folder>/.lock``.

    Re-entrant within a process (the command line and the model's run share one lock); the
    OS releases it when the process exits or is killed, so no stale lock ever blocks.

    Args:
        folder: an existing folder.

    Raises:
        FolderBusyError: (on :meth:`acquire`) another process holds it; the message names
            the folder and that process.

    Shape:
        - no tensors.

    Example:
        >>> import tempfile
        >>> with FolderLock(tempfile.mkdtemp()) as lock:
        ...     lock.held
        True
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.held = False

    def acquire(self) -> "FolderLock":
        if self.held:
            return self
        key = os.path.realpath(self.folder)
        entry = _HELD.get(key)
        if entry is not None:
            entry[1] += 1
        elif fcntl is not None:
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise FolderBusyError(f"out: {self.folder} is in use by another run (pid {holder}); "
                                      "wait for it to finish, or choose another --out") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _HELD[key] = [fd, 1]
        self.held = True
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        key = os.path.realpath(self.folder)
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[key]
            os.close(entry[0])  # closing the descriptor drops the flock

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
