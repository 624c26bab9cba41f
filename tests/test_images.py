"""snnlab.images (pictures as MNIST digits, folders of labelled images) and the folder dataset
of snnlab.data: its split, its cache keyed by the files' hashes, and STDP + SVM learning on it."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from snnlab import data as sd
from snnlab.coding import Encoder
from snnlab.images import ImageError, list_image_folder, mnist_like, read_image, read_image_folder


def shapes_folder(root, per_class=20, size=(40, 32), seed=0):
    """Two classes of drawn shapes, white on black, of random size, place and stroke: bars
    across ("across") and bars up ("up")."""
    rng = np.random.default_rng(seed)
    for cls in ("across", "up"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            img = Image.new("L", (size[1], size[0]), 0)
            d = ImageDraw.Draw(img)
            r, gap, width = int(rng.integers(7, 11)), int(rng.integers(3, 6)), int(rng.integers(1, 3))
            cy, cx = size[0] // 2 + int(rng.integers(-3, 4)), size[1] // 2 + int(rng.integers(-3, 4))
            for off in (-gap, gap):
                if cls == "across":
                    d.line([cx - r, cy + off, cx + r, cy + off], fill=255, width=width)
                else:
                    d.line([cx + off, cy - r, cx + off, cy + r], fill=255, width=width)
            img.save(root / cls / f"{i:02d}.png")
    return root


def test_mnist_like_centres_scales_and_inverts():
    paper = torch.full((90, 60), 230, dtype=torch.uint8)  # a dark "1" on light paper, off-centre
    paper[10:70, 5:13] = 20
    d = mnist_like(paper)
    assert d.shape == (28, 28) and d.dtype == torch.uint8
    assert d.max() == 255 and d[0].max() == 0 and d[:, 0].max() == 0  # light ink on black
    rows, cols = torch.nonzero(d >= 32, as_tuple=True)
    assert int(rows.max() - rows.min()) + 1 == 20  # the longer side of the box is 20
    w = d.double()
    yy, xx = torch.meshgrid(torch.arange(28.0) + 0.5, torch.arange(28.0) + 0.5, indexing="ij")
    assert abs(float((w * yy).sum() / w.sum()) - 14) < 1 and abs(float((w * xx).sum() / w.sum()) - 14) < 1
    # light-on-dark is kept as it is: the same digit either way
    assert torch.equal(mnist_like(255 - paper), d)


def test_mnist_like_keeps_an_mnist_digit_close():
    x, _ = sd.load_mnist(train=False) if (sd.data_root() / "MNIST" / "raw").is_dir() else (None, None)
    if x is None:
        pytest.skip("needs MNIST")
    for img in x[:20]:  # already 20x20-boxed and centred: moved by at most a pixel or so
        assert (mnist_like(img).float() - img.float()).abs().mean() < 40


def test_read_image_rgb_alpha_and_errors(tmp_path):
    rgba = Image.new("RGBA", (8, 6), (0, 0, 0, 0))  # transparent: over white
    ImageDraw.Draw(rgba).rectangle([2, 2, 4, 4], fill=(0, 0, 0, 255))
    rgba.save(tmp_path / "a.png")
    x = read_image(tmp_path / "a.png")
    assert x.shape == (6, 8) and int(x[0, 0]) == 255 and int(x[3, 3]) == 0
    assert read_image(tmp_path / "a.png", size=(12, 10)).shape == (12, 10)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match=r"^image: .*bad.png is not a readable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError, match="image: no image file at"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="uniform image"):
        mnist_like(torch.full((5, 5), 7, dtype=torch.uint8))


def test_folder_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: no folder at"):
        list_image_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"at least two class folders .* found none"):
        list_image_folder(tmp_path / "empty")
    one = tmp_path / "one"
    (one / "cats").mkdir(parents=True)
    Image.new("L", (4, 4)).save(one / "cats" / "a.png")
    with pytest.raises(ValueError, match=r"found one \('cats'\)"):
        list_image_folder(one)
    (one / "dogs").mkdir()
    (one / "dogs" / "notes.txt").write_text("no image here")
    with pytest.raises(ValueError, match="dogs holds no image"):
        list_image_folder(one)
    (one / "dogs" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageError, match=r"^path: .*b.png is not a readable image"):
        sd.encoded_folder(Encoder.kheradpisheh2018(), one, root=tmp_path)
    assert not (tmp_path / "cache").exists()  # nothing written
    Image.new("L", (5, 4)).save(one / "dogs" / "b.png")
    files, labels, classes = list_image_folder(one)
    with pytest.raises(ImageError, match="images of several sizes"):
        read_image_folder(files)
    assert read_image_folder(files, size=(4, 4)).shape == (2, 4, 4)


def test_encoded_folder_split_and_cache(tmp_path):
    folder = shapes_folder(tmp_path / "shapes", per_class=8)
    enc = Encoder.kheradpisheh2018()
    a = sd.encoded_folder(enc, folder, root=tmp_path, device="cpu")
    assert a.classes == ["across", "up"]
    assert len(a.train_labels) == 12 and sorted(a.test_labels.tolist()) == [0, 0, 1, 1]  # 2 of 8 per class
    assert set(a.train_files).isdisjoint(a.test_files) and len(a.train_files + a.test_files) == 16
    assert a.train_times.shape == (12, 2, 40, 32) and a.train_times.dtype == torch.uint8
    caches = list((tmp_path / "cache").glob("folder-*.pt"))
    assert len(caches) == 1
    b = sd.encoded_folder(enc, folder, root=tmp_path, device="cpu")  # from the cache
    assert torch.equal(a.train_times, b.train_times) and a.train_files == b.train_files
    # a changed image is a new key: encoded again, into a new cache file
    Image.new("L", (32, 40), 255).save(folder / "across" / "00.png")
    sd.encoded_folder(enc, folder, root=tmp_path, device="cpu")
    assert len(list((tmp_path / "cache").glob("folder-*.pt"))) == 2
    c = sd.encoded_folder(enc, folder, size=(20, 16), root=tmp_path, device="cpu")
    assert c.train_times.shape[-2:] == (20, 16)
