"""Pictures from files: any image as an MNIST-like digit, and folders of labelled images.

**A digit from any picture** (:func:`mnist_like`), as MNIST was made (LeCun et al.): the
grey image's background is the median grey level of its outermost rows and columns; if that
is light (above 127) the image is dark-on-light and is inverted, so that ink is bright on a
dark background as in MNIST. The background level is subtracted and the ink stretched to
0..255; the digit's bounding box (pixels with at least 1/8 of the largest ink) is scaled,
aspect ratio kept, so that its longer side is 20 pixels (anti-aliased, Lanczos), and pasted
into a 28x28 field so that its centre of mass falls on the field's centre.

**Folders of labelled images** (:func:`list_image_folder`, :func:`read_image_folder`), in
torchvision's ``ImageFolder`` layout: ``root/<class name>/<image>``, one sub-folder per class
(at least two, sorted by name: class ``i`` is the ``i``-th), image files with the extensions
of :data:`IMAGE_EXTENSIONS` (other files and hidden ones are ignored). Images may have any
size and colours; they are read as grey levels (RGB through ITU-R 601 luma, transparency
over white) and, given a ``size``, resized to it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["IMAGE_EXTENSIONS", "ImageError", "read_image", "mnist_like", "list_image_folder", "read_image_folder"]

#: extensions of the files read as images in folders (as torchvision's ``ImageFolder``)
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")


class ImageError(ValueError):
    """A file that should be an image cannot be read as one, or holds no digit."""


def _check_path(path, name: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a path (str or os.PathLike), got {type(path).__name__}")
    return Path(path).expanduser()


def read_image(path, size=None, name: str = "image") -> torch.Tensor:
    """An image file as grey levels: :math:`Y = 0.299 R + 0.587 G + 0.114 B` (PIL's ``L`` mode).

    Args:
        path: an image file PIL reads (PNG, JPEG, BMP, ...). Transparent pixels are put over white.
        size: ``(height, width)`` to resize to (bilinear, anti-aliased), or ``None``: as stored.
        name: the argument named in errors.

    Returns:
        uint8 grey levels.

    Raises:
        FileNotFoundError: no file at ``path``.
        ImageError: the file is not an image PIL can read (the message names it).

    Shape:
        - Output: :math:`(H, W)`, or ``size``.

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.new("RGB", (5, 3), (255, 0, 0)).save(p)
        >>> x = read_image(p); x.shape, int(x[0, 0])
        (torch.Size([3, 5]), 76)
    """
    from PIL import Image, UnidentifiedImageError

    path = _check_path(path, name)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no image file at {path}")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            grey = img.convert("L")
            if size is not None:
                grey = grey.resize((int(size[1]), int(size[0])), Image.BILINEAR)
            return torch.from_numpy(np.array(grey, dtype=np.uint8, copy=True))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ImageError(f"{name}: {path} is not a readable image ({reason})") from None


def mnist_like(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """A grey image as an MNIST digit: light ink on black, 20x20 box, centre of mass at (14, 14).

    The rule is the module's (inverted iff the border's median grey level is above 127).

    Args:
        image: grey levels 0..255 of any size (e.g. from :func:`read_image`).
        name: the argument named in errors.

    Returns:
        uint8 grey levels, ink bright as in MNIST.

    Raises:
        ImageError: the image is uniform (no digit on it).

    Shape:
        - Input: :math:`(H, W)`. Output: :math:`(28, 28)`.

    Example:
        >>> x = torch.full((50, 40), 255, dtype=torch.uint8)
        >>> x[10:40, 18:22] = 0                       # a dark stroke on white paper
        >>> d = mnist_like(x); d.shape, int(d[14, 14]), int(d[0, 0])
        (torch.Size([28, 28]), 255, 0)
    """
    from PIL import Image

    if not isinstance(image, torch.Tensor) or image.dim() != 2:
        raise TypeError(f"{name}: expected a (H, W) tensor of grey levels, got "
                        f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    a = image.to(torch.float64).numpy()
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    background = float(np.median(border))
    ink = np.clip(background - a if background > 127 else a - background, 0, None)
    if ink.max() <= 0:
        raise ImageError(f"{name}: a uniform image (grey level {background:g} everywhere): no digit on it")
    ink *= 255 / ink.max()
    rows, cols = np.nonzero(ink >= 255 / 8)
    box = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = box.shape
    scale = 20 / max(h, w)
    hs, ws = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(box.astype(np.float32), mode="F").resize((ws, hs), Image.LANCZOS))
    small = np.clip(small, 0, 255)
    yy, xx = np.indices(small.shape)
    mass = small.sum()
    cy, cx = (yy + 0.5).ravel() @ small.ravel() / mass, (xx + 0.5).ravel() @ small.ravel() / mass
    field = np.zeros((28, 28))
    top, left = int(round(14 - cy)), int(round(14 - cx))
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + hs, 28), min(left + ws, 28)
    field[y0:y1, x0:x1] = small[y0 - top:y1 - top, x0 - left:x1 - left]
    return torch.from_numpy(np.round(field).astype(np.uint8))


def list_image_folder(path, name: str = "path") -> tuple:
    """The labelled image files of a folder ``path/<class>/<image>``: class ``i`` = ``i``-th sub-folder by name.

    Args:
        path: the folder.
        name: the argument named in errors.

    Returns:
        ``(files, labels, classes)``: image paths (sorted by class, then name), their class
        indices, and the class names.

    Raises:
        FileNotFoundError: ``path`` is not a folder.
        ValueError: it has fewer than two class folders, or a class folder holds no image
            (the message names what was found).

    Shape:
        - no tensors: lists of length :math:`N` (files, labels) and :math:`C` (classes).

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> root = tempfile.mkdtemp()
        >>> for c in ("cats", "dogs"):
        ...     os.mkdir(os.path.join(root, c)); Image.new("L", (4, 4)).save(os.path.join(root, c, "1.png"))
        >>> files, labels, classes = list_image_folder(root); labels, classes
        ([0, 1], ['cats', 'dogs'])
    """
    root = _check_path(path, name)
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: no folder at {root} (expected {root}/<class name>/<images>)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        found = f"one ({classes[0]!r})" if classes else "none"
        raise ValueError(f"{name}: expected at least two class folders in {root} ({root}/<class name>/<images>), "
                         f"found {found}")
    files, labels = [], []
    for i, c in enumerate(classes):
        mine = sorted(f for f in (root / c).iterdir()
                      if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not mine:
            raise ValueError(f"{name}: the class folder {root / c} holds no image "
                             f"(expected files ending in {', '.join(IMAGE_EXTENSIONS)})")
        files += mine
        labels += [i] * len(mine)
    return files, labels, classes


def read_image_folder(files, size=None, name: str = "path") -> torch.Tensor:
    """The grey levels of image files of one size (or resized to ``size``), stacked.

    Args:
        files: image paths (e.g. from :func:`list_image_folder`).
        size: ``(height, width)`` to resize every image to; ``None``: they must share a size.
        name: the argument named in errors.

    Raises:
        ImageError: a file is not a readable image, or (``size=None``) sizes differ.

    Shape:
        - Output: :math:`(N, H, W)` uint8.

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png"); Image.new("L", (6, 4)).save(p)
        >>> read_image_folder([p, p], size=(8, 8)).shape
        torch.Size([2, 8, 8])
    """
    images = [read_image(f, size, name) for f in files]
    odd = next((i for i, x in enumerate(images) if x.shape != images[0].shape), None)
    if odd is not None:
        (h0, w0), (h1, w1) = images[0].shape, images[odd].shape
        raise ImageError(f"{name}: images of several sizes ({files[0]} is {h0}x{w0}, {files[odd]} is {h1}x{w1}); "
                         "give one size to resize them to (image_size)")
    return torch.stack(images) if images else torch.empty(0, 0, 0, dtype=torch.uint8)
