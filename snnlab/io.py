"""Saving and loading trained networks, and SpykeTorch's plain-text tensor format.

The text format has two lines: the comma-separated shape, then the values in row-major
order, comma-separated. It is what the reference library's tools exchange weights in.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from .integrity import save_torch, verify

__all__ = ["save_tensor_text", "load_tensor_text", "save_model", "load_model"]


def save_tensor_text(tensor: torch.Tensor, path) -> None:
    """Write ``tensor`` in the plain-text format (shape line, then row-major values).

    Float values are written with ``repr`` precision, so a float32 tensor round-trips exactly.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "w.txt")
        >>> save_tensor_text(torch.tensor([[1.5, 2.0]]), p)
        >>> open(p).read().splitlines()
        ['1,2', '1.5,2.0']
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor: expected a torch.Tensor, got {type(tensor).__name__}")
    flat = tensor.detach().cpu().reshape(-1)
    values = flat.tolist()
    with open(path, "w") as f:
        f.write(",".join(str(s) for s in tensor.shape) + "\n")
        f.write(",".join(repr(v) for v in values) + "\n")


def load_tensor_text(path, dtype=torch.float32) -> torch.Tensor:
    """Read a tensor written by :func:`save_tensor_text` (or by the reference library).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not in the two-line format or its size does not match its shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no tensor file at {path}")
    lines = path.read_text().strip().splitlines()
    if len(lines) != 2:
        raise ValueError(f"path: {path} should have 2 lines (shape, values), found {len(lines)}")
    try:
        shape = [int(s) for s in lines[0].split(",") if s.strip()]
        values = [float(v) for v in lines[1].split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"path: {path} is not in the text tensor format ({err})") from None
    n = 1
    for s in shape:
        n *= s
    if n != len(values):
        raise ValueError(f"path: {path} declares shape {shape} ({n} values) but holds {len(values)}")
    return torch.tensor(values, dtype=dtype).reshape(shape)


def save_model(model, path) -> None:
    """Save a network with its config (``model.config``, a dataclass), atomically, with a
    SHA-256 sidecar (``<path>.sha256``) that :func:`load_model` verifies.

    Example:
        >>> from snnlab.models.mozafari2019 import Mozafari2019, Mozafari2019Config
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "net.pt")
        >>> save_model(Mozafari2019(Mozafari2019Config()), p)
        >>> type(load_model(p)).__name__
        'Mozafari2019'
    """
    cfg = model.config
    blob = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "config_class": f"{type(cfg).__module__}.{type(cfg).__qualname__}",
        "config": dataclasses.asdict(cfg),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    save_torch(blob, path)


def _resolve(qualname: str):
    import importlib

    module, _, name = qualname.rpartition(".")
    if not module.startswith("snnlab."):
        raise ValueError(f"path: refusing to load class {qualname!r} from outside snnlab")
    return getattr(importlib.import_module(module), name)


def load_model(path, device="cpu"):
    """Load a network saved by :func:`save_model` (config and weights).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        snnlab.integrity.IntegrityError: the file does not match the SHA-256 recorded beside it.
        ValueError: the file is not a saved snnlab network.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no saved network at {path}")
    verify(path)
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # truncated or foreign files fail in many ways inside torch
        raise ValueError(f"path: {path} is not a readable saved network ({type(err).__name__})") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "class" not in blob:
        raise ValueError(f"path: {path} is not a network saved by snnlab.io.save_model")
    cfg_cls = _resolve(blob["config_class"])
    cfg = cfg_cls.from_dict(blob["config"]) if hasattr(cfg_cls, "from_dict") else cfg_cls(**blob["config"])
    model = _resolve(blob["class"])(cfg)
    model.load_state_dict(blob["state_dict"])
    return model.to(device)
