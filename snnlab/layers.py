"""Spiking convolution (non-leaky integrate-and-fire), firing, pooling and padding.

Time is folded into the batch axis: because spike-waves are cumulative, one convolution
over all time slices yields the cumulative membrane potentials at every time step.
All functions take the batched form ``(B, T, C, H, W)``; the single-sample form
``(T, C, H, W)`` is accepted too and returned without the batch axis.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import as_batch, check_finite, check_kernel_fits, check_positive_int, check_tensor, field_number

__all__ = [
    "conv_potentials",
    "fire",
    "threshold",
    "pooling",
    "pad",
    "Convolution",
    "Pooling",
]


def _pair(v, name):
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return tuple(v)
    raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}")


def conv_potentials(wave: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""Cumulative potentials of IF neurons: :math:`V[t] = W \star S[t]` (valid, stride 1, no bias).

    Args:
        wave: input spike-wave: 0/1 values (float, uint8 or bool).
        weight: kernels.

    Raises:
        ValueError: ``wave`` holds values other than 0 and 1 (NaN, negative, graded), or
            ``weight`` non-finite ones.

    Shape:
        - wave: :math:`(B, T, C_{in}, H, W)` or :math:`(T, C_{in}, H, W)`
        - weight: :math:`(C_{out}, C_{in}, k_h, k_w)`
        - Output: :math:`(B, T, C_{out}, H-k_h+1, W-k_w+1)` (no ``B`` for a single sample).

    Example:
        >>> conv_potentials(torch.ones(3, 1, 5, 5), torch.ones(1, 1, 3, 3))[:, 0, 0, 0]
        tensor([9., 9., 9.])
    """
    wb, single = as_batch(wave, "wave", 5)
    check_tensor(weight, "weight", 4)
    if wb.shape[2] != weight.shape[1]:
        raise ValueError(
            f"wave: has {wb.shape[2]} channels but weight expects {weight.shape[1]} "
            f"(weight shape {tuple(weight.shape)})"
        )
    check_kernel_fits(weight.shape[-2:], wb.shape[-2:], "weight")
    if wb.dtype != torch.bool and not bool(((wb == 0) | (wb == 1)).all()):
        raise ValueError("wave: expected a spike-wave of 0/1 values (no NaN, negative or graded values)")
    check_finite(weight, "weight")
    b, t = wb.shape[:2]
    x = wb.reshape(b * t, *wb.shape[2:])
    if x.dtype != weight.dtype:
        x = x.to(weight.dtype)
    out = F.conv2d(x, weight)
    out = out.reshape(b, t, *out.shape[1:])
    return out[0] if single else out


def threshold(potentials: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    r"""Thresholded potentials: :math:`V' = V\,[V > \theta]`; ``None`` keeps only the last step.

    Args:
        potentials: potentials.
        threshold: firing threshold (strict), or ``None`` for an infinite threshold that
            lets every neuron fire at the last time step (decision layers).

    Shape:
        - Input: :math:`(B, T, C, H, W)` or :math:`(T, C, H, W)`.
        - Output: same shape.

    Example:
        >>> threshold(torch.tensor([[[[1.0, 2.0, 3.0]]]]), 2.0)
        tensor([[[[0., 0., 3.]]]])
    """
    check_tensor(potentials, "potentials", (4, 5), floating=True)
    if threshold is None:
        out = torch.zeros_like(potentials)
        out[..., -1, :, :, :] = potentials[..., -1, :, :, :]
        return out
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold: expected a number or None, got {threshold!r}")
    return F.threshold(potentials, float(threshold), 0.0)


def fire(potentials: torch.Tensor, threshold_value: float | None = None):
    r"""Spike-wave and thresholded potentials: :math:`S[t] = [V[t] > \theta]`.

    A neuron spikes at the first time step its potential is strictly greater than the
    threshold (and, potentials being non-decreasing, keeps spiking). With ``None`` only
    the last time step is kept: every neuron with positive final potential spikes at ``T-1``.

    Args:
        potentials: potentials.
        threshold_value: firing threshold or ``None``.

    Returns:
        ``(spikes, thresholded)``, both float with the input's shape.

    Shape:
        - Input: :math:`(B, T, C, H, W)` or :math:`(T, C, H, W)`.
        - Output: two tensors of the same shape.

    Example:
        >>> s, v = fire(torch.tensor([[[[1.0]]], [[[3.0]]]]), 2.0)
        >>> s.flatten().tolist(), v.flatten().tolist()
        ([0.0, 1.0], [0.0, 3.0])
    """
    thresholded = threshold(potentials, threshold_value)
    return thresholded.sign(), thresholded


def _fold_time(x, name):
    check_tensor(x, name, (4, 5))
    lead = x.shape[:-3]
    return x.reshape(-1, *x.shape[-3:]), lead


def pooling(x: torch.Tensor, kernel_size, stride=None, padding=0) -> torch.Tensor:
    r"""2-D max pooling of each time slice: the earliest spike (or the largest potential)
    in each window, :math:`y[t] = \max_{window} x[t]`.

    Args:
        x: spike-wave or potentials.
        kernel_size: window size (int or pair).
        stride: stride (default: ``kernel_size``).
        padding: implicit padding (with :math:`-\infty`, so it never wins).

    Shape:
        - Input: :math:`(B, T, C, H, W)` or :math:`(T, C, H, W)`.
        - Output: :math:`(B, T, C, H', W')` or :math:`(T, C, H', W')`.

    Example:
        >>> w = torch.zeros(2, 1, 2, 2); w[1, 0, 1, 1] = 1; w[:, 0, 0, 0] = 1
        >>> pooling(w, 2)[:, 0, 0, 0]
        tensor([1., 1.])
    """
    flat, lead = _fold_time(x, "x")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    p = _pair(padding, "padding")
    h, w = flat.shape[-2] + 2 * p[0], flat.shape[-1] + 2 * p[1]
    check_kernel_fits(k, (h, w))
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"padding: must be at most half of kernel_size {k}, got {p}")
    out = F.max_pool2d(flat, k, s, p)
    return out.reshape(*lead, *out.shape[1:])


def pad(x: torch.Tensor, padding, value: float = 0.0) -> torch.Tensor:
    r"""Pad the two spatial axes: ``padding = (left, right, top, bottom)`` or one int for all.

    Shape:
        - Input: :math:`(..., H, W)`.
        - Output: :math:`(..., H + top + bottom, W + left + right)`.

    Example:
        >>> pad(torch.ones(1, 1, 2, 2), 1).shape
        torch.Size([1, 1, 4, 4])
    """
    check_tensor(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x: expected at least 2 dimensions (H, W), got shape {tuple(x.shape)}")
    if isinstance(padding, int) and not isinstance(padding, bool):
        padding = (padding,) * 4
    if (not isinstance(padding, (tuple, list)) or len(padding) != 4
            or not all(isinstance(p, int) and p >= 0 for p in padding)):
        raise ValueError(f"padding: expected a non-negative int or 4 of them (l, r, t, b), got {padding!r}")
    return F.pad(x, tuple(padding), value=value)


class Convolution(nn.Module):
    r"""Spiking convolution of non-leaky IF neurons (no bias, no gradient).

    Weights are drawn from :math:`\mathcal N(\mu, \sigma^2)` and change only through
    explicit learning rules (:mod:`snnlab.learning`).

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: int or pair.
        weight_mean: :math:`\mu` of the initial weights.
        weight_std: :math:`\sigma` of the initial weights.
        generator: optional ``torch.Generator`` for reproducible initial weights.

    Shape:
        - Input: :math:`(B, T, C_{in}, H, W)` or :math:`(T, C_{in}, H, W)` spike-wave.
        - Output: potentials :math:`(B, T, C_{out}, H', W')` or :math:`(T, C_{out}, H', W')`.

    Example:
        >>> conv = Convolution(2, 4, 5)
        >>> conv(torch.ones(3, 2, 8, 8)).shape
        torch.Size([3, 4, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, weight_mean: float = 0.8,
                 weight_std: float = 0.02, generator: torch.Generator | None = None):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        if min(self.kernel_size) < 1:
            raise ValueError(f"kernel_size: expected positive sizes, got {kernel_size!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size),
                                   requires_grad=False)
        self.reset_weight(weight_mean, weight_std, generator)

    def reset_weight(self, weight_mean: float = 0.8, weight_std: float = 0.02, generator=None) -> None:
        """Redraw the weights from :math:`\\mathcal N(\\mu, \\sigma^2)` (``mu`` finite, ``sigma`` finite and ``>= 0``)."""
        field_number(weight_mean, "weight_mean")
        field_number(weight_std, "weight_std", 0)
        with torch.no_grad():
            self.weight.normal_(weight_mean, weight_std, generator=generator)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return conv_potentials(wave, self.weight)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class Pooling(nn.Module):
    """Module form of :func:`pooling` (earliest spike in each window).

    Example:
        >>> Pooling(2)(torch.ones(3, 1, 4, 4)).shape
        torch.Size([3, 1, 2, 2])
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return pooling(x, self.kernel_size, self.stride, self.padding)
