"""snnlab: convolutional spiking neural networks with rank-order coding, STDP and R-STDP.

Modules (functional core + thin ``nn.Module`` wrappers):

- :mod:`snnlab.retina` -- DoG/Gabor kernels, filter bank, local normalisation, lateral inhibition
- :mod:`snnlab.coding` -- rank-order coding, spike times <-> spike-waves, :class:`~snnlab.coding.Encoder`
- :mod:`snnlab.layers` -- IF convolution, fire/threshold, pooling, pad
- :mod:`snnlab.competition` -- point-wise inhibition, k-winners-take-all, feature inhibition
- :mod:`snnlab.learning` -- STDP, anti-STDP, R-STDP, learning-rate schedules
- :mod:`snnlab.data` -- offline, verified MNIST and encoded caches
- :mod:`snnlab.pretrained` -- trained networks by name (:func:`pretrained`), verified by SHA-256
"""
import os

__version__ = "0.1.0"

# the function shadows its module as an attribute of the package (``snnlab.pretrained(name)``);
# the module stays importable as ``importlib.import_module("snnlab.pretrained")``
from .pretrained import Pretrained, pretrained  # noqa: E402  (torch is imported on first call)

__all__ = ["quick_mode", "default_device", "pretrained", "Pretrained"]


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
