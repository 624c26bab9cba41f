"""Offline MNIST: discovery, verification, clear errors; encoded caches."""
import gzip
import shutil

import pytest
import torch

from snnlab import data as sd
from snnlab.coding import Encoder

SRC = sd.data_root() / "MNIST" / "raw"
HAVE_MNIST = all((SRC / n).is_file() or (SRC / (n + ".gz")).is_file() for n in sd.MNIST_FILES)
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST not staged in {SRC}")


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Make torchvision's download fail fast, as it does offline."""
    import torchvision

    def refuse(*a, **k):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", refuse)


def test_missing_files_fail_fast_with_names_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        sd.load_mnist(root=tmp_path)
    msg = str(err.value)
    for name in sd.MNIST_FILES:
        assert name in msg
    assert str(tmp_path / "MNIST" / "raw") in msg


def test_env_variable_sets_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNLAB_DATA", str(tmp_path))
    assert sd.data_root() == tmp_path
    assert sd.data_root(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(TypeError, match="root"):
        sd.data_root(3)


@pytest.fixture
def staged(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in sd.MNIST_FILES:
        if (SRC / name).is_file():
            shutil.copy(SRC / name, raw / name)
        else:
            shutil.copy(SRC / (name + ".gz"), raw / (name + ".gz"))
    return tmp_path


@needs_mnist
def test_gz_files_are_unpacked_and_loaded(staged):
    images, labels = sd.load_mnist(train=False, root=staged)
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10000,) and int(labels.max()) == 9
    assert (staged / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
    ds = sd.mnist_dataset(train=False, root=staged)
    assert len(ds) == 10000 and int(ds[0][1]) == int(labels[0])


@needs_mnist
def test_one_changed_byte_is_reported_as_checksum_mismatch(staged):
    sd.ensure_mnist(staged)
    path = staged / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 1
    path.write_bytes(bytes(blob))
    sd._VERIFIED.clear()
    with pytest.raises(sd.DataIntegrityError, match="SHA-256"):
        sd.load_mnist(train=False, root=staged)


@needs_mnist
def test_truncated_gz_is_reported(staged):
    raw = staged / "MNIST" / "raw"
    for name in sd.MNIST_FILES:
        (raw / name).unlink(missing_ok=True)
    gz = raw / "t10k-labels-idx1-ubyte.gz"
    if not gz.is_file():
        with open(SRC / "t10k-labels-idx1-ubyte", "rb") as f, gzip.open(gz, "wb") as out:
            out.write(f.read())
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(sd.DataIntegrityError, match="t10k-labels"):
        sd.ensure_mnist(staged)


@needs_mnist
def test_encoded_cache_is_reused_and_rebuilt_when_stale(staged):
    enc = Encoder.kheradpisheh2018()
    t1, y1 = sd.encoded_mnist(enc, train=False, root=staged, limit=50)
    assert t1.shape == (50, 2, 28, 28) and t1.dtype == torch.uint8
    assert torch.equal(t1, enc.encode_batch(sd.load_mnist(False, staged)[0][:50]))
    cache = next((staged / "cache").glob("mnist-test-*.pt"))
    stamp = cache.stat().st_mtime_ns
    sd.encoded_mnist(enc, train=False, root=staged, limit=10)
    assert cache.stat().st_mtime_ns == stamp            # reused
    cache.write_bytes(cache.read_bytes()[:1000])         # truncated
    t2, _ = sd.encoded_mnist(enc, train=False, root=staged, limit=50)
    assert torch.equal(t1, t2) and cache.stat().st_size > 1000
    other = Encoder.kheradpisheh2018(time_steps=10)
    t3, _ = sd.encoded_mnist(other, train=False, root=staged, limit=5)
    assert int(t3.max()) == 10 and len(list((staged / "cache").glob("mnist-test-*.pt"))) == 2


@needs_mnist
def test_file_changed_with_its_mtime_kept_is_hashed_again(staged):
    import os
    import time

    sd.ensure_mnist(staged)  # verified and remembered
    path = staged / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    st = path.stat()
    time.sleep(0.02)  # past the kernel's coarse timestamp tick
    blob = bytearray(path.read_bytes())
    blob[5000] ^= 1
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert path.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(sd.DataIntegrityError, match="SHA-256"):
        sd.ensure_mnist(staged)


@needs_mnist
def test_directory_in_place_of_a_data_file_is_blamed_not_the_valid_gz(staged):
    raw = staged / "MNIST" / "raw"
    name = "t10k-labels-idx1-ubyte"
    with open(SRC / name, "rb") if (SRC / name).is_file() else gzip.open(SRC / (name + ".gz")) as f:
        data = f.read()
    (raw / name).unlink(missing_ok=True)
    with gzip.open(raw / (name + ".gz"), "wb") as out:
        out.write(data)
    (raw / name).mkdir()
    with pytest.raises(sd.DataIntegrityError) as err:
        sd.ensure_mnist(staged)
    msg = str(err.value)
    assert f"{raw / name} is a directory" in msg and ".gz" not in msg and "\n" not in msg
    (raw / name).rmdir()
    sd.ensure_mnist(staged)  # the valid archive is then unpacked
    assert (raw / name).read_bytes() == data


def test_offline_missing_file_error_is_one_line_and_names_only_what_is_missing(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (raw / name).write_bytes(b"")  # present (checked later); only t10k-labels is missing
    with pytest.raises(FileNotFoundError) as err:
        sd.ensure_mnist(tmp_path)
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte" in msg and "train-images" not in msg and "\n" not in msg
    assert "download failed: network unreachable" in msg and str(raw) in msg


@needs_mnist
def test_directory_in_place_of_the_cache_is_refused_before_encoding(staged, monkeypatch):
    enc = Encoder.kheradpisheh2018()
    key = sd._cache_key({"dataset": "mnist", "train": False, **enc.config()})
    (staged / "cache" / f"mnist-test-{key}.pt").mkdir(parents=True)
    monkeypatch.setattr(enc, "encode_batch", lambda x: pytest.fail("encoded before the check"))
    with pytest.raises(sd.DataIntegrityError, match="is a directory"):
        sd.encoded_mnist(enc, train=False, root=staged)
    assert [p.name for p in (staged / "cache").iterdir()] == [f"mnist-test-{key}.pt"]  # no temporary left


def test_unwritable_cache_is_skipped_with_a_warning(tmp_path, monkeypatch):
    def refuse(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sd, "atomic_write", refuse)
    monkeypatch.setattr(sd, "load_mnist", lambda train, root: (torch.full((3, 28, 28), 200, dtype=torch.uint8),
                                                                torch.zeros(3, dtype=torch.int64)))
    with pytest.warns(RuntimeWarning, match="could not write .*Permission denied"):
        times, labels = sd.encoded_mnist(Encoder.kheradpisheh2018(), train=False, root=tmp_path)
    assert times.shape == (3, 2, 28, 28) and labels.shape == (3,)  # the encoding is not lost
    assert not list(tmp_path.glob("cache/*"))
