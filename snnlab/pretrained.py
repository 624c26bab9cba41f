"""Trained networks by name, from the weights stored in ``results/`` and verified by SHA-256.

The registry ``results/pretrained.json`` lists, for each name, the weights file, its SHA-256,
the test accuracy the run measured and the ``results.json`` that records it, and the protocol.
:func:`pretrained` checks the file against the SHA-256 before loading it and returns a
:class:`Pretrained`: the network, its config and that accuracy (the stored run's own).
:func:`predict` gives its decisions on grey images and :func:`evaluate` measures its accuracy
again on the MNIST test set, through the code paths of the model's protocol (the same
encoder and cache, the same decision rule), so that the stored accuracy can be checked.

What each model's ``network`` is:

- ``kheradpisheh2018*``: the STDP feature extractor
  (:class:`~snnlab.models.kheradpisheh2018.Kheradpisheh2018`); it gives features, and its
  linear SVM (``svm``, a :class:`snnlab.svm.LinearSVM` fitted on the features of the first
  ``svm_train_samples`` training digits, stored beside the weights with its own SHA-256)
  turns them into digits.
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

__all__ = ["Pretrained", "pretrained", "names", "predict", "evaluate", "REGISTRY"]

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
        classifier: for Kheradpisheh networks, the stored SVM that ``accuracy`` is measured
            with (``{"svm_c", "svm_train_samples", "solver", "file", "sha256"}``); ``None`` when
            the network decides.
        path: the weights file.
        sha256: its SHA-256, checked against the registry before loading.
        svm: for Kheradpisheh networks, that SVM (:class:`snnlab.svm.LinearSVM`, loaded from
            ``classifier["file"]`` after the same SHA-256 check); ``None`` otherwise.

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
    svm: object = None


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


def _checked_bytes(folder: Path, entry: dict, name: str, what: str) -> bytes:
    # the bytes of folder / entry["file"], hashed and loaded from the same read, if their
    # SHA-256 is entry["sha256"]
    path = folder / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"path: {what} of {name!r} are missing: no file at {path}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(f"path: {path} is corrupted or was replaced: its SHA-256 is {digest}, the "
                         f"registry expects {entry['sha256']} for {name!r}; restore the file "
                         f"(e.g. git checkout -- {entry['file']})")
    return data


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
            SHA-256 of the weights (or of a Kheradpisheh network's SVM) differs from the
            registry's (corrupted or replaced: the message names the file), or the file is not
            what the registry says.
        FileNotFoundError: the registry, the weights or the SVM file is missing.

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
    blob = torch.load(io.BytesIO(_checked_bytes(reg_path.parent, entry, name, "the weights")), map_location=device,
                      weights_only=True)
    if entry["format"] == "kulkarni2018":
        network, config = _load_kulkarni(blob, path, device)
    else:
        network, config = _load_snnlab(blob, entry, path, device)
    classifier, svm = entry.get("classifier"), None
    if classifier is not None:
        from .svm import LinearSVM

        data = _checked_bytes(reg_path.parent, classifier, name, "the SVM weights")
        svm = LinearSVM.from_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    return Pretrained(name=name, model=entry["model"], network=network, config=config,
                      accuracy=float(entry["accuracy"]), results=reg_path.parent / entry["results"],
                      protocol=entry["protocol"], classifier=classifier, path=path,
                      sha256=entry["sha256"], svm=svm)


def _encoder(p: Pretrained):
    # the input stage of the model's protocol (None: Kulkarni's network reads grey levels)
    from .coding import Encoder

    if p.model == "kulkarni2018":
        return None
    return getattr(Encoder, p.model)(time_steps=p.config.time_steps)


def _decide(p: Pretrained, inputs) -> dict:
    # the protocol's decisions on its inputs: spike times (Kheradpisheh, Mozafari) or grey
    # images (Kulkarni)
    import torch

    if p.model == "kheradpisheh2018":  # the SVM on the binary features
        return {"decision": p.svm.predict(p.network(inputs))}
    if p.model == "mozafari2019":
        decision, feature, potential = p.network.explain(inputs)
        return {"decision": decision, "feature": feature, "potential": potential}
    from .models import kulkarni2018 as k18

    cfg = p.config
    hidden = k18.compute_hidden_events(inputs, torch.zeros(len(inputs), dtype=torch.long), p.network["kernels"], cfg,
                                       p.network["kernels"].device)
    return {"decision": k18.predict(hidden, p.network["W"], cfg)}


def predict(p: Pretrained, images) -> dict:
    """Decisions of a trained network on grey images, through its protocol's encoder and read-out.

    Math: Kheradpisheh: ``svm(features(encode(x)))``; Mozafari: the class of the conv3 feature
    with the largest potential (``-1``: silent); Kulkarni: the output neuron with most spikes.

    Args:
        p: a :class:`Pretrained` (from :func:`pretrained`).
        images: grey levels 0..255, light digits on black as in MNIST (see
            :func:`snnlab.images.mnist_like` for other pictures).

    Returns:
        ``{"decision"}`` int64; Mozafari also ``"feature"`` (the winning conv3 feature, ``-1``
        when silent) and ``"potential"`` (its potential, float32).

    Shape:
        - images: :math:`(N, 28, 28)`. Every output: :math:`(N,)`.

    Example:
        >>> import torch
        >>> predict(pretrained("mozafari2019_quick"), torch.zeros(1, 28, 28, dtype=torch.uint8))["decision"].tolist()
        [-1]
    """
    from ._checks import check_tensor

    check_tensor(images, "images", 3)
    enc = _encoder(p)
    return _decide(p, images if enc is None else enc.encode_batch(images.cpu()))


def evaluate(p: Pretrained, test_samples: int | None = None, root=None, progress: bool = False) -> dict:
    r"""Accuracy of a trained network on the first MNIST test digits: :math:`100\,\#\{\hat y = y\}/N`.

    The inputs come as in the model's protocol (the same encoder and encoded-spike cache,
    :func:`snnlab.data.encoded_mnist`; Kulkarni: the grey images) and the decisions are
    :func:`predict`'s; on all 10,000 digits the accuracy is the recorded one (``p.accuracy``).

    Args:
        p: a :class:`Pretrained`.
        test_samples: the first ``test_samples`` test digits (``None``: all 10,000).
        root: data root (see :func:`snnlab.data.data_root`).
        progress: a progress bar while encoding.

    Returns:
        ``{"accuracy", "correct", "samples", "seconds"}`` (accuracy in percent).

    Raises:
        ValueError: ``test_samples`` is not in 1..10000.

    Shape:
        - no tensors.

    Example:
        >>> r = evaluate(pretrained("mozafari2019_quick"), test_samples=50)  # doctest: +SKIP
        >>> r["samples"]  # doctest: +SKIP
        50
    """
    import time

    from ._checks import field_int
    from .data import encoded_mnist, load_mnist

    n = 10000 if test_samples is None else field_int(test_samples, "test_samples", 1, 10000)
    t0 = time.perf_counter()
    enc = _encoder(p)
    if enc is None:
        images, labels = load_mnist(False, root)
        inputs, labels = images[:n], labels[:n]
    else:
        inputs, labels = encoded_mnist(enc, False, root, limit=n, device="cpu", progress=progress)
    correct = int((_decide(p, inputs)["decision"] == labels).sum())
    return {"accuracy": 100 * correct / n, "correct": correct, "samples": n, "seconds": time.perf_counter() - t0}
