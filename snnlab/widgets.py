"""Update functions of the notebooks' widget explorers, and two small training loops.

Each ``*_view`` function takes plain values (the widget settings) and returns a new
:class:`matplotlib.figure.Figure`, so it can be unit-tested without a display and wired in
a notebook with ``ipywidgets.interact(retina_view, size=(3, 15, 2), ...)``: ``interact``
displays the returned figure as a fresh PNG on every change.

The training helpers (:func:`train_stdp_layer`, :func:`train_rstdp_readout`) compose the
engine functions sample by sample, exactly as the step-through notebooks describe them.

The draw-a-digit explorer (:class:`DigitCanvas`) is an ``ipycanvas`` canvas on which the
reader draws with the mouse; :func:`strokes_to_image` turns the strokes into an MNIST-like
28x28 digit and :func:`digit_view` draws what a trained Mozafari 2019 network does with it.
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
from .layers import conv_potentials, fire, pad, pad_times, pooling
from .learning import (FLUSH_BELOW, RateDoubling, adaptive_rstdp_rates, apply_stdp, convergence, spike_times_of,
                       stdp_pairing, stdp_rates_for_winners)
from .retina import FilterBank, dog_kernel, local_normalization

__all__ = [
    "mnist_digit",
    "retina_view",
    "wave_view",
    "competition_view",
    "train_stdp_layer",
    "rstdp_decide",
    "train_rstdp_readout",
    "stdp_view",
    "readout_digits",
    "rstdp_view",
    "tsne_view",
    "strokes_to_image",
    "digit_pipeline",
    "digit_view",
    "DigitCanvas",
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
        >>> len(fig.axes)   # three panels and the feature colour bar
        4
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
    n_feat = weight.shape[0]
    _, cmap = viz.feature_colors(n_feat)  # one colour per feature: tab20 would repeat after 20
    im = ax[1].imshow(owner, cmap=cmap, vmin=-0.5, vmax=n_feat - 0.5)
    ax[1].set_title(f"point-wise winner feature ({int(fired.sum())} px)")
    fig.colorbar(im, ax=ax[1], shrink=0.7, label="feature", ticks=range(0, n_feat, max(1, n_feat // 6)))
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
                     flush_below: float = FLUSH_BELOW):
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
        double_every: double ``a_plus`` (capped at ``max_a_plus``, :math:`a^- = -0.75 a^+`) before
            every ``double_every``-th sample, as the protocols do (:class:`snnlab.learning.RateDoubling`;
            0: constant rates).
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
    # the protocols' rate doubling (learning.RateDoubling), so the explorers learn as the models do
    sched = RateDoubling(float(rates[0]), float(rates[1]), double_every or None, max_a_plus)
    hist = {"convergence": [], "winners": [], "snapshots": [(0, weight.detach().cpu().clone())]}
    for i in range(times.shape[0]):
        ap, an = sched.step()
        rate = torch.tensor([[ap, an]], device=weight.device).expand(weight.shape[0], 2)
        wave = times_to_wave(pad(times[i:i + 1].to(weight.device), padding, value=time_steps), time_steps)
        spk, pot = fire(conv_potentials(wave, weight), threshold)
        pot = pointwise_inhibition(pot)
        spk = pot.sign()
        win = k_winners(pot, k, radius, spk)
        pairing = stdp_pairing(spike_times_of(wave), spike_times_of(spk), win, weight.shape[-2:])
        lr = stdp_rates_for_winners(pairing, win, rate)
        apply_stdp(weight, win[0], lr[0], use_stabilizer, flush_below=flush_below)
        hist["convergence"].append(convergence(weight))
        hist["winners"].append(int((win[0, :, 0] >= 0).sum()))
        if snapshot_every and (i + 1) % snapshot_every == 0:
            hist["snapshots"].append((i + 1, weight.detach().cpu().clone()))
    hist["rates"] = (sched.a_plus, sched.a_minus)
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
                        time_steps: int = 15, pool: int = 2, use_stabilizer: bool = True,
                        bounds=(0.0, 1.0)):
    r"""Reward-modulated STDP of a readout layer, one sample at a time (in place).

    The winner's kernel gets STDP (:math:`a^+_r, a^-_r`) when its class is the label and
    anti-STDP (:math:`a^+_p, a^-_p`) otherwise, then every weight is clipped to
    ``bounds`` :math:`[LB, UB]`; with the stabiliser the update is scaled by
    :math:`(w - LB)(UB - w)`. With ``adaptive``, after each block the rates become
    :math:`a_r = a_r^0\,p_{wrong}` and :math:`a_p = a_p^0\,p_{correct}` of that block. A rate
    of 0 leaves the winner unchanged: with ``punish=(0, 0)`` a wrong winner is not updated.
    Mozafari et al. 2019 train their conv3 without the stabiliser, with bounds (0.2, 0.8).

    Args:
        times: uint8 input spike times.
        labels: class indices ``0..n_classes-1``.
        weight: ``(n_classes * n_per_class, C, h, w)`` kernels, updated in place.
        n_per_class: neurons per class.
        reward, punish: base rates ``(a_plus, a_minus)``.
        adaptive: adapt the rates after each block.
        block: samples per block (accuracy is reported per block).
        time_steps, pool: as in :func:`rstdp_decide`.
        use_stabilizer: multiply updates by :math:`(w - LB)(UB - w)`.
        bounds: weight bounds ``(LB, UB)``, ``LB < UB``.

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
    lower, upper = (float(b) for b in bounds)
    if not lower < upper:
        raise ValueError(f"bounds: expected (lower, upper) with lower < upper, got {tuple(bounds)}")
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
                       lower, upper, flush_below=FLUSH_BELOW)
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


# --- explorers of learning (notebooks 05, 06) and of representations (09) ----------------------
@functools.lru_cache(maxsize=2)
def _train_times(n: int) -> torch.Tensor:
    """The first ``n`` MNIST training digits through the Kheradpisheh encoder (cached)."""
    from .data import load_mnist

    return Encoder.kheradpisheh2018().encode_batch(load_mnist(train=True)[0][:n])


def stdp_view(a_plus: float = 0.05, a_minus: float = -0.0375, k: int = 5, radius: int = 2,
              stabilizer: bool = True, samples: int = 300, times=None, seed: int = 0) -> Figure:
    r"""Explorer of STDP: train 32 first-layer features from the same start and show what formed.

    :math:`\Delta w = a^{\pm} w (1 - w)` (or :math:`a^{\pm}` without the stabiliser, then clipped
    to [0, 1]) on the k-WTA winners (``k`` winners, lateral radius ``radius``), constant rates,
    5x5 kernels over the ON/OFF input, threshold 10, initial weights
    :math:`\mathcal N(0.8, 0.05^2)` drawn with ``seed``.

    Args:
        a_plus: LTP rate :math:`a^+ > 0`.
        a_minus: LTD rate :math:`a^- \le 0`.
        k: winners per digit.
        radius: lateral inhibition radius.
        stabilizer: multiply updates by :math:`w(1 - w)`.
        samples: training digits (the first ``samples`` MNIST training digits by default).
        times: ``(N, 2, H, W)`` uint8 input spike times to train on instead (``N >= samples``).
        seed: seed of the initial weights.

    Shape:
        - times: :math:`(N, 2, H, W)`.

    Example:
        >>> t = torch.randint(0, 16, (20, 2, 12, 12), dtype=torch.uint8)
        >>> fig = stdp_view(0.1, -0.075, k=2, radius=1, samples=20, times=t)
        >>> fig.axes[1].get_xlabel()
        'training samples'
    """
    if not a_plus > 0 or a_minus > 0:
        raise ValueError(f"a_plus, a_minus: expected a_plus > 0 >= a_minus, got {a_plus}, {a_minus}")
    check_positive_int(samples, "samples")
    x = _train_times(samples) if times is None else times
    check_tensor(x, "times", 4)
    if x.shape[0] < samples:
        raise ValueError(f"times: expected at least samples={samples} rows, got {x.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(32, x.shape[1], 5, 5, generator=g) * 0.05 + 0.8
    hist = train_stdp_layer(x[:samples], weight, (a_plus, a_minus), threshold=10.0, k=k, radius=radius,
                            padding=2, use_stabilizer=stabilizer)
    near = float(((weight < 0.05) | (weight > 0.95)).float().mean())
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    grid = fig.add_gridspec(1, 4)
    ax_f = fig.add_subplot(grid[0, :2])
    dog = Encoder.kheradpisheh2018().bank.weight
    viz.feature_grid(viz.reconstruct_features(weight, dog, balance=True), ncols=8, ax=ax_f, normalize="shared",
                     title="32 features in pixel space (one scale, grey = 0)")
    ax_c = fig.add_subplot(grid[0, 2])
    viz.learning_curve(hist["convergence"], x=np.arange(1, samples + 1), ax=ax_c, xlabel="training samples",
                       ylabel="mean w(1 - w)", title="convergence")
    ax_h = fig.add_subplot(grid[0, 3])
    ax_h.hist(weight.flatten().numpy(), bins=np.linspace(0, 1, 21), color="C2")
    ax_h.set(xlabel="weight", ylabel="synapses", title=f"{100 * near:.0f}% within 0.05 of 0 or 1")
    fig.suptitle(f"STDP on {samples} digits: a+ = {a_plus:g}, a- = {a_minus:g}, k = {k}, r = {radius}, "
                 f"stabiliser {'on' if stabilizer else 'off'}; {sum(hist['winners'])} updates")
    return fig


@functools.lru_cache(maxsize=2)
def readout_digits(n_train: int = 1000, n_test: int = 500, classes=(0, 1, 2, 3, 4)):
    r"""Spike times of the first MNIST digits of ``classes`` (Mozafari encoder), for the R-STDP readout.

    Args:
        n_train: training digits (from the MNIST training set, in order).
        n_test: test digits (from the MNIST test set, in order).
        classes: the digits kept (a tuple; the labels stay the digits themselves).

    Returns:
        ``(train_times, train_labels, test_times, test_labels)``, cached.

    Shape:
        - times: :math:`(N, 6, 28, 28)` uint8; labels: :math:`(N,)` int64.

    Example:
        >>> tr, ytr, te, yte = readout_digits(20, 10)
        >>> tr.shape, set(ytr.tolist()) <= {0, 1, 2, 3, 4}
        (torch.Size([20, 6, 28, 28]), True)
    """
    from .data import load_mnist

    check_positive_int(n_train, "n_train")
    check_positive_int(n_test, "n_test")
    enc = Encoder.mozafari2019()
    keep = torch.tensor(classes)
    out = []
    for train, n in ((True, n_train), (False, n_test)):
        x, y = load_mnist(train=train)
        mask = torch.isin(y, keep)
        out += [enc.encode_batch(x[mask][:n]), y[mask][:n]]
    return tuple(out)


def rstdp_view(reward_rate: float = 0.004, punish_rate: float = 0.004, lower: float = 0.0, upper: float = 1.0,
               stabilizer: bool = True, adaptive: bool = True, samples: int = 500, data=None,
               n_per_class: int = 10, seed: int = 0) -> Figure:
    r"""Explorer of R-STDP: train the readout of notebook 06 and show its learning curve.

    Reward: STDP :math:`(a^+_r, a^-_r) = (r, -0.75\,r)`; punishment: anti-STDP
    :math:`(a^+_p, a^-_p) = (-p, p/8)` (the 2019 paper's ratios); weights clipped to
    ``[lower, upper]``, updates scaled by :math:`(w - LB)(UB - w)` with the stabiliser;
    adaptive rates per block of 100 digits (:func:`train_rstdp_readout`).

    Args:
        reward_rate: ``r``, the reward's LTP rate.
        punish_rate: ``p``, the magnitude of the punishment's (negative) LTP rate; 0 = reward only.
        lower, upper: weight bounds (``lower < upper``; a figure says so otherwise).
        stabilizer: soft bounds :math:`(w - LB)(UB - w)`.
        adaptive: adapt the rates after each block.
        samples: training digits.
        data: ``(train_times, train_labels, test_times, test_labels)`` (default:
            :func:`readout_digits`, digits 0-4).
        n_per_class: readout neurons per class.
        seed: seed of the initial weights :math:`\mathcal N(0.8, 0.05^2)`.

    Shape:
        - data times: :math:`(N, C, H, W)` uint8; labels :math:`(N,)`.

    Example:
        >>> t = torch.randint(0, 16, (40, 1, 8, 8), dtype=torch.uint8); y = torch.arange(40) % 2
        >>> fig = rstdp_view(0.01, 0.01, samples=40, data=(t, y, t, y), n_per_class=2)
        >>> fig.axes[0].get_xlabel()
        'training samples'
    """
    if not lower < upper:
        fig, axes = viz.new_figure(1, 1, (6.0, 1.6))
        axes[0][0].axis("off")
        axes[0][0].text(0.5, 0.5, f"lower = {lower:g} >= upper = {upper:g}: no weight fits between the bounds.\n"
                        "Move one of the two sliders.", ha="center", va="center")
        return fig
    check_positive_int(samples, "samples")
    tr, ytr, te, yte = readout_digits(max(samples, 1000), 500) if data is None else data
    if tr.shape[0] < samples:
        raise ValueError(f"data: expected at least samples={samples} training digits, got {tr.shape[0]}")
    classes = sorted(set(ytr.tolist()))
    if classes != list(range(len(classes))):
        raise ValueError(f"data: labels must be 0..n-1, got {classes}")
    g = torch.Generator().manual_seed(seed)
    h, w = tr.shape[-2] // 2, tr.shape[-1] // 2
    weight = torch.randn(len(classes) * n_per_class, tr.shape[1], h, w, generator=g) * 0.05 + 0.8
    block = 100 if samples >= 200 else max(1, samples // 2)
    hist = train_rstdp_readout(tr[:samples], ytr[:samples], weight, n_per_class, (reward_rate, -0.75 * reward_rate),
                               (-punish_rate, punish_rate / 8), adaptive, block, use_stabilizer=stabilizer,
                               bounds=(lower, upper))
    dec = rstdp_decide(te, weight, n_per_class)
    acc = float((dec == yte).float().mean())
    fig, axes = viz.new_figure(1, 2, (4.6, 3.2))
    ax, ax_d = axes[0]
    seen = [min(block * (i + 1), samples) for i in range(len(hist["accuracy"]))]
    viz.learning_curve([100 * a for a in hist["accuracy"]], x=seen, ax=ax, marker="o", ms=3,
                       xlabel="training samples", ylabel=f"correct per block of {block} (%)",
                       title=f"test accuracy {100 * acc:.1f}% ({len(yte)} digits)")
    ax.axhline(100 / len(classes), color="gray", ls="--", lw=1)
    ax.set_ylim(0, 100)
    counts = torch.bincount(dec.clamp_min(0), minlength=len(classes))[:len(classes)]
    ax_d.bar(classes, counts.numpy(), color=[f"C{c}" for c in classes])
    ax_d.axhline(len(yte) / len(classes), color="gray", ls="--", lw=1)
    ax_d.set(xlabel="decided class", ylabel="test digits", xticks=classes,
             title="decisions per class (dashed: the true share)")
    fig.suptitle(f"R-STDP: reward {reward_rate:g}, punishment {punish_rate:g}, bounds [{lower:g}, {upper:g}], "
                 f"stabiliser {'on' if stabilizer else 'off'}, {'adaptive' if adaptive else 'fixed'} rates")
    return fig


_TSNE_CACHE: dict = {}


def tsne_view(space: str = "layer 2", perplexity: float = 30.0, spaces=None, labels=None, seed: int = 0) -> Figure:
    r"""Explorer of t-SNE: one representation space of the same digits, at a chosen perplexity.

    t-SNE (:func:`snnlab.analysis.embed_tsne`, PCA to 50 dimensions first) keeps
    neighbourhoods: the perplexity is roughly the number of neighbours each point attends
    to. Embeddings are cached per space and perplexity, so moving back is instant.

    Args:
        space: a key of ``spaces``.
        perplexity: t-SNE perplexity (below the number of digits).
        spaces: ``{name: (N, D) features}`` of the same ``N`` digits.
        labels: ``(N,)`` classes of the digits.
        seed: random state of PCA and t-SNE.

    Shape:
        - each space: :math:`(N, D)`; labels: :math:`(N,)`.

    Example:
        >>> x = torch.cat([torch.zeros(15, 3), torch.ones(15, 3)]) + 0.1 * torch.rand(30, 3)
        >>> fig = tsne_view("toy", 5, {"toy": x}, torch.arange(30) // 15)
        >>> fig.axes[0].get_title()
        'toy (3 dims), perplexity 5'
    """
    from .analysis import embed_tsne

    if not isinstance(spaces, dict) or not spaces:
        raise TypeError("spaces: expected a non-empty dict {name: (N, D) features}")
    if space not in spaces:
        raise ValueError(f"space: expected one of {list(spaces)}, got {space!r}")
    x = spaces[space]
    key = (id(x), space, float(perplexity), seed)
    if key not in _TSNE_CACHE:
        if len(_TSNE_CACHE) > 32:
            _TSNE_CACHE.clear()
        _TSNE_CACHE[key] = embed_tsne(x, seed=seed, perplexity=perplexity)
    fig, axes = viz.new_figure(1, 1, (5.4, 4.4))
    viz.embedding_plot(_TSNE_CACHE[key], labels, ax=axes[0, 0], legend=True,
                       title=f"{space} ({x.shape[1]} dims), perplexity {perplexity:g}")
    return fig


# --- draw a digit (notebook 13) -----------------------------------------------------------------
def strokes_to_image(strokes, size: int = 280, pen: float = 1.4) -> torch.Tensor:
    r"""Mouse strokes on a ``size x size`` canvas as an MNIST-like 28x28 digit.

    As MNIST was made: the strokes' bounding box is scaled to fit a 20x20 box (aspect kept,
    pen included) and the ink's centre of mass is moved to the centre of the 28x28 image.
    Each stroke (a polyline) is drawn with a round pen of radius ``pen`` pixels and a soft
    edge, :math:`I(p) = 255 \min(1, \max(0, \mathrm{pen} + 0.5 - d(p)))` with :math:`d` the
    distance to the polyline, so the stroke width is the same however large the digit was drawn.

    Args:
        strokes: list of strokes, each a list of ``(x, y)`` canvas points.
        size: the canvas side in pixels (points outside it are kept as they are).
        pen: pen radius in pixels of the 28x28 image.

    Shape:
        - Output: :math:`(28, 28)` uint8 (0 = background, 255 = ink); all zeros without strokes.

    Example:
        >>> img = strokes_to_image([[(140, 40), (140, 240)]])   # a vertical bar: a "1"
        >>> img.shape, int(img[14, 13]), int(img[14, 3])
        (torch.Size([28, 28]), 255, 0)
    """
    check_positive_int(size, "size")
    if not isinstance(strokes, (list, tuple)):
        raise TypeError(f"strokes: expected a list of lists of (x, y) points, got {type(strokes).__name__}")
    grid = 28
    polys = [torch.tensor([[float(x), float(y)] for x, y in stroke]).view(-1, 2) for stroke in strokes]
    polys = [p for p in polys if len(p)]
    if not polys:
        return torch.zeros(grid, grid, dtype=torch.uint8)
    allp = torch.cat(polys)
    lo, span = allp.amin(0), (allp.amax(0) - allp.amin(0))
    scale = (20.0 - 2 * pen) / max(float(span.max()), 1e-6)
    offset = (grid - span * scale) / 2  # the box centred first; the centre of mass follows
    yy, xx = torch.meshgrid(torch.arange(grid) + 0.5, torch.arange(grid) + 0.5, indexing="ij")
    pix = torch.stack([xx, yy], -1)[None]
    ink = torch.zeros(grid, grid)
    for p in polys:
        p = (p - lo) * scale + offset
        a, b = (p[:-1], p[1:]) if len(p) > 1 else (p, p)
        # distance of every pixel centre to every segment, then to the closest one
        ab = (b - a)[:, None, None, :]
        ap = pix - a[:, None, None, :]
        t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-9)).clamp(0, 1)
        d = (ap - t[..., None] * ab).norm(dim=-1).amin(0)
        ink = torch.maximum(ink, (pen + 0.5 - d).clamp(0, 1))
    mass = ink.sum()
    cy = float((ink.sum(1) * torch.arange(grid)).sum() / mass)
    cx = float((ink.sum(0) * torch.arange(grid)).sum() / mass)
    ink = torch.roll(ink, (round((grid - 1) / 2 - cy), round((grid - 1) / 2 - cx)), (0, 1))
    return (255 * ink).round().to(torch.uint8)


@torch.no_grad()
def digit_pipeline(image, network, encoder: Encoder | None = None) -> dict:
    r"""Everything a Mozafari 2019 network computes for one digit, for :func:`digit_view`.

    DoG maps (the encoder's intensities), spike times, conv1 and conv2 spikes over all time
    steps with the k-WTA winners their STDP would pick (point-wise inhibition first), and
    conv3's potentials :math:`V = W_3 \star S` at the last step; the decision is the class of
    the neuron with the largest potential, as :meth:`Mozafari2019.forward` decides.

    Args:
        image: a 28x28 uint8 digit.
        network: a :class:`snnlab.models.mozafari2019.Mozafari2019` (e.g.
            ``snnlab.pretrained("mozafari2019_quick").network``).
        encoder: the input encoder (default: :meth:`Encoder.mozafari2019`).

    Returns:
        dict with ``intensities`` (6, 28, 28), ``times`` (6, 28, 28), ``conv1``/``conv2``
        (thresholded potentials over time), their ``winners1``/``winners2``, ``class_potential``
        (10,): the largest final conv3 potential of each class's neurons, and ``decision``
        (-1 if silent).

    Shape:
        - image: :math:`(28, 28)`.

    Example:
        >>> from snnlab.models.mozafari2019 import Mozafari2019
        >>> out = digit_pipeline(torch.zeros(28, 28, dtype=torch.uint8), Mozafari2019(seed=1))
        >>> out["decision"], tuple(out["class_potential"].shape)
        (-1, (10,))
    """
    check_tensor(image, "image", 2)
    net = network
    cfg = net.config
    t_steps = cfg.time_steps
    enc = Encoder.mozafari2019(time_steps=t_steps) if encoder is None else encoder
    dev = net.conv1.weight.device
    img = image.to(torch.uint8)[None]
    inten = enc.intensities(img)[0]
    times = enc.encode_batch(img)
    wave = times_to_wave(pad_times(times.to(dev), net.conv1.padding, t_steps), t_steps)
    spk1, pot1 = fire(conv_potentials(wave, net.conv1.weight), cfg.thresholds[0])
    inh1 = pointwise_inhibition(pot1)
    win1 = k_winners(inh1, cfg.k[0], cfg.radius[0], inh1.sign())
    spk2, pot2 = fire(conv_potentials(pad(pooling(spk1, 2, 2), net.conv2.padding), net.conv2.weight), cfg.frozen_conv2_threshold)
    inh2 = pointwise_inhibition(pot2)
    win2 = k_winners(inh2, cfg.k[1], cfg.radius[1], inh2.sign())
    pot3 = conv_potentials(pad(pooling(spk2, 3, 3), net.conv3.padding), net.conv3.weight)[0, -1]
    per_neuron = pot3.flatten(1).amax(1).cpu()
    dmap = net.decision_map.cpu()
    class_pot = torch.stack([per_neuron[dmap == c].max() for c in range(10)])
    decision = int(net(times.to(dev))[0])
    return {"intensities": inten.cpu(), "times": times[0].cpu(), "conv1": inh1[0].cpu(), "winners1": win1[0].cpu(),
            "conv1_spikes": int(spk1[0, -1].sum()), "conv2": inh2[0].cpu(), "winners2": win2[0].cpu(),
            "conv2_spikes": int(spk2[0, -1].sum()), "class_potential": class_pot, "decision": decision,
            "time_steps": t_steps, "radius": tuple(cfg.radius)}


def digit_view(image, network, encoder: Encoder | None = None, title: str | None = None) -> Figure:
    r"""What a trained Mozafari 2019 network does with one digit, stage by stage.

    Top: the digit and its six DoG maps (ON/OFF at three scales, after threshold and local
    normalisation); middle: the input spike-wave, one frame per time step (new spikes in their
    channel's colour); bottom: conv1's and conv2's k-WTA winners over their largest potential,
    and conv3's largest final potential per class, the decided class highlighted
    (:func:`digit_pipeline`).

    Args:
        image: a 28x28 uint8 digit (e.g. :func:`strokes_to_image` or an MNIST test digit).
        network: a trained :class:`~snnlab.models.mozafari2019.Mozafari2019`.
        encoder: the input encoder (default: :meth:`Encoder.mozafari2019`).
        title: figure title (default: the decision).

    Shape:
        - image: :math:`(28, 28)`.

    Example:
        >>> from snnlab.models.mozafari2019 import Mozafari2019
        >>> fig = digit_view(torch.zeros(28, 28, dtype=torch.uint8), Mozafari2019(seed=1))
        >>> fig.get_suptitle()
        'decision: silent (no conv3 neuron reached a positive potential)'
    """
    out = digit_pipeline(image, network, encoder)
    t_steps = out["time_steps"]
    fig = Figure(figsize=(13, 9.2), layout="constrained")
    top, mid, bottom = fig.subfigures(3, 1, height_ratios=[2.1, 2.6, 3.0])
    axes = top.subplots(1, 7)
    axes[0].imshow(image.cpu().numpy(), cmap="gray_r")
    axes[0].set_title("the digit (28x28)", fontsize=9)
    names = ["ON 3x3", "OFF 3x3", "ON 7x7", "OFF 7x7", "ON 13x13", "OFF 13x13"]
    inten = out["intensities"]
    for i, ax in enumerate(axes[1:]):
        im = ax.imshow(inten[i].numpy(), cmap="viridis", vmin=0)
        ax.set_title(f"DoG {names[i] if len(inten) == 6 else i}", fontsize=9)
    top.colorbar(im, ax=list(axes[1:]), shrink=0.8, label="response / local mean")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    top.suptitle("1. retina: DoG responses after threshold and local normalisation", fontsize=10)
    viz.spike_frames(out["times"], t_steps, ncols=min(t_steps, 8), fig=mid,
                     channel_names=[f"DoG {n}" for n in names] if len(inten) == 6 else None)
    n_in = int((out["times"] < t_steps).sum())
    mid.suptitle(f"2. rank-order code: {n_in} input spikes over {t_steps} time steps "
                 "(colour: the channel of the spikes new at t)", fontsize=10)
    ax1, ax2, ax3 = bottom.subplots(1, 3, width_ratios=[1, 1, 1.4])
    r1, r2 = out["radius"]
    n1 = int((out["winners1"][:, 0] >= 0).sum())
    n2 = int((out["winners2"][:, 0] >= 0).sum())
    viz.show_winners(out["conv1"], out["winners1"], r1, ax=ax1,
                     title=f"conv1: {out['conv1_spikes']} spikes, {n1} winners")
    viz.show_winners(out["conv2"], out["winners2"], r2, ax=ax2,
                     title=f"conv2: {out['conv2_spikes']} spikes, {n2} winners")
    pots = out["class_potential"].numpy()
    dec = out["decision"]
    ax3.bar(range(10), pots, color=["C3" if c == dec else "0.7" for c in range(10)])
    ax3.set(xticks=range(10), xlabel="class", ylabel="largest conv3 potential (sum of weights)",
            title="conv3: the largest potential decides")
    ax3.set_ylim(min(pots) * 0.98 if pots.min() > 0 else 0, max(float(pots.max()) * 1.01, 1e-6))
    bottom.suptitle("3. conv1 and conv2 winners (dots: feature index; squares: inhibition windows) "
                    "and the decision layer", fontsize=10)
    if title is None:
        title = f"decision: {dec}" if dec >= 0 else \
            "decision: silent (no conv3 neuron reached a positive potential)"
    fig.suptitle(title, fontsize=12, weight="bold")
    return fig


class DigitCanvas:
    r"""Draw a digit with the mouse; the trained network's answer and :func:`digit_view` follow.

    An ``ipycanvas`` canvas (black, white pen) records each stroke; when the mouse button is
    released the strokes become a 28x28 digit (:func:`strokes_to_image`), the figure below is
    redrawn and the status line says ``decision: <class>``. ``Clear`` starts again; ``MNIST
    digit`` shows a test digit instead. Display :attr:`widget` in a notebook.

    Args:
        network: a trained :class:`~snnlab.models.mozafari2019.Mozafari2019`.
        size: canvas side in pixels.
        encoder: the input encoder (default: :meth:`Encoder.mozafari2019`).

    Shape:
        - no tensors of its own.

    Example:
        >>> from snnlab.models.mozafari2019 import Mozafari2019
        >>> pad = DigitCanvas(Mozafari2019(seed=1))
        >>> pad.draw([(140, 40), (140, 240)])   # what a mouse stroke does
        >>> pad.status.value.startswith("decision:")
        True
    """

    def __init__(self, network, size: int = 280, encoder: Encoder | None = None):
        import ipywidgets as ipw
        from ipycanvas import Canvas

        check_positive_int(size, "size")
        self.network, self.encoder, self.size = network, encoder, size
        self.strokes: list = []
        self._down = False
        self.canvas = Canvas(width=size, height=size, layout=ipw.Layout(width=f"{size}px", height=f"{size}px"))
        self.canvas.line_width = size / 14        # about two MNIST pixels
        self.canvas.line_cap = "round"
        self.canvas.line_join = "round"
        self.status = ipw.HTML("draw a digit with the mouse, then release the button")
        self.figure = ipw.Image(format="png", layout=ipw.Layout(max_width="1000px"))
        clear = ipw.Button(description="Clear", icon="eraser")
        example = ipw.Button(description="MNIST digit", tooltip="show the next MNIST test digit instead")
        clear.on_click(lambda _: self.clear())
        self._example = 0
        example.on_click(lambda _: self.show_example())
        self.canvas.on_mouse_down(self._on_down)
        self.canvas.on_mouse_move(self._on_move)
        self.canvas.on_mouse_up(self._on_up)
        self.canvas.on_mouse_out(self._on_up)
        self.clear()
        self.widget = ipw.VBox([ipw.HBox([self.canvas, ipw.VBox([clear, example, self.status])]), self.figure])

    def clear(self) -> None:
        """Blank canvas, no strokes."""
        self.strokes = []
        self.canvas.fill_style = "black"
        self.canvas.fill_rect(0, 0, self.size, self.size)
        self.canvas.stroke_style = "white"
        self.status.value = "draw a digit with the mouse, then release the button"

    def _on_down(self, x, y):
        self._down = True
        self.strokes.append([(x, y)])

    def _on_move(self, x, y):
        if self._down:
            x0, y0 = self.strokes[-1][-1]
            self.canvas.stroke_line(x0, y0, x, y)
            self.strokes[-1].append((x, y))

    def _on_up(self, x, y):
        if self._down:
            self._down = False
            self.update()

    def draw(self, points) -> None:
        """Draw one stroke through ``points`` (canvas pixels) as the mouse would, then update."""
        self._on_down(*points[0])
        for p in points[1:]:
            self._on_move(*p)
        self._on_up(*points[-1])

    def show_example(self) -> None:
        """Classify the next MNIST test digit (and draw it on the canvas)."""
        img = mnist_digit(self._example)
        self._example += 1
        self.strokes = []
        self.canvas.put_image_data(np.repeat(np.kron(img.numpy(), np.ones((self.size // 28, self.size // 28)))
                                             [..., None], 3, axis=2).astype(np.uint8), 0, 0)
        self._show(img, f"MNIST test digit #{self._example - 1}")

    def update(self) -> None:
        """Turn the strokes into a digit and redraw the figure and the status line."""
        img = strokes_to_image(self.strokes, self.size)
        self._show(img, "your digit")

    def _show(self, img, what):
        import io

        fig = digit_view(img, self.network, self.encoder)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        self.figure.value = buf.getvalue()
        self.status.value = f"{fig.get_suptitle()} ({what})"  # "decision: 7 (your digit)"
