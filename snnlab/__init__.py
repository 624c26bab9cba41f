"""snnlab: convolutional spiking neural networks with rank-order coding, STDP and R-STDP.

``import snnlab as sl`` gives the building blocks by name (``sl.Encoder``, ``sl.SpikingConv``,
``sl.STDP``, ``sl.RSTDP``, ``sl.pool_times``, ...) and the modules (``sl.data``, ``sl.models``).

Modules (functional core + ``nn.Module`` layers and learners):

- :mod:`snnlab.retina` -- DoG/Gabor kernels, filter bank, local normalisation, lateral inhibition
- :mod:`snnlab.coding` -- rank-order coding, spike times <-> spike-waves, :class:`~snnlab.coding.Encoder`
- :mod:`snnlab.layers` -- IF convolution, fire/threshold, pooling, pad
- :mod:`snnlab.competition` -- point-wise inhibition, k-winners-take-all, feature inhibition
- :mod:`snnlab.learning` -- the STDP and R-STDP rules, learning-rate schedules
- :mod:`snnlab.learners` -- STDP and R-STDP learners attached to a layer, on the fast exact engine
- :mod:`snnlab.training` -- the engine: exact chunked and batched training loops, decisions
- :mod:`snnlab.data` -- offline, verified MNIST and encoded caches
- :mod:`snnlab.pretrained` -- trained networks by name (:func:`pretrained`), verified by SHA-256
"""
import os

__version__ = "0.1.0"

# the function shadows its module as an attribute of the package (``snnlab.pretrained(name)``);
# the module stays importable as ``importlib.import_module("snnlab.pretrained")``
from .pretrained import Pretrained, pretrained  # noqa: E402  (torch is imported on first call)

#: the curated namespace: ``import snnlab as sl; sl.Encoder, sl.SpikingConv, sl.STDP, ...``,
#: each imported from its module on first use, so ``import snnlab`` stays light
_EXPORTS = {
    "Encoder": "coding", "intensity_to_latency": "coding", "times_to_wave": "coding", "wave_to_times": "coding",
    "FilterBank": "retina", "dog_kernel": "retina", "gabor_kernel": "retina", "local_normalization": "retina",
    "Convolution": "layers", "SpikingConv": "layers", "Pooling": "layers", "conv_potentials": "layers",
    "fire": "layers", "pooling": "layers", "pad": "layers", "pad_times": "layers", "pool_times": "layers",
    "block_pool": "layers", "layer_times": "layers",
    "pointwise_inhibition": "competition", "k_winners": "competition", "inhibit_times": "competition",
    "STDP": "learners", "RSTDP": "learners",
    "RateDoubling": "learning", "adaptive_rstdp_rates": "learning", "convergence": "learning",
    "LinearSVM": "svm", "select_svm_c": "svm",
}
_SUBMODULES = ("retina", "coding", "layers", "competition", "learning", "learners", "training", "neurons", "svm", "metrics",
               "data", "io", "runs", "integrity", "models", "analysis", "viz", "widgets", "cli")

__all__ = ["quick_mode", "default_device", "pretrained", "Pretrained", *_EXPORTS]


def __getattr__(name: str):
    import importlib

    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'snnlab' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


def quick_mode() -> bool:
    """True when ``SNNLAB_QUICK`` is set to a true value (notebooks then use fewer samples)."""
    return os.environ.get("SNNLAB_QUICK", "").strip().lower() in ("1", "true", "yes", "on")


def default_device(device=None):
    """``device`` as a ``torch.device``: ``None`` or ``"auto"`` pick CUDA when available;
    otherwise ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (the devices snnlab runs and is tested on).

    Args:
        device: ``None``, ``"auto"``, a device string or a ``torch.device``.

    Shape:
        - no tensors.

    Raises:
        ValueError: another device type, or a CUDA device this machine does not have.
        TypeError: ``device`` is neither a str nor a ``torch.device``.

    Example:
        >>> default_device("cpu")
        device(type='cpu')
        >>> default_device("mps")
        Traceback (most recent call last):
        ...
        ValueError: device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got 'mps'
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device: expected a str or torch.device, got {type(device).__name__}")
    expected = f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {str(device)!r}"
    try:
        dev = torch.device(device)
    except RuntimeError:  # torch's message for an unknown string is a page long
        raise ValueError(expected) from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(expected)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {str(device)!r} was requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device: {str(device)!r} was requested but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return dev
