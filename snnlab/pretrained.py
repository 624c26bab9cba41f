"""Trained networks by name, from the weights stored in ``results/`` and verified by SHA-256.

The registry ``results/pretrained.json`` lists, for each name, the weights file, its SHA-256,
the test accuracy the run measured and the ``results.json`` that records it, and the protocol.
:func:`pretrained` checks the file against the SHA-256 before loading it and returns a
:class:`Pretrained`: the network, its config and that accuracy. No accuracy is computed here:
the figures are the stored runs' own.

What each model's ``network`` is:

- ``kheradpisheh2018*``: the STDP feature extractor
  (:class:`~snnlab.models.kheradpisheh2018.Kheradpisheh2018`). Its accuracy was measured with a
  linear SVM trained on its features of the first ``svm_train_samples`` training digits; that
  SVM is not stored, so the network alone gives features, not digits, and ``classifier`` says
  which SVM to fit (:class:`snnlab.svm.LinearSVM` with ``C = svm_c``) to classify.
- ``mozafari2019*``: the whole network (:class:`~snnlab.models.mozafari2019.Mozafari2019`),
  which decides by itself (``network(times)`` gives digits, ``-1`` when silent).
- ``kulkarni2018*``: a dict of tensors, ``{"W": (10, 8112) output weights, "kernels":
  (12, 1, 3, 3) hidden-layer kernels}``, the inputs of
  :func:`snnlab.models.kulkarni2018.hidden_layer` and :func:`~snnlab.models.kulkarni2018.evaluate`.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pretrained", "pretrained", "names", "REGISTRY"]

REGISTRY = Path(__file__).resolve().parent.parent / "results" / "pretrained.json"
"""The registry shipped with the repository: names -> weights, SHA-256, measured accuracy."""

_FORMATS = ("snnlab.io", "kulkarni2018")
_ENTRY_KEYS = {"model", "file", "format", "sha256", "accuracy", "results", "accuracy_key", "protocol"}


@dataclass(frozen=True)
class Pretrained:
    """A trained network of the registry, with what it was measured at.

    Attributes:
        name: its name in the registry.
        model: the :mod:`snnlab.models` name (``"kheradpisheh2018"``, ...).
        network: the network (``nn.Module``) or, for ``kulkarni2018``, a dict of tensors
            ``{"W", "kernels"}``: see the module's docstring.
        config: the model's config dataclass, as stored with the weights.
        accuracy: test accuracy in percent on the 10k MNIST test set, as the run recorded it.
        results: the ``results.json`` that records ``accuracy``.
        protocol: how the network was trained and the accuracy measured.
        classifier: for Kheradpisheh networks, the SVM the accuracy was measured with and is
            not stored (``{"svm_c", "svm_train_samples"}``); ``None`` when the network decides.
        path: the weights file.
        sha256: its SHA-256, checked against the registry before loading.

    Shape:
        - no tensors of its own (``network`` holds them).

    Example:
        >>> p = pretrained("kheradpisheh2018_quick")
        >>> p.model, p.accuracy, p.results.name
        ('kheradpisheh2018', 98.23, 'results.json')
    """

    name: str
    model: str
    network: object
    config: object
    accuracy: float
    results: Path
    protocol: str
    classifier: dict | None
    path: Path
    sha256: str


def _read_registry(registry) -> dict:
    path = Path(REGISTRY if registry is None else registry)
    if not path.is_file():
        raise FileNotFoundError(f"registry: no registry of trained networks at {path}")
    try:
        nets = json.loads(path.read_text(encoding="utf-8"))["networks"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"registry: {path} is not a registry of trained networks ({err!r})") from None
    if not isinstance(nets, dict):
        raise ValueError(f"registry: {path} should map names to entries under 'networks'")
    for name, entry in nets.items():
        missing = _ENTRY_KEYS - set(entry) if isinstance(entry, dict) else _ENTRY_KEYS
        if missing:
            raise ValueError(f"registry: entry {name!r} of {path} lacks {', '.join(sorted(missing))}")
        if entry["format"] not in _FORMATS:
            raise ValueError(f"registry: entry {name!r} of {path} has format {entry['format']!r}, "
                             f"expected one of {_FORMATS}")
    return nets


def names(registry=None) -> list:
    """The names :func:`pretrained` knows, sorted.

    Args:
        registry: a registry file (default: :data:`REGISTRY`).

    Shape:
        - no tensors.

    Example:
        >>> "mozafari2019_quick" in names()
        True
    """
    return sorted(_read_registry(registry))


def _load_snnlab(blob, entry, path, device):
    """A network saved by :func:`snnlab.io.save_model` (its config through the config class's
    ``from_dict``, which completes fields that older runs predate)."""
    import torch

    from . import models

    module = models.get(entry["model"])
    if not isinstance(blob, dict) or not {"class", "config", "state_dict"} <= set(blob):
        raise ValueError(f"path: {path} is not a network saved by snnlab.io.save_model")
    # the classes are looked up in the registered model's module only, never imported by name
    net_cls = getattr(module, blob["class"].rpartition(".")[2], None)
    cfg_cls = getattr(module, str(blob.get("config_class", "")).rpartition(".")[2], None)
    if not (isinstance(net_cls, type) and issubclass(net_cls, torch.nn.Module) and hasattr(cfg_cls, "from_dict")):
        raise ValueError(f"path: {path} holds a {blob['class']}, not a network of {module.__name__}")
    cfg = cfg_cls.from_dict(blob["config"])
    net = net_cls(cfg)
    net.load_state_dict(blob["state_dict"])
    return net.to(device), cfg


def _load_kulkarni(blob, path, device):
    from .models.kulkarni2018 import Kulkarni2018Config

    if not isinstance(blob, dict) or not {"W", "kernels", "config"} <= set(blob):
        raise ValueError(f"path: {path} is not a kulkarni2018 weights file (W, kernels, config)")
    network = {"W": blob["W"].to(device), "kernels": blob["kernels"].to(device)}
    return network, Kulkarni2018Config(**blob["config"])


def pretrained(name: str, device="cpu", registry=None) -> Pretrained:
    """The trained network ``name`` of the registry, checked against its SHA-256.

    Math: load iff ``sha256(file) == registry[name].sha256``; ``accuracy`` is the stored
    run's test accuracy (never recomputed here).

    Args:
        name: a registered name (see :func:`names`), e.g. ``"kheradpisheh2018"``,
            ``"mozafari2019_quick"``, ``"kulkarni2018"``.
        device: where the network's tensors go (``"cpu"``, ``"cuda"``, a ``torch.device``).
        registry: a registry file (default: :data:`REGISTRY`); file names in it are
            relative to its folder.

    Returns:
        Pretrained: the network, its config, its accuracy, where that is recorded, the protocol.

    Raises:
        ValueError: ``name`` is not registered (the message lists the known names), or the
            file's SHA-256 differs from the registry's (corrupted or replaced: the message
            names the file), or the file is not what the registry says.
        FileNotFoundError: the registry or the weights file is missing.

    Shape:
        - Kulkarni: ``network["W"]`` :math:`(10, 8112)`, ``network["kernels"]`` :math:`(12, 1, 3, 3)`.

    Example:
        >>> p = pretrained("mozafari2019_quick")
        >>> type(p.network).__name__, p.accuracy, p.classifier is None
        ('Mozafari2019', 91.79, True)
    """
    import torch

    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    reg_path = Path(REGISTRY if registry is None else registry)
    nets = _read_registry(reg_path)
    if name not in nets:
        raise ValueError(f"name: unknown trained network {name!r}; known: {', '.join(sorted(nets))}")
    entry = nets[name]
    path = reg_path.parent / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"path: the weights of {name!r} are missing: no file at {path}")
    data = path.read_bytes()  # hashed and loaded from the same bytes
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(f"path: {path} is corrupted or was replaced: its SHA-256 is {digest}, the "
                         f"registry expects {entry['sha256']} for {name!r}; restore the file "
                         f"(e.g. git checkout -- {entry['file']})")
    blob = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    if entry["format"] == "kulkarni2018":
        network, config = _load_kulkarni(blob, path, device)
    else:
        network, config = _load_snnlab(blob, entry, path, device)
    return Pretrained(name=name, model=entry["model"], network=network, config=config,
                      accuracy=float(entry["accuracy"]), results=reg_path.parent / entry["results"],
                      protocol=entry["protocol"], classifier=entry.get("classifier"), path=path,
                      sha256=digest)

