"""MNIST, found offline first and verified, plus on-disk caches of encoded spike times.

Data root, in order of precedence: the ``root`` argument, the ``SNNLAB_DATA`` environment
variable, then ``data/`` of the source checkout (or of the current directory when the
package is installed elsewhere). Raw files live in ``<root>/MNIST/raw/`` as torchvision
expects; ``.gz`` archives are unpacked on first use and every uncompressed file is checked
against its SHA-256 before it is read.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from .integrity import atomic_write

__all__ = [
    "MNIST_FILES",
    "DataIntegrityError",
    "data_root",
    "ensure_mnist",
    "load_mnist",
    "mnist_dataset",
    "encoded_mnist",
]

#: SHA-256 of the four uncompressed MNIST files (canonical LeCun release).
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Verified files, keyed by path, device, inode, size, mtime and ctime: hashing 47 MB on every
# load is wasteful, and a file rewritten in place changes its ctime even when its mtime is
# set back (the kernel sets ctime; no user call can).
_VERIFIED: set[tuple] = set()


class DataIntegrityError(ValueError):
    """A data or cache file exists but is corrupted or truncated."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the data root: ``root``, else ``$SNNLAB_DATA``, else the checkout's ``data/``.

    Example:
        >>> data_root("/tmp/somewhere")
        PosixPath('/tmp/somewhere')
    """
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root: expected a path (str or os.PathLike), got {type(root).__name__}")
        return Path(root).expanduser()
    env = os.environ.get("SNNLAB_DATA")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "data"
    return Path.cwd() / "data"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, expected: str) -> None:
    st = path.stat()
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _VERIFIED:
        return
    got = _sha256(path)
    if got != expected:
        raise DataIntegrityError(
            f"{path} is corrupted or truncated: SHA-256 {got} does not match the expected "
            f"{expected} ({st.st_size} bytes). Delete it and put a fresh copy in {path.parent}"
        )
    _VERIFIED.add(key)


def _gunzip(src: Path, dst: Path) -> None:
    # Unpack to a temporary file first, so an interrupted unpack never leaves a partial file.
    # Only a bad archive is blamed on the archive; errors writing dst keep their own message.
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name + ".")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with gzip.open(src, "rb") as inp:
                    shutil.copyfileobj(inp, out)
            except (gzip.BadGzipFile, EOFError, zlib.error) as err:
                raise DataIntegrityError(f"{src} is not a valid gzip archive ({err}); replace it") from None
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _not_a_file(path: Path) -> DataIntegrityError:
    kind = "a directory" if path.is_dir() else "not a regular file"
    return DataIntegrityError(f"{path} is {kind}, where the file {path.name} belongs; remove it")


def _missing_error(raw: Path, missing: list[str], reason: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"MNIST files missing in {raw}: {', '.join(missing)} ({reason}); put them (or their .gz "
        "archives) there, or point SNNLAB_DATA (or root=) at a folder that holds MNIST/raw/"
    )


def _download_failure(err: Exception) -> str:
    # torchvision names the first file of its list whatever is missing, over several lines;
    # its last line is the cause (e.g. "<urlopen error [Errno -2] Name or service not known>")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"download failed: {lines[-1] if lines else type(err).__name__}"


def ensure_mnist(root=None, download: bool = True) -> Path:
    """Make sure the four raw MNIST files are present and intact; return their folder.

    Present ``.gz`` archives are unpacked; every raw file is checked against
    :data:`MNIST_FILES`. Missing files are downloaded through torchvision when
    ``download`` is true; if that fails a :class:`FileNotFoundError` names the files and
    the folder they belong in. A corrupted file raises :class:`DataIntegrityError`.

    Args:
        root: data root (see :func:`data_root`).
        download: try torchvision's download for missing files.

    Returns:
        ``<root>/MNIST/raw``.

    Example:
        >>> raw = ensure_mnist()          # doctest: +SKIP
        >>> sorted(p.name for p in raw.iterdir())[:1]  # doctest: +SKIP
        ['t10k-images-idx3-ubyte']
    """
    root = data_root(root)
    raw = root / "MNIST" / "raw"
    missing = []
    for name in MNIST_FILES:
        path, gz = raw / name, raw / (name + ".gz")
        if path.exists() and not path.is_file():
            raise _not_a_file(path)
        if not path.exists() and gz.is_file():
            _gunzip(gz, path)
        if not path.is_file():
            missing.append(name)
    if missing:
        if not download:
            raise _missing_error(raw, missing, "download=False")
        try:
            import torchvision

            raw.mkdir(parents=True, exist_ok=True)
            torchvision.datasets.MNIST(str(root), train=True, download=True)
            torchvision.datasets.MNIST(str(root), train=False, download=True)
        except Exception as err:  # any network/IO failure means "not available offline"
            raise _missing_error(raw, missing, _download_failure(err)) from None
        still = [n for n in MNIST_FILES if not (raw / n).is_file()]
        if still:
            raise _missing_error(raw, still, "download finished without them")
    for name, sha in MNIST_FILES.items():
        _verify(raw / name, sha)
    return raw


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    data = path.read_bytes()
    magic = int.from_bytes(data[0:4], "big")
    if magic != 0x0800 + ndim:
        raise DataIntegrityError(f"{path}: bad IDX magic number {magic:#x}")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataIntegrityError(f"{path}: expected {np.prod(dims)} values, found {body.size}")
    return body.reshape(dims)


def load_mnist(train: bool = True, root=None, download: bool = True):
    """Load MNIST as tensors, verified.

    Args:
        train: training set (60,000 images) if true, else the test set (10,000).
        root: data root (see :func:`data_root`).
        download: allow torchvision to download missing files.

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28)`` and int64 ``(N,)``.

    Shape:
        - images: :math:`(N, 28, 28)`, values 0..255
        - labels: :math:`(N,)`, values 0..9

    Example:
        >>> x, y = load_mnist(train=False)  # doctest: +SKIP
        >>> x.shape, y.shape               # doctest: +SKIP
        (torch.Size([10000, 28, 28]), torch.Size([10000]))
    """
    if not isinstance(train, bool):
        raise TypeError(f"train: expected a bool, got {train!r}")
    raw = ensure_mnist(root, download)
    prefix = "train" if train else "t10k"
    images = _read_idx(raw / f"{prefix}-images-idx3-ubyte", 3)
    labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte", 1)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def mnist_dataset(train: bool = True, root=None, transform=None, download: bool = True):
    """MNIST as a ``torchvision.datasets.MNIST``, after the offline check of :func:`ensure_mnist`.

    Args:
        train: training or test split.
        root: data root (see :func:`data_root`).
        transform: applied to each PIL image, e.g. a :class:`snnlab.coding.Encoder`.
        download: allow torchvision to download missing files.

    Example:
        >>> ds = mnist_dataset(train=False)  # doctest: +SKIP
        >>> len(ds)                          # doctest: +SKIP
        10000
    """
    import torchvision

    ensure_mnist(root, download)
    return torchvision.datasets.MNIST(
        str(data_root(root)), train=train, transform=transform, download=False
    )


def _cache_key(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def encoded_mnist(encoder, train: bool = True, root=None, limit: int | None = None,
                  batch_size: int = 2000, device=None, progress: bool = False):
    """Spike times of MNIST encoded by ``encoder``, computed once and cached on disk.

    The cache ``<root>/cache/mnist-<split>-<key>.pt`` is keyed by a hash of the
    encoder's parameters (``encoder.config()``) and holds a CRC of its payload; a cache
    whose key, shape or CRC does not match, or that cannot be read, is rebuilt. A directory
    in its place raises :class:`DataIntegrityError` before any encoding; a cache that cannot
    be written is skipped with a warning (the encoding is returned all the same).

    Args:
        encoder: an object with ``config() -> dict`` and ``encode_batch(uint8 (B,H,W)) -> times``
            (:class:`snnlab.coding.Encoder`).
        train: training or test split.
        root: data root (see :func:`data_root`).
        limit: keep only the first ``limit`` samples (the cache always holds the full split).
        batch_size: images encoded per batch.
        device: where to encode (``None``: CUDA when available).
        progress: show a progress bar while encoding.

    Returns:
        ``(times, labels)``: uint8 ``(N, C, H, W)`` spike times (``T`` = no spike), int64 ``(N,)``.

    Example:
        >>> from snnlab.coding import Encoder
        >>> times, labels = encoded_mnist(Encoder.mozafari2019(), train=False)  # doctest: +SKIP
    """
    images, labels = load_mnist(train, root)
    params = {"dataset": "mnist", "train": train, **encoder.config()}
    key = _cache_key(params)
    split = "train" if train else "test"
    path = data_root(root) / "cache" / f"mnist-{split}-{key}.pt"
    if path.exists() and not path.is_file():  # say so before encoding, not after
        raise _not_a_file(path)
    times = None
    if path.is_file():
        try:
            blob = torch.load(path, weights_only=True)
            ok = (
                blob.get("key") == key
                and tuple(blob["times"].shape[:1]) == (len(labels),)
                and zlib.crc32(blob["times"].numpy().tobytes()) == blob["crc"]
            )
            times = blob["times"] if ok else None
        except Exception:  # unreadable or truncated cache: rebuild it
            times = None
    if times is None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        chunks = []
        rng = range(0, len(images), batch_size)
        if progress:
            from tqdm.auto import tqdm

            rng = tqdm(rng, desc=f"encoding MNIST {split}", unit="batch")
        for i in rng:
            chunks.append(encoder.encode_batch(images[i : i + batch_size].to(device)).cpu())
        times = torch.cat(chunks)
        blob = {"key": key, "params": params, "times": times, "crc": zlib.crc32(times.numpy().tobytes())}
        try:  # the cache holds its own CRC: no sidecar
            atomic_write(path, lambda f: torch.save(blob, f), checked=False)
        except OSError as err:  # the encoding is done: use it, uncached, rather than lose it
            warnings.warn(f"cache: could not write {path} ({err.strerror or err}); continuing without it",
                          RuntimeWarning, stacklevel=2)
    if limit is not None:
        times, labels = times[:limit], labels[:limit]
    return times, labels
