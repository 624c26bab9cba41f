"""Rank-order (time-to-first-spike) coding and spike-time / spike-wave conversions.

A *spike-wave* is cumulative: ``S[..., t, c, y, x] = 1`` for every ``t >= t_spike``.
*Spike times* hold ``t_spike`` per neuron, with ``T`` meaning "never spikes"; as uint8 they
cost one byte per neuron, which is what the caches store.
"""
from __future__ import annotations

import functools
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn as nn

from . import _coding_kernels
from ._checks import as_batch, check_finite, check_nonnegative_int, check_positive_int, check_tensor
from .retina import FilterBank, _local_normalization, dog_kernel

__all__ = [
    "intensity_to_latency",
    "times_to_wave",
    "wave_to_times",
    "Encoder",
]


def intensity_to_latency(intensities: torch.Tensor, time_steps: int) -> torch.Tensor:
    r"""Rank-order coding: stronger intensities spike earlier.

    Per sample, the non-zero intensities (all channels together) are sorted in decreasing
    order (stable: ties keep index order) and cut into ``T`` consecutive bins of
    ``nnz // T`` values; values in bin ``t`` spike at time ``t`` and the ``nnz mod T``
    weakest never spike. With ``nnz < T`` the values spike one per bin, in order; a blank
    sample never spikes. :math:`t(x) = \lfloor \mathrm{rank}(x) / \lfloor nnz/T \rfloor \rfloor`.

    Args:
        intensities: non-negative intensities (any number of channels).
        time_steps: number of time bins ``T`` (1..255).

    Returns:
        Spike times as uint8, ``T`` for "no spike".

    Shape:
        - Input: :math:`(B, C, H, W)` or :math:`(C, H, W)`.
        - Output: same shape, uint8.

    Example:
        >>> x = torch.tensor([[[4., 3.], [2., 1.]]])
        >>> intensity_to_latency(x, 2)
        tensor([[[0, 0],
                 [1, 1]]], dtype=torch.uint8)
    """
    xb, single = as_batch(intensities, "intensities", 4)
    check_positive_int(time_steps, "time_steps", maximum=255)
    if not xb.is_floating_point():
        xb = xb.float()
    check_finite(xb, "intensities")
    b = xb.shape[0]
    flat = xb.reshape(b, -1)
    if flat.device.type == "cpu" and flat.dtype == torch.float32 and _coding_kernels.available():
        src = flat.detach().contiguous().numpy()
        times = torch.full(flat.shape, time_steps, dtype=torch.uint8)
        dst = times.numpy()
        _over_threads(lambda a, z: _coding_kernels.rank_order(src[a:z], time_steps, dst[a:z]), b)
        times = times.reshape(xb.shape)
        return times[0] if single else times
    n = flat.shape[1]
    nonzero = flat != 0
    nnz = nonzero.sum(1, keepdim=True)
    if flat.dtype == torch.float32:
        # Zeros never spike and sort after every positive value, so only the non-zero values
        # are sorted, packed to the left of each row in index order (a stable sort then keeps
        # the tie order), with INT32_MIN (-0.0, never "non-zero") as padding at the end.
        # Finite floats >= 0 order like their int32 bit patterns, and int32 sorts faster;
        # negatives sort after the positives either way and never spike.
        rows, cols = nonzero.nonzero(as_tuple=True)
        width = max(int(nnz.max()) if b else 0, 1)
        pos = torch.arange(len(rows), device=xb.device) - (nnz.view(-1).cumsum(0) - nnz.view(-1))[rows]
        packed = torch.full((b, width), -2 ** 31, dtype=torch.int32, device=xb.device)
        packed[rows, pos] = flat.view(torch.int32)[rows, cols]
        col_of = torch.full((b, width), n, dtype=torch.int64, device=xb.device)  # n: a dummy column
        col_of[rows, pos] = cols
        bits, order = torch.sort(packed, dim=1, descending=True, stable=True)
        values, order = bits.view(torch.float32), col_of.gather(1, order)
    else:
        values, order = torch.sort(flat, dim=1, descending=True, stable=True)
    bin_size = torch.clamp(nnz // time_steps, min=1)
    limit = torch.where(nnz >= time_steps, bin_size * time_steps, nnz)
    rank = torch.arange(values.shape[1], device=xb.device).unsqueeze(0)
    # only positive values can spike (the reference spikes on the sign of the binned value)
    spikes = (rank < limit) & (values > 0)
    # rank // bin_size in float32: exact for ranks below 2**24, and much faster than int64
    bins = torch.floor(rank.float() / bin_size.float()).clamp_max_(time_steps).to(torch.uint8)
    t_sorted = torch.where(spikes, bins, torch.tensor(time_steps, dtype=torch.uint8, device=xb.device))
    times = torch.full((b, n + 1), time_steps, dtype=torch.uint8, device=xb.device)
    times = times.scatter_(1, order, t_sorted)[:, :n].reshape(xb.shape)
    return times[0] if single else times


def _check_pixels(images: torch.Tensor, name: str = "images") -> None:
    # the encoder's contract: grey levels 0..255 (uint8, other ints or floats); the [0, 1]
    # floats of torchvision's ToTensor, bool masks and wrapped-around int8 would encode to
    # (almost) no spikes without a word, so they are refused with the conversion to use
    if images.dtype == torch.bool:
        raise TypeError(f"{name}: expected grey levels 0..255 (uint8 or float), got a bool tensor; "
                        "convert with images.to(torch.uint8) * 255")
    if images.dtype == torch.uint8 or images.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(images.detach()))
    if lo < 0 or hi > 255:
        wrapped = " (int8 holds 128..255 as negative numbers: use uint8)" if images.dtype == torch.int8 else ""
        raise ValueError(f"{name}: expected grey levels in 0..255, got values from {lo:g} to {hi:g}{wrapped}")
    if images.is_floating_point() and 0 < hi <= 1:
        raise ValueError(f"{name}: float pixels all in [0, 1] (torchvision's ToTensor convention) encode to almost "
                         "no spikes; pass grey levels 0..255, e.g. (images * 255).round().to(torch.uint8)")


def _pixels(images: torch.Tensor) -> torch.Tensor:
    # float32 pixels as the reference sees them: it goes through ToTensor (x/255) and back
    # (*255), so keep that rounding
    return images.to(torch.float32).div(255).mul(255)


def _probe_images(h: int, w: int) -> torch.Tensor:
    # digit-like blobs of random grey levels, one dense image and a blank one
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(16, h, w)
    for i in range(14):
        y0, x0 = torch.randint(0, max(h // 2, 1), (2,), generator=gen).tolist()
        x[i, y0:y0 + max(h // 2, 1), x0:x0 + max(w // 3, 1)] = torch.randint(0, 256, (1,), generator=gen).float()
        x[i] += torch.randint(0, 256, (h, w), generator=gen).float() * (torch.rand(h, w, generator=gen) < 0.2)
    x[14] = torch.randint(0, 256, (h, w), generator=gen).float()
    return x.clamp_(0, 255)


@functools.lru_cache(maxsize=64)
def _agrees(key: tuple, h: int, w: int) -> bool:
    dogs, padding, threshold, norm_radius, time_steps = key
    enc = Encoder([tuple(d) for d in dogs], padding, threshold, norm_radius, time_steps)
    probe = _probe_images(h, w)
    _, fast = enc._encode_compiled(probe, keep_intensities=True)
    ok = torch.equal(fast.view(torch.int32), enc.intensities(probe).view(torch.int32))
    if not ok:
        warnings.warn("Encoder: the compiled encoder does not reproduce torch's convolution bits on this "
                      "machine; using the torch path (same results, slower)", RuntimeWarning, stacklevel=3)
    return ok


def _compiled_agrees(enc: "Encoder", h: int, w: int) -> bool:
    # whether the compiled encoder gives torch's intensities, bit for bit, for this setting
    # and image size (checked once on probe images, then remembered)
    cfg = enc.config()
    key = (tuple(tuple(d) for d in cfg["dogs"]), cfg["padding"], cfg["threshold"], cfg["norm_radius"],
           cfg["time_steps"])
    return _agrees(key, int(h), int(w))


def _over_threads(run, b: int, chunk: int = 64) -> list:
    # run(a, z) on consecutive chunks of a batch of b samples, split over torch's thread count
    # (the compiled kernels release the GIL; numba's own thread pool would compete with torch's)
    starts = range(0, b, chunk)
    stops = [min(a + chunk, b) for a in starts]
    if len(starts) <= 1 or torch.get_num_threads() == 1:
        return [run(a, z) for a, z in zip(starts, stops)]
    with ThreadPoolExecutor(min(torch.get_num_threads(), len(starts))) as pool:
        return list(pool.map(run, starts, stops))


def times_to_wave(times: torch.Tensor, time_steps: int, dtype=torch.float32) -> torch.Tensor:
    r"""Spike times to a cumulative spike-wave: :math:`S[t] = [t_{spike} \le t]`.

    Args:
        times: spike times, any value ``>= time_steps`` meaning "no spike".
        time_steps: ``T``.
        dtype: dtype of the result (float for arithmetic, bool/uint8 for storage).

    Shape:
        - Input: :math:`(B, C, H, W)` or :math:`(C, H, W)`.
        - Output: :math:`(B, T, C, H, W)` or :math:`(T, C, H, W)`.

    Example:
        >>> times_to_wave(torch.tensor([[[0, 2]]]), 3)[:, 0, 0]
        tensor([[1., 0.],
                [1., 0.],
                [1., 1.]])
    """
    tb, single = as_batch(times, "times", 4)
    check_positive_int(time_steps, "time_steps")
    if tb.is_floating_point():
        check_finite(tb, "times")
    t = torch.arange(time_steps, device=tb.device).view(1, -1, 1, 1, 1)
    wave = (tb.unsqueeze(1).to(torch.int64) <= t).to(dtype)
    return wave[0] if single else wave


def wave_to_times(wave: torch.Tensor, check: bool = True) -> torch.Tensor:
    r"""Cumulative spike-wave to spike times: :math:`t_{spike} = T - \sum_t S[t]`.

    Args:
        wave: cumulative spike-wave (0/1 values).
        check: verify the wave is binary and non-decreasing in time (costs one pass).

    Returns:
        uint8 spike times, ``T`` for "no spike" (``T`` must be at most 255).

    Shape:
        - Input: :math:`(B, T, C, H, W)` or :math:`(T, C, H, W)`.
        - Output: :math:`(B, C, H, W)` or :math:`(C, H, W)`.

    Example:
        >>> w = times_to_wave(torch.tensor([[[0, 2, 3]]]), 3)
        >>> wave_to_times(w)
        tensor([[[0, 2, 3]]], dtype=torch.uint8)
    """
    wb, single = as_batch(wave, "wave", 5)
    t_steps = wb.shape[1]
    if t_steps > 255:
        raise ValueError(f"wave: at most 255 time steps fit uint8 spike times, got {t_steps}")
    if check:
        if not bool(((wb == 0) | (wb == 1)).all()):
            raise ValueError("wave: expected a binary (0/1) spike-wave")
        if t_steps > 1 and not bool((wb[:, 1:] >= wb[:, :-1]).all()):
            raise ValueError("wave: not cumulative (a neuron stops spiking at some time step)")
    times = t_steps - wb.to(torch.int16).sum(1)
    times = times.to(torch.uint8)
    return times[0] if single else times


#: DoG kernels of the two reproduced protocols (size, sigma1, sigma2).
MOZAFARI2019_DOGS = [(3, 3 / 9, 6 / 9), (3, 6 / 9, 3 / 9), (7, 7 / 9, 14 / 9),
                     (7, 14 / 9, 7 / 9), (13, 13 / 9, 26 / 9), (13, 26 / 9, 13 / 9)]
KHERADPISHEH2018_DOGS = [(7, 1, 2), (7, 2, 1)]


class Encoder(nn.Module):
    r"""Image -> spike times: filter bank, local normalisation, rank-order coding.

    Usable as a torchvision ``transform`` (PIL image or tensor in, one sample out) and on
    whole batches on any device (:meth:`encode_batch`). Pixels are grey levels 0..255
    (uint8, other integers or floats); values outside, bool images and float images whose
    largest value is at most 1 (torchvision's ``ToTensor`` range) are refused with a
    ``ValueError``/``TypeError`` that says how to convert.

    Args:
        dogs: list of ``(size, sigma1, sigma2)`` DoG kernels.
        padding: filter padding.
        threshold: filter threshold (values below become 0).
        norm_radius: radius of :func:`~snnlab.retina.local_normalization` (``None``: skip).
        time_steps: ``T``.
        output: ``"times"`` (uint8 spike times) or ``"wave"`` (float spike-wave).

    Shape:
        - Input: :math:`(B, H, W)`, :math:`(B, 1, H, W)`, :math:`(H, W)`, or a PIL image.
        - Output: :math:`(B, C, H, W)` times or :math:`(B, T, C, H, W)` wave (no ``B`` for one image).

    Example:
        >>> enc = Encoder.kheradpisheh2018()
        >>> enc(torch.zeros(28, 28, dtype=torch.uint8)).shape
        torch.Size([2, 28, 28])
    """

    def __init__(self, dogs, padding: int, threshold: float = 50.0, norm_radius: int | None = 8,
                 time_steps: int = 15, output: str = "times"):
        super().__init__()
        if output not in ("times", "wave"):
            raise ValueError(f"output: expected 'times' or 'wave', got {output!r}")
        self.dogs = [tuple(float(v) if i else int(v) for i, v in enumerate(d)) for d in dogs]
        self.bank = FilterBank([dog_kernel(*d) for d in self.dogs], padding=padding, threshold=threshold)
        self.norm_radius = None if norm_radius is None else check_nonnegative_int(norm_radius, "norm_radius")
        self.time_steps = check_positive_int(time_steps, "time_steps", maximum=255)
        self.output = output

    @classmethod
    def mozafari2019(cls, time_steps: int = 15, **kw) -> "Encoder":
        """The 6-DoG input stage of Mozafari et al. 2019 (padding 6, threshold 50, radius 8)."""
        return cls(MOZAFARI2019_DOGS, padding=6, time_steps=time_steps, **kw)

    @classmethod
    def kheradpisheh2018(cls, time_steps: int = 15, **kw) -> "Encoder":
        """The 2-DoG input stage of Kheradpisheh et al. 2018 (padding 3, threshold 50, radius 8)."""
        return cls(KHERADPISHEH2018_DOGS, padding=3, time_steps=time_steps, **kw)

    def config(self) -> dict:
        """Parameters that determine the encoding (the key of encoded caches)."""
        return {"dogs": self.dogs, "padding": self.bank.padding, "threshold": self.bank.threshold,
                "norm_radius": self.norm_radius, "time_steps": self.time_steps, "version": 1}

    def intensities(self, images: torch.Tensor) -> torch.Tensor:
        """Filtered and normalised intensities, ``(B, C, H, W)`` float32."""
        check_tensor(images, "images", (3, 4))
        _check_pixels(images)
        x = self.bank(_pixels(images))
        if self.norm_radius is not None:
            # the bank's input was checked finite; intensity_to_latency checks its output
            x = _local_normalization(x, self.norm_radius)
        return x

    def encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Encode a batch of images ``(B, H, W)`` or ``(B, 1, H, W)`` into uint8 spike times.

        On CPU (with numba) one compiled pass per image does all stages. It is used only where
        it reproduces torch's intensities bit for bit, checked once per encoder setting and
        image size on probe images (it does on x86 CPUs with oneDNN); the spike times are then
        those of :meth:`intensities` followed by :func:`intensity_to_latency`.
        """
        check_tensor(images, "images", (3, 4))
        _check_pixels(images)
        if images.device.type == "cpu" and _coding_kernels.available() and self.bank.threshold is not None \
                and not self.bank.use_abs and _compiled_agrees(self, *images.shape[-2:]):
            return self._encode_compiled(images)[0]
        return intensity_to_latency(self.intensities(images), self.time_steps)

    def _encode_compiled(self, images: torch.Tensor, keep_intensities: bool = False):
        # (spike times (B, C, H', W') uint8, intensities (B, C, H', W') float32 or None)
        x = self.bank.check_input(_pixels(images.detach()))[:, 0].contiguous()
        b, c, k = x.shape[0], self.bank.weight.shape[0], self.bank.kernel_size
        p = self.bank.padding
        h, w = x.shape[1] + 2 * p - k + 1, x.shape[2] + 2 * p - k + 1
        src, weight = x.numpy(), self.bank.weight[:, 0].contiguous().numpy()
        times = torch.full((b, c * h * w), self.time_steps, dtype=torch.uint8)
        values = torch.zeros((b, c * h * w) if keep_intensities else (0, 0))
        dst, vals = times.numpy(), values.numpy()
        radius = -1 if self.norm_radius is None else self.norm_radius
        args = (weight, p, np.float32(self.bank.threshold), radius, np.float32(1e-12), self.time_steps)
        status = max(_over_threads(
            lambda a, z: _coding_kernels.encode(src[a:z], *args, dst[a:z], vals[a:z] if keep_intensities else vals), b),
            default=0)
        if status:
            bad = "NaN" if status == 2 else "infinite"
            raise ValueError(f"intensities: contains {bad} values; expected finite numbers")
        return times.reshape(b, c, h, w), values.reshape(b, c, h, w) if keep_intensities else None

    def forward(self, image) -> torch.Tensor:
        if not isinstance(image, torch.Tensor):
            image = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
        check_tensor(image, "image", (2, 3, 4))
        single = image.dim() == 2 or (image.dim() == 3 and image.shape[0] == 1)
        x = image.reshape(1, *image.shape[-2:]) if single else image
        times = self.encode_batch(x)
        out = times if self.output == "times" else times_to_wave(times, self.time_steps)
        return out[0] if single else out
