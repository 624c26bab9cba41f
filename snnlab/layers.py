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

from ._batching import batched_map
from ._checks import (as_batch, check_finite, check_kernel_fits, check_positive_int, check_tensor, field_bool,
                      field_number)
from .coding import times_to_wave
from .competition import pointwise_inhibition

__all__ = [
    "conv_potentials",
    "fire",
    "threshold",
    "pooling",
    "pad",
    "pad_times",
    "block_pool",
    "pool_times",
    "last_slice",
    "layer_times",
    "Convolution",
    "SpikingConv",
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


# --- the same rules on spike times (T = no spike): the fast forms the engine uses -------


def pad_times(times: torch.Tensor, pad: int, time_steps: int) -> torch.Tensor:
    """Pad spike times spatially with "no spike" (``T``); the equivalent of zero-padding a wave.

    Shape:
        - Input: :math:`(B, C, H, W)`. Output: :math:`(B, C, H + 2p, W + 2p)`.

    Example:
        >>> pad_times(torch.zeros(1, 1, 1, 1, dtype=torch.uint8), 1, 15)[0, 0].tolist()
        [[15, 15, 15], [15, 0, 15], [15, 15, 15]]
    """
    return F.pad(times, (pad, pad, pad, pad), value=time_steps) if pad else times


def block_pool(x: torch.Tensor, kernel: int, padding: int = 0, mode: str = "max") -> torch.Tensor:
    r"""Pooling over non-overlapping ``kernel x kernel`` windows (stride = kernel), any dtype.

    :math:`y[i, j] = \max_{0 \le a, b < k} x[ik - p + a, jk - p + b]` (or ``min``), out-of-range
    cells ignored; equal to ``F.max_pool2d(x, k, k, p)`` (floor mode) for ``mode="max"``.

    One elementwise max/min per window cell over strided views: on CPU 2-3x faster than
    ``F.max_pool2d`` on NCHW maps, and it works on bool and uint8 without conversion.

    Args:
        x: maps; kernel: window size and stride; padding: implicit padding, at most
            ``kernel // 2`` (as in ``F.max_pool2d``, so every window holds a real cell).
        mode: ``"max"`` or ``"min"``.

    Shape:
        - Input: :math:`(..., H, W)`. Output: :math:`(..., \lfloor (H + 2p - k)/k \rfloor + 1, ...)`.

    Example:
        >>> block_pool(torch.tensor([[3, 1, 5], [2, 9, 0]], dtype=torch.uint8), 2, 1, "min").tolist()
        [[3, 1], [2, 0]]
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode: expected 'max' or 'min', got {mode!r}")
    if not 0 <= 2 * padding <= kernel:
        raise ValueError(f"padding: expected 0 <= padding <= kernel // 2 = {kernel // 2}, got {padding}")
    h, w = x.shape[-2:]
    oh, ow = (h + 2 * padding - kernel) // kernel + 1, (w + 2 * padding - kernel) // kernel + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel: {kernel} (padding {padding}) does not fit maps of size {h}x{w}")
    # pad (or crop) to exactly oh*k x ow*k; the fill never wins since every window has a real cell
    if x.dtype == torch.bool:
        fill = mode == "min"
    else:
        info = torch.finfo(x.dtype) if x.dtype.is_floating_point else torch.iinfo(x.dtype)
        fill = info.max if mode == "min" else info.min
    x = F.pad(x, (padding, ow * kernel - padding - w, padding, oh * kernel - padding - h), value=fill)
    op = torch.maximum if mode == "max" else torch.minimum
    out = None
    for a in range(kernel):
        for b in range(kernel):
            v = x[..., a::kernel, b::kernel]
            out = v if out is None else op(out, v)
    return out.contiguous()


def pool_times(times: torch.Tensor, kernel: int, stride: int | None = None, padding: int = 0) -> torch.Tensor:
    """Max pooling of a spike-wave, on spike times: the earliest time in each window.

    Shape:
        - Input: :math:`(B, C, H, W)` uint8. Output: :math:`(B, C, H', W')` uint8.

    Example:
        >>> pool_times(torch.tensor([[[[3, 1], [2, 9]]]], dtype=torch.uint8), 2).flatten().tolist()
        [1]
    """
    if stride in (None, kernel):
        return block_pool(times, kernel, padding, "min")
    x = -times.to(torch.int16 if times.device.type == "cpu" else torch.float32)
    if x.dtype == torch.int16:
        x = x.float()  # max_pool2d has no integer kernel on CPU
    return (-F.max_pool2d(x, kernel, stride, padding)).to(times.dtype)


def last_slice(times: torch.Tensor, time_steps: int) -> torch.Tensor:
    """The last time slice of the spike-wave ("spiked at all") as float ``(B, C, H, W)``."""
    return (times < time_steps).float()


def layer_times(input_times: torch.Tensor, weight: torch.Tensor, threshold: float, time_steps: int,
                batch_size: int = 256, progress: bool = False, desc: str = "layer",
                pointwise: bool = False) -> torch.Tensor:
    r"""Output spike times of a frozen IF layer, batched.

    :math:`t_{out} = T - \#\{t : V[t] > \theta\}` with :math:`V = W \star S`.

    Args:
        input_times: padded input spike times, uint8.
        weight: ``(F, C, kh, kw)``.
        threshold: firing threshold.
        time_steps: ``T``.
        batch_size: samples per convolution.
        progress: show a progress bar.
        desc: the progress bar's label.
        pointwise: point-wise inhibition of the output
            (:func:`snnlab.competition.pointwise_inhibition`: at each location only the
            earliest feature fires, the strongest among equally early ones); ``False``: no
            competition.

    Shape:
        - input_times: :math:`(N, C, H, W)`. Output: :math:`(N, F, H', W')` uint8 on the input's device.

    Example:
        >>> t = torch.zeros(2, 1, 3, 3, dtype=torch.uint8)
        >>> layer_times(t, torch.ones(1, 1, 3, 3), 8.5, 4).flatten().tolist()
        [0, 0]
        >>> w = torch.stack([torch.ones(1, 3, 3), torch.full((1, 3, 3), 2.0)])  # 2 features
        >>> layer_times(t, w, 8.5, 4).flatten().tolist(), layer_times(t, w, 8.5, 4, pointwise=True).flatten().tolist()
        ([0, 0, 0, 0], [4, 0, 4, 0])
    """
    dev = weight.device
    field_bool(pointwise, "pointwise")

    def batch(a, b):
        wave = times_to_wave(input_times[a:b].to(dev), time_steps)
        pot = F.conv2d(wave.flatten(0, 1), weight)
        pot = pot.view(b - a, time_steps, *pot.shape[1:])
        fired = pot > threshold
        if pointwise:
            fired = pointwise_inhibition(torch.where(fired, pot, 0.0)) != 0
        return (time_steps - fired.sum(1, dtype=torch.uint8)).to(torch.uint8).to(input_times.device)

    out = batched_map(batch, len(input_times), batch_size, progress, desc)
    return torch.cat(out) if out else torch.empty(0, weight.shape[0], dtype=torch.uint8)


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


class SpikingConv(Convolution):
    r"""A convolutional layer of non-leaky IF neurons that knows how it fires and competes.

    Potentials :math:`V[t] = W \star \mathrm{pad}_p(S[t])`, spikes :math:`O[t] = [V[t] > \theta]`;
    when it learns (:class:`snnlab.learners.STDP`), point-wise inhibition (optional) and k-WTA
    with radius :math:`r` pick the winners. Called on a spike-wave it returns the potentials
    (the reference computation, as :class:`Convolution`, padding included); the fast forms
    work on spike times ``(B, C, H, W)`` uint8, ``T`` meaning "no spike":

    - :meth:`times`: output spike times of the frozen layer (no competition), batched;
    - :meth:`final`: which neurons fire at all, from which inputs fire at all (potentials
      never decrease, so only the last time slice is convolved: 1/T of the work).

    Both equal the reference on waves (tested).

    Args:
        in_channels, out_channels, kernel_size: as :class:`Convolution`.
        threshold: firing threshold :math:`\theta`; ``None`` for a decision layer (no
            threshold: every neuron with a positive potential fires at the last step).
        k: winners per sample when the layer learns.
        radius: lateral inhibition radius of k-WTA.
        pointwise: point-wise inhibition before k-WTA.
        padding: zero padding ("no spike") of the input on each side.
        time_steps: ``T`` of the spike times the layer reads.
        weight_mean, weight_std, generator: the initial weights (see :class:`Convolution`).

    Shape:
        - forward: wave :math:`(B, T, C_{in}, H, W)` -> potentials :math:`(B, T, C_{out}, H', W')`,
          :math:`H' = H + 2p - k_h + 1`.
        - times: :math:`(B, C_{in}, H, W)` uint8 -> :math:`(B, C_{out}, H', W')` uint8.
        - final: :math:`(B, C_{in}, H, W)` 0/1 -> :math:`(B, C_{out}, H', W')` bool.

    Example:
        >>> conv = SpikingConv(2, 4, 3, threshold=2.0, k=2, padding=1, weight_std=0.0)
        >>> t = torch.full((1, 2, 5, 5), 15, dtype=torch.uint8); t[0, :, 2, 2] = 3
        >>> conv.times(t)[0, 0, 1:4, 1:4].tolist()
        [[15, 15, 15], [15, 15, 15], [15, 15, 15]]
        >>> conv.final(t < 15).sum().item()
        0
        >>> t[0, :, 2, 3] = 5
        >>> conv.times(t)[0, 0, 2, 2:4].tolist(), conv.final(t < 15).sum().item()
        ([5, 5], 24)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, threshold: float | None = None,
                 k: int = 1, radius: int = 0, pointwise: bool = True, padding: int = 0, time_steps: int = 15,
                 weight_mean: float = 0.8, weight_std: float = 0.05, generator: torch.Generator | None = None):
        super().__init__(in_channels, out_channels, kernel_size, weight_mean, weight_std, generator)
        if threshold is not None:
            field_number(threshold, "threshold")
        self.threshold = None if threshold is None else float(threshold)
        self.k = check_positive_int(k, "k")
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            raise ValueError(f"radius: expected a non-negative int, got {radius!r}")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding: expected a non-negative int, got {padding!r}")
        if not isinstance(pointwise, bool):
            raise TypeError(f"pointwise: expected True or False, got {pointwise!r}")
        self.radius, self.padding, self.pointwise = radius, padding, pointwise
        self.time_steps = check_positive_int(time_steps, "time_steps", 255)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Potentials of the zero-padded spike-wave (the reference computation)."""
        return conv_potentials(pad(wave, self.padding) if self.padding else wave, self.weight)

    def times(self, input_times: torch.Tensor, batch_size: int = 256, progress: bool = False,
              pointwise: bool = False) -> torch.Tensor:
        r"""Output spike times :math:`T - \#\{t : V[t] > \theta\}` of the frozen layer, batched
        (``pointwise``: with point-wise inhibition of the output, see :func:`layer_times`)."""
        if self.threshold is None:
            raise ValueError("threshold: a decision layer (threshold None) has no spike times; use final() or "
                             "snnlab.training.decide")
        return layer_times(pad_times(input_times, self.padding, self.time_steps), self.weight, self.threshold,
                           self.time_steps, batch_size, progress, desc=f"{type(self).__name__} {self.extra_repr()}",
                           pointwise=pointwise)

    def final(self, fired: torch.Tensor, threshold: float | None = None, size: tuple | None = None) -> torch.Tensor:
        """Which neurons fire at all, from which inputs fire at all (``threshold``: another
        threshold than the layer's, e.g. a frozen layer read at a higher one; ``size``: only the
        top-left ``(h, w)`` outputs, e.g. those a following pooling reads; a crop gives the
        same bits as the whole map)."""
        theta = self.threshold if threshold is None else float(threshold)
        x = fired.to(self.weight.dtype)
        x = F.pad(x, (self.padding,) * 4) if self.padding else x
        if size is not None:
            kh, kw = self.kernel_size
            x = x[..., :size[0] + kh - 1, :size[1] + kw - 1]
        return F.conv2d(x, self.weight) > (0.0 if theta is None else theta)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, threshold={self.threshold}, k={self.k}, radius={self.radius}, "
                f"pointwise={self.pointwise}, padding={self.padding}, time_steps={self.time_steps}")


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
