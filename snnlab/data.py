"""MNIST, found offline first and verified, folders of your own labelled images, and on-disk
caches of their encoded spike times.

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
import math
import os
import shutil
import tempfile
import warnings
import zlib
from dataclasses import dataclass
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
    "EncodedFolder",
    "encoded_folder",
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


def _cached_encoding(encoder, images, n: int, params: dict, prefix: str, root, batch_size: int, device,
                     progress: bool, desc: str) -> torch.Tensor:
    # spike times of the n images that images() gives, from <root>/cache/<prefix>-<key>.pt
    # when it holds them (key, length and CRC checked), else encoded and stored there
    key = _cache_key(params)
    path = data_root(root) / "cache" / f"{prefix}-{key}.pt"
    if path.exists() and not path.is_file():  # say so before encoding, not after
        raise _not_a_file(path)
    if path.is_file():
        try:
            blob = torch.load(path, weights_only=True)
            if (blob.get("key") == key and tuple(blob["times"].shape[:1]) == (n,)
                    and zlib.crc32(blob["times"].numpy().tobytes()) == blob["crc"]):
                return blob["times"]
        except Exception:  # unreadable or truncated cache: rebuild it
            pass
    pixels = images()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        rng = tqdm(rng, desc=desc, unit="batch")
    times = torch.cat([encoder.encode_batch(pixels[i:i + batch_size].to(device)).cpu() for i in rng])
    blob = {"key": key, "params": params, "times": times, "crc": zlib.crc32(times.numpy().tobytes())}
    try:  # the cache holds its own CRC: no sidecar
        atomic_write(path, lambda f: torch.save(blob, f), checked=False)
    except OSError as err:  # the encoding is done: use it, uncached, rather than lose it
        warnings.warn(f"cache: could not write {path} ({err.strerror or err}); continuing without it",
                      RuntimeWarning, stacklevel=3)
    return times


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
    split = "train" if train else "test"
    params = {"dataset": "mnist", "train": train, **encoder.config()}
    times = _cached_encoding(encoder, lambda: images, len(labels), params, f"mnist-{split}", root, batch_size,
                             device, progress, f"encoding MNIST {split}")
    if limit is not None:
        times, labels = times[:limit], labels[:limit]
    return times, labels


@dataclass(frozen=True)
class EncodedFolder:
    """A folder of labelled images, encoded and split: what :func:`encoded_folder` returns.

    Attributes:
        train_times, test_times: spike times of the training and test images.
        train_labels, test_labels: their class indices (into ``classes``).
        classes: class names, the sub-folders' names sorted.
        train_files, test_files: the image files, in the order of the times.

    Shape:
        - times: :math:`(N, C, H, W)` uint8; labels: :math:`(N,)` int64.

    Example:
        >>> EncodedFolder.__dataclass_fields__.keys() >= {"train_times", "classes"}
        True
    """

    train_times: torch.Tensor
    train_labels: torch.Tensor
    test_times: torch.Tensor
    test_labels: torch.Tensor
    classes: list
    train_files: list
    test_files: list


def encoded_folder(encoder, path, size=None, test_fraction: float = 0.25, root=None, batch_size: int = 256,
                   device=None, progress: bool = False) -> EncodedFolder:
    """Spike times of a folder of labelled images (``path/<class>/<image>``), split and cached.

    Math: images are ordered by the SHA-256 of their bytes (an order fixed by their content,
    which mixes the classes); the last ``ceil(test_fraction * n_c)`` of each class's
    ``n_c`` images in that order are the test set, the others the training set.

    The encoding is cached in ``<root>/cache/folder-<key>.pt``, keyed by the files' SHA-256
    and classes, ``size`` and the encoder's parameters, with a CRC as :func:`encoded_mnist`'s.
    Reading images is the layout and rules of :mod:`snnlab.images`.

    Args:
        encoder: as for :func:`encoded_mnist` (:class:`snnlab.coding.Encoder`).
        path: the folder (at least two class sub-folders, each with at least one image).
        size: ``(height, width)`` every image is resized to; ``None``: they must share a size.
        test_fraction: share of each class held out for testing, in ``[0, 1)``.
        root: data root of the cache (see :func:`data_root`).
        batch_size: images encoded per batch.
        device: where to encode (``None``: CUDA when available).
        progress: a progress bar while encoding.

    Raises:
        FileNotFoundError, ValueError: see :func:`snnlab.images.list_image_folder`;
            :class:`snnlab.images.ImageError` for an unreadable image or mixed sizes.

    Shape:
        - times: :math:`(N, C, H', W')` uint8, labels :math:`(N,)` int64.

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> from snnlab.coding import Encoder
        >>> top = tempfile.mkdtemp()
        >>> for c in ("a", "b"):
        ...     os.makedirs(os.path.join(top, "img", c))
        ...     for i in range(2):
        ...         Image.new("L", (9, 9), 60 * i + (c == "b") * 100).save(os.path.join(top, "img", c, f"{i}.png"))
        >>> d = encoded_folder(Encoder.kheradpisheh2018(), os.path.join(top, "img"), root=top, device="cpu")
        >>> d.train_times.shape, sorted(d.test_labels.tolist()), d.classes
        (torch.Size([2, 2, 9, 9]), [0, 1], ['a', 'b'])
    """
    from .images import list_image_folder, read_image_folder

    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction: expected a number in [0, 1), got {test_fraction!r}")
    files, labels, classes = list_image_folder(path)
    digests = [_sha256(f) for f in files]
    order = sorted(range(len(files)), key=lambda i: (digests[i], i))
    test = set()
    for c in range(len(classes)):
        mine = [i for i in order if labels[i] == c]
        test.update(mine[len(mine) - math.ceil(test_fraction * len(mine)):] if test_fraction else [])
    order = [i for i in order if i not in test] + [i for i in order if i in test]
    files, labels, digests = [files[i] for i in order], [labels[i] for i in order], [digests[i] for i in order]
    size = None if size is None else [int(v) for v in size]
    params = {"dataset": "folder", "classes": classes, "files": [[d, y] for d, y in zip(digests, labels)],
              "size": size, **encoder.config()}
    times = _cached_encoding(encoder, lambda: read_image_folder(files, size), len(files), params, "folder", root,
                             batch_size, device, progress, "encoding images")
    y = torch.tensor(labels, dtype=torch.int64)
    n = len(files) - len(test)
    return EncodedFolder(times[:n], y[:n], times[n:], y[n:], classes, files[:n], files[n:])
