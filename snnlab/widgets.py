"""Update functions of the notebooks' widget explorers, and two small training loops.

Each ``*_view`` function takes plain values (the widget settings) and returns a new
:class:`matplotlib.figure.Figure`, so it can be unit-tested without a display and wired in
a notebook with ``ipywidgets.interact(retina_view, size=(3, 15, 2), ...)``: ``interact``
displays the returned figure as a fresh PNG on every change.

The training helpers (:func:`train_stdp_layer`, :func:`train_rstdp_readout`) compose the
engine functions sample by sample, exactly as the step-through notebooks describe them.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from matplotlib.figure import Figure

from . import viz
from ._checks import check_nonnegative_int, check_positive_int, check_tensor
from .coding import Encoder, intensity_to_latency, times_to_wave
from .competition import k_winners, pointwise_inhibition
from .layers import conv_potentials, fire, pad, pooling
from .learning import apply_stdp, adaptive_rstdp_rates, spike_times_of, stdp_pairing, stdp_rates_for_winners
from .retina import FilterBank, dog_kernel, local_normalization

__all__ = [
    "mnist_digit",
    "retina_view",
    "wave_view",
    "competition_view",
    "train_stdp_layer",
    "rstdp_decide",
    "train_rstdp_readout",
]


@functools.lru_cache(maxsize=1)
def _mnist_test():
    from .data import load_mnist

    return load_mnist(train=False)


def mnist_digit(index: int = 0, images=None) -> torch.Tensor:
    r"""Image number ``index`` of ``images`` (default: the MNIST test set), :math:`x \in \{0..255\}^{28 \times 28}`.

    Args:
        index: sample index.
        images: ``(N, H, W)`` images to pick from (default: MNIST test images, loaded once).

    Shape:
        - Output: :math:`(H, W)` uint8.

    Example:
        >>> mnist_digit(1, torch.zeros(3, 4, 4, dtype=torch.uint8)).shape
        torch.Size([4, 4])
    """
    check_nonnegative_int(index, "index")
    if images is None:
        images = _mnist_test()[0]
    check_tensor(images, "images", 3)
    if index >= images.shape[0]:
        raise ValueError(f"index: expected < {images.shape[0]} (number of images), got {index}")
    return images[index]


def retina_view(size: int = 7, sigma1: float = 1.0, sigma2: float = 2.0, threshold: float = 50.0,
                digit: int = 0, norm_radius: int = 0, images=None) -> Figure:
    r"""Explorer of the retina: an ON/OFF pair of DoG kernels and the digit they filter.

    ON kernel = ``dog_kernel(size, sigma1, sigma2)``, OFF kernel = ``dog_kernel(size, sigma2, sigma1)``;
    responses :math:`y = [D \ast x]_{\ge \theta}`, then :math:`y / \mathrm{mean}_{(2r+1)^2}(y)`
    when ``norm_radius = r > 0``.

    Args:
        size: odd kernel size.
        sigma1, sigma2: the two standard deviations (equal values give a figure that says so).
        threshold: responses below it become 0.
        digit: index into ``images`` (default: MNIST test set).
        norm_radius: local normalisation radius (0: off).
        images: optional ``(N, H, W)`` uint8 images.

    Shape:
        - images: :math:`(N, H, W)`.

    Example:
        >>> fig = retina_view(5, 1.0, 2.0, 20.0, 0, images=torch.randint(0, 256, (1, 12, 12), dtype=torch.uint8))
        >>> len(fig.axes)
        5
    """
    img = mnist_digit(digit, images)
    if sigma1 == sigma2:
        # a slider position, not a programming error: explain it in the figure, no traceback
        fig, axes = viz.new_figure(1, 1, (6.0, 1.6))
        axes[0][0].axis("off")
        axes[0][0].text(0.5, 0.5, f"sigma1 = sigma2 = {sigma1}: the two Gaussians cancel and the DoG is 0.\n"
                        "Move one of the two sliders.", ha="center", va="center")
        return fig
    bank = FilterBank([dog_kernel(size, sigma1, sigma2), dog_kernel(size, sigma2, sigma1)],
                      padding=size // 2, threshold=threshold)
    out = bank(img[None])[0]
    if norm_radius:
        out = local_normalization(out, norm_radius)
    fig, axes = viz.new_figure(1, 5, (2.4, 2.6))
    ax = axes[0]
    ax[0].imshow(img.numpy(), cmap="gray")
    ax[0].set_title(f"digit #{digit}")
    for i, name in enumerate(("ON", "OFF")):
        k = bank.weight[i, 0].numpy()
        lim = float(np.abs(k).max())
        ax[1 + i].imshow(k, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax[1 + i].set_title(f"{name} kernel {size}x{size}")
        ax[3 + i].imshow(out[i].numpy(), cmap="viridis")
        ax[3 + i].set_title(f"{name} response ({int((out[i] > 0).sum())} px > 0)")
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    norm = f", local norm r={norm_radius}" if norm_radius else ""
    fig.suptitle(rf"DoG $\sigma_1$={sigma1:g}, $\sigma_2$={sigma2:g}, threshold {threshold:g}{norm}")
    return fig


def wave_view(time_steps: int = 15, digit: int = 0, encoder: Encoder | None = None, images=None) -> Figure:
    r"""Explorer of rank-order coding for a chosen number of time steps ``T``.

    The digit's retina intensities are cut into ``T`` rank bins
    (:func:`~snnlab.coding.intensity_to_latency`); the figure shows the raster, the
    cumulative number of spikes :math:`\sum_{c,y,x} S[t]` and one frame per time step.

    Args:
        time_steps: ``T`` (1..60 is sensible to draw).
        digit: index into ``images`` (default: MNIST test set).
        encoder: gives the intensities (default: :meth:`Encoder.kheradpisheh2018`, 2 DoG channels).
        images: optional ``(N, H, W)`` uint8 images.

    Shape:
        - images: :math:`(N, H, W)`.

    Example:
        >>> fig = wave_view(4, 0, images=torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8))
        >>> fig.axes[1].get_ylabel()
        'spikes so far'
    """
    check_positive_int(time_steps, "time_steps", maximum=255)
    img = mnist_digit(digit, images)
    enc = Encoder.kheradpisheh2018() if encoder is None else encoder
    times = intensity_to_latency(enc.intensities(img[None]), time_steps)[0]
    wave = times_to_wave(times, time_steps)
    fig = Figure(figsize=(12, 3.2 + 1.6 * ((time_steps + 7) // 8)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.2, 1.6 * ((time_steps + 7) // 8)])
    ax_r, ax_c = top.subplots(1, 2)
    viz.spike_raster(times, time_steps, ax=ax_r, channel_names=[f"DoG {i}" for i in range(times.shape[0])])
    counts = wave.sum((1, 2, 3))
    ax_c.step(np.arange(time_steps), counts.numpy(), where="mid", marker="o")
    ax_c.set_xlabel("time step t")
    ax_c.set_ylabel("spikes so far")
    ax_c.set_title(f"cumulative spike-wave, T = {time_steps}")
    ax_c.grid(alpha=0.3)
    viz.spike_frames(times, time_steps, fig=bottom)
    top.suptitle(f"digit #{digit}: {int((times < time_steps).sum())} of {times.numel()} neurons spike")
    return fig


def competition_view(k: int = 5, radius: int = 3, digit: int = 0, weight=None, threshold: float = 15.0,
                     images=None, seed: int = 0) -> Figure:
    r"""Explorer of competition in a first convolutional layer (Mozafari input, 5x5 kernels).

    Potentials :math:`V = W \star S` (padding 2), :math:`S = [V > \theta]`, then point-wise
    inhibition (one feature per location) and k-WTA with lateral radius ``radius``.

    Args:
        k: number of winners.
        radius: lateral inhibition radius.
        digit: index into ``images`` (default: MNIST test set).
        weight: ``(F, 6, 5, 5)`` kernels (default: 30 random kernels, :math:`\mathcal N(0.8, 0.05^2)`).
        threshold: firing threshold :math:`\theta`.
        images: optional ``(N, 28, 28)`` uint8 images.
        seed: seed of the default random kernels.

    Shape:
        - weight: :math:`(F, 6, k_h, k_w)`.

    Example:
        >>> fig = competition_view(3, 2, images=torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8))
        >>> len(fig.axes)
        3
    """
    check_positive_int(k, "k")
    check_nonnegative_int(radius, "radius")
    img = mnist_digit(digit, images)
    if weight is None:
        g = torch.Generator().manual_seed(seed)
        weight = torch.randn(30, 6, 5, 5, generator=g) * 0.05 + 0.8
    check_tensor(weight, "weight", 4)
    times = Encoder.mozafari2019().encode_batch(img[None])
    ph, pw = weight.shape[-2] // 2, weight.shape[-1] // 2
    wave = times_to_wave(pad(times, (pw, pw, ph, ph), value=15), 15)[0]
    pot = conv_potentials(wave, weight.float().cpu())
    spk, thr = fire(pot, threshold)
    inh = pointwise_inhibition(thr)
    win = k_winners(inh, k, radius, inh.sign())
    fig, axes = viz.new_figure(1, 3, (3.6, 3.8))
    ax = axes[0]
    ax[0].imshow(thr[-1].max(0)[0].numpy(), cmap="magma")
    ax[0].set_title(f"max potential ({int(spk[-1].sum())} spikes)")
    fired = inh[-1].amax(0) > 0
    owner = np.where(fired.numpy(), inh[-1].argmax(0).numpy(), np.nan)
    ax[1].imshow(owner, cmap="tab20", vmin=0, vmax=max(weight.shape[0] - 1, 1))
    ax[1].set_title(f"point-wise winner feature ({int(fired.sum())} px)")
    viz.show_winners(inh, win, radius, ax=ax[2],
                     title=f"k-WTA: {int((win[:, 0] >= 0).sum())} of k={k}, r={radius}")
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    return fig


@torch.no_grad()
def train_stdp_layer(times, weight, rates=(0.004, -0.003), time_steps: int = 15, threshold: float = 15.0,
                     k: int = 5, radius: int = 3, padding: int = 2, use_stabilizer: bool = True,
                     snapshot_every: int = 0, double_every: int = 0, max_a_plus: float = 0.15,
                     flush_below: float = 1e-20):
    r"""Unsupervised STDP of one convolutional layer, one sample at a time (in place).

    Per sample: :math:`V = W \star S_{in}`, :math:`S = [V > \theta]`, point-wise inhibition,
    k-WTA, then :math:`\Delta w = a^{\pm} w (1 - w)` on the winners' receptive fields.

    Args:
        times: uint8 spike times of the (unpadded) input, one row per sample.
        weight: ``(F, C, kh, kw)`` kernels in [0, 1], updated in place.
        rates: ``(a_plus, a_minus)``.
        time_steps: ``T`` (input times ``>= T`` = no spike).
        threshold: firing threshold.
        k, radius: k-WTA settings.
        padding: zero padding (no-spike) on every side of the input.
        use_stabilizer: multiply updates by :math:`w(1 - w)`.
        snapshot_every: keep a copy of the weights every this many samples (0: none).
        double_every: double ``a_plus`` (capped at ``max_a_plus``, :math:`a^- = -0.75 a^+`) every
            this many samples (0: constant rates).
        max_a_plus: cap of ``a_plus``.
        flush_below: weights below this magnitude become exactly 0 after each update (stabilised
            LTD decays weights geometrically; subnormal floats would slow the CPU down).

    Returns:
        dict with ``convergence`` (:math:`\mathrm{mean}\,w(1-w)` after each sample),
        ``winners`` (number of winners per sample), ``snapshots`` (list of ``(sample, weight)``,
        the initial weights first) and ``rates`` (the final rates).

    Shape:
        - times: :math:`(N, C, H, W)`; weight: :math:`(F, C, k_h, k_w)`.

    Example:
        >>> w = torch.full((4, 1, 3, 3), 0.5)
        >>> h = train_stdp_layer(torch.zeros(2, 1, 6, 6, dtype=torch.uint8), w, threshold=1.0, k=2)
        >>> h["winners"], bool(w.max() > 0.5)
        ([1, 1], True)
    """
    check_tensor(times, "times", 4)
    check_tensor(weight, "weight", 4, floating=True)
    if times.shape[1] != weight.shape[1]:
        raise ValueError(f"times: has {times.shape[1]} channels but weight expects {weight.shape[1]}")
    ap, an = float(rates[0]), float(rates[1])
    rate = torch.tensor([[ap, an]], device=weight.device).expand(weight.shape[0], 2)
    hist = {"convergence": [], "winners": [], "snapshots": [(0, weight.detach().cpu().clone())]}
    for i in range(times.shape[0]):
        if double_every and i and i % double_every == 0:
            ap = min(2 * ap, max_a_plus)
            an = -0.75 * ap
            rate = torch.tensor([[ap, an]], device=weight.device).expand(weight.shape[0], 2)
        wave = times_to_wave(pad(times[i:i + 1].to(weight.device), padding, value=time_steps), time_steps)
        spk, pot = fire(conv_potentials(wave, weight), threshold)
        pot = pointwise_inhibition(pot)
        spk = pot.sign()
        win = k_winners(pot, k, radius, spk)
        pairing = stdp_pairing(spike_times_of(wave), spike_times_of(spk), win, weight.shape[-2:])
        lr = stdp_rates_for_winners(pairing, win, rate)
        apply_stdp(weight, win[0], lr[0], use_stabilizer, flush_below=flush_below)
        hist["convergence"].append(viz.weight_convergence(weight))
        hist["winners"].append(int((win[0, :, 0] >= 0).sum()))
        if snapshot_every and (i + 1) % snapshot_every == 0:
            hist["snapshots"].append((i + 1, weight.detach().cpu().clone()))
    hist["rates"] = (ap, an)
    return hist


def _readout_wave(times, time_steps, pool):
    wave = times_to_wave(times, time_steps)
    return pooling(wave, pool) if pool > 1 else wave


@torch.no_grad()
def rstdp_decide(times, weight, n_per_class: int, time_steps: int = 15, pool: int = 2) -> torch.Tensor:
    r"""Decisions of a full-field readout layer: the class of the neuron with the highest final potential.

    :math:`\hat y = \lfloor \arg\max_f V_f[T-1] / n \rfloor`: no threshold (every neuron fires at
    :math:`T-1`), the single k-WTA winner ``f`` (:math:`k=1`) decides; ``-1`` if silent.

    Args:
        times: uint8 input spike times.
        weight: readout kernels covering the whole (pooled) input.
        n_per_class: neurons per class ``n``; neuron ``f`` votes for class ``f // n``.
        time_steps: ``T``.
        pool: max-pooling (earliest spike) of the input before the readout.

    Shape:
        - times: :math:`(N, C, H, W)`; weight: :math:`(F, C, H/p, W/p)`.
        - Output: :math:`(N,)` int64 class indices.

    Example:
        >>> rstdp_decide(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.rand(4, 1, 2, 2), 2).shape
        torch.Size([2])
    """
    check_tensor(times, "times", 4)
    check_positive_int(n_per_class, "n_per_class")
    pot = conv_potentials(_readout_wave(times.to(weight.device), time_steps, pool), weight)
    spk, pot = fire(pot, None)
    win = k_winners(pot, 1, 0, spk)[:, 0, 0]
    return torch.where(win >= 0, win // n_per_class, win).cpu()


@torch.no_grad()
def train_rstdp_readout(times, labels, weight, n_per_class: int, reward=(0.004, -0.003),
                        punish=(-0.004, 0.0005), adaptive: bool = True, block: int = 100,
                        time_steps: int = 15, pool: int = 2, use_stabilizer: bool = True):
    r"""Reward-modulated STDP of a readout layer, one sample at a time (in place).

    The winner's kernel gets STDP (:math:`a^+_r, a^-_r`) when its class is the label and
    anti-STDP (:math:`a^+_p, a^-_p`) otherwise. With ``adaptive``, after each block the rates
    become :math:`a_r = a_r^0\,p_{wrong}` and :math:`a_p = a_p^0\,p_{correct}` of that block.

    Args:
        times: uint8 input spike times.
        labels: class indices ``0..n_classes-1``.
        weight: ``(n_classes * n_per_class, C, h, w)`` kernels, updated in place.
        n_per_class: neurons per class.
        reward, punish: base rates ``(a_plus, a_minus)``.
        adaptive: adapt the rates after each block.
        block: samples per block (accuracy is reported per block).
        time_steps, pool: as in :func:`rstdp_decide`.
        use_stabilizer: multiply updates by :math:`w(1-w)`.

    Returns:
        dict with per-block ``accuracy``, ``silent`` fraction, and the ``reward`` and
        ``punish`` a-plus rates used in each block.

    Shape:
        - times: :math:`(N, C, H, W)`; labels: :math:`(N,)`.

    Example:
        >>> t = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
        >>> h = train_rstdp_readout(t, torch.tensor([0, 1, 0, 1]), torch.rand(4, 1, 2, 2), 2, block=2)
        >>> len(h["accuracy"])
        2
    """
    check_tensor(times, "times", 4)
    check_tensor(labels, "labels", 1)
    check_positive_int(block, "block")
    if labels.shape[0] != times.shape[0]:
        raise ValueError(f"labels: expected {times.shape[0]} labels, got {labels.shape[0]}")
    n_feat = weight.shape[0]
    rw, pn = tuple(reward), tuple(punish)
    hist = {"accuracy": [], "silent": [], "reward": [], "punish": []}
    correct = wrong = silent = 0
    for i in range(times.shape[0]):
        wave = _readout_wave(times[i:i + 1].to(weight.device), time_steps, pool)
        spk, pot = fire(conv_potentials(wave, weight), None)
        win = k_winners(pot, 1, 0, spk)
        f = int(win[0, 0, 0])
        if f < 0:
            silent += 1
        else:
            ok = f // n_per_class == int(labels[i])
            correct, wrong = correct + ok, wrong + (not ok)
            a = rw if ok else pn
            rate = torch.tensor([[a[0], a[1]]], device=weight.device).expand(n_feat, 2)
            pairing = stdp_pairing(spike_times_of(wave), spike_times_of(spk), win, weight.shape[-2:])
            apply_stdp(weight, win[0], stdp_rates_for_winners(pairing, win, rate)[0], use_stabilizer,
                       flush_below=1e-20)
        if (i + 1) % block == 0 or i + 1 == times.shape[0]:
            n = correct + wrong + silent
            hist["accuracy"].append(correct / n)
            hist["silent"].append(silent / n)
            hist["reward"].append(rw[0])
            hist["punish"].append(pn[0])
            if adaptive:
                rw, pn = adaptive_rstdp_rates(reward, punish, correct / n, wrong / n)
            correct = wrong = silent = 0
    return hist
