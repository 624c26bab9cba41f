"""Plotting helpers for the teaching notebooks.

Every function builds its own :class:`matplotlib.figure.Figure` (never through ``pyplot``),
or draws into axes it is given, and returns the figure. Nothing here needs a display:
figures render with Agg and show up in Jupyter as PNG when they are a cell's result.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ._checks import check_positive_int, check_tensor

__all__ = [
    "new_figure",
    "show_kernels",
    "show_maps",
    "show_time_grid",
    "spike_raster",
    "spike_frames",
    "show_winners",
    "reconstruct_features",
    "tile_features",
    "feature_grid",
    "feature_evolution",
    "learning_curve",
    "confusion_plot",
    "embedding_plot",
    "bar_chart",
    "dot_plot",
    "feature_colors",
    "run_figure",
    "mozafari_headline",
]


def new_figure(nrows: int = 1, ncols: int = 1, size=(3.0, 3.0), squeeze: bool = False, **kw):
    r"""A pyplot-free figure with an ``nrows x ncols`` grid of axes, each about ``size`` inches.

    Args:
        nrows, ncols: grid of axes.
        size: ``(width, height)`` of one panel in inches.
        squeeze: as in :func:`matplotlib.pyplot.subplots`.

    Shape:
        - Output: ``(fig, axes)`` with ``axes`` a ``(nrows, ncols)`` object array unless squeezed.

    Example:
        >>> fig, axes = new_figure(2, 3)
        >>> axes.shape
        (2, 3)
    """
    check_positive_int(nrows, "nrows")
    check_positive_int(ncols, "ncols")
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, **kw)
    return fig, axes


def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def _stack2d(maps, name):
    """List of 2-D arrays or a (C, H, W) tensor -> list of 2-D numpy arrays."""
    if isinstance(maps, torch.Tensor) or isinstance(maps, np.ndarray):
        arr = _np(maps)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"{name}: expected (C, H, W) or (H, W), got shape {arr.shape}")
        return list(arr)
    if isinstance(maps, (list, tuple)) and maps:
        out = [_np(m) for m in maps]
        for i, m in enumerate(out):
            if m.ndim != 2:
                raise ValueError(f"{name}[{i}]: expected a 2-D map, got shape {m.shape}")
        return out
    raise TypeError(f"{name}: expected a tensor, an array or a non-empty list of 2-D maps, got {type(maps).__name__}")


def _grid_shape(n, ncols):
    ncols = n if ncols is None else min(ncols, n)
    check_positive_int(ncols, "ncols")
    return math.ceil(n / ncols), ncols


def _annotate(ax, m, fmt="{:g}", color_threshold=None):
    lim = np.nanmax(np.abs(m)) if color_threshold is None else color_threshold
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8,
                color="white" if abs(v) > 0.6 * lim else "black")


def show_kernels(kernels, titles=None, ncols=None, cmap: str = "RdBu_r", annotate: bool = False,
                 colorbar: bool = True, size=(2.6, 2.4)) -> Figure:
    r"""Heat-maps of 2-D kernels on a symmetric colour scale (red = positive, blue = negative).

    Each panel spans :math:`[-\max|k|, \max|k|]` so that zero is white.

    Args:
        kernels: ``(C, K, K)`` tensor or list of 2-D kernels.
        titles: one title per kernel.
        ncols: panels per row (default: all in one row).
        cmap: diverging colour map.
        annotate: print each value in its cell (small kernels only).
        colorbar: add a colour bar per panel.
        size: size of one panel in inches.

    Shape:
        - kernels: :math:`(C, K, K)` or a list of :math:`(K_i, K_i)`.

    Example:
        >>> from snnlab.retina import dog_kernel
        >>> fig = show_kernels([dog_kernel(7, 1, 2), dog_kernel(7, 2, 1)], ["ON", "OFF"])
        >>> [ax.get_title() for ax in fig.axes[:2]]
        ['ON', 'OFF']
    """
    ks = _stack2d(kernels, "kernels")
    if titles is not None and len(titles) != len(ks):
        raise ValueError(f"titles: expected {len(ks)} titles, got {len(titles)}")
    nrows, ncols = _grid_shape(len(ks), ncols)
    fig, axes = new_figure(nrows, ncols, size)
    for i, ax in enumerate(axes.flat):
        if i >= len(ks):
            ax.axis("off")
            continue
        lim = float(np.abs(ks[i]).max()) or 1.0
        im = ax.imshow(ks[i], cmap=cmap, vmin=-lim, vmax=lim)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i])
        if annotate:
            _annotate(ax, ks[i], "{:.2f}")
        if colorbar:
            fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def show_maps(maps, titles=None, ncols=None, cmap: str = "gray", vmin=None, vmax=None,
              suptitle: str | None = None, colorbar: bool = False, size=(2.4, 2.4), axes=None,
              center: float | None = None, cbar_label: str | None = None) -> Figure:
    r"""A grid of 2-D maps (images, filter outputs, potentials), one panel per channel.

    With ``center = c`` each panel's colour scale is symmetric about ``c``,
    :math:`[c - m, c + m]` with :math:`m = \max|x - c|` (or the shared ``vmin``/``vmax``
    made symmetric), so that ``c`` is the middle colour of a diverging map.

    Args:
        maps: ``(C, H, W)`` or ``(H, W)`` tensor, or a list of 2-D maps.
        titles: one title per map.
        ncols: panels per row (default: all in one row).
        cmap: colour map.
        vmin, vmax: shared colour limits (default: per panel).
        suptitle: figure title.
        colorbar: add a colour bar per panel.
        size: size of one panel in inches.
        axes: draw into these axes (at least ``C`` of them) instead of a new figure.
        center: value at the middle of the colour scale (e.g. 0 for a diverging ``RdBu_r``).
        cbar_label: label of the colour bars (the unit of the values).

    Shape:
        - maps: :math:`(C, H, W)`, :math:`(H, W)` or a list of 2-D maps.

    Example:
        >>> fig = show_maps(torch.rand(3, 8, 8), ["a", "b", "c"])
        >>> len(fig.axes)
        3
    """
    ms = _stack2d(maps, "maps")
    if titles is not None and len(titles) != len(ms):
        raise ValueError(f"titles: expected {len(ms)} titles, got {len(titles)}")
    if axes is None:
        nrows, ncols = _grid_shape(len(ms), ncols)
        fig, axes = new_figure(nrows, ncols, size)
        flat = list(axes.flat)
    else:
        flat = list(np.asarray(axes, dtype=object).flat)
        if len(flat) < len(ms):
            raise ValueError(f"axes: need at least {len(ms)} axes, got {len(flat)}")
        fig = flat[0].figure
    for i, ax in enumerate(flat):
        if i >= len(ms):
            ax.axis("off")
            continue
        lo, hi = vmin, vmax
        if center is not None:
            span = max(abs(float(v) - center) for v in (vmin, vmax) if v is not None) \
                if vmin is not None or vmax is not None else float(np.nanmax(np.abs(ms[i] - center)))
            span = span or 1.0
            lo, hi = center - span, center + span
        im = ax.imshow(ms[i], cmap=cmap, vmin=lo, vmax=hi)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
        if colorbar:
            cb = fig.colorbar(im, ax=ax, shrink=0.8)
            if cbar_label:
                cb.set_label(cbar_label, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def show_time_grid(x, annotate: bool = False, row_label: str = "feature", cmap: str = "Greys",
                   vmin=None, vmax=None, title: str | None = None, fmt: str = "{:g}",
                   size=(1.6, 1.6)) -> Figure:
    r"""Rows = channels, columns = time steps: :math:`x[t, c]` in panel ``(c, t)``.

    Draws cumulative spike-waves (:math:`S[t, c]`) or potentials (:math:`V[t, c]`) on one
    colour scale, optionally with every value printed in its cell.

    Args:
        x: spike-wave or potentials of one sample.
        annotate: print values in cells (small maps only).
        row_label: name of the channel axis.
        cmap: colour map.
        vmin, vmax: colour limits (default: the min and max of ``x``).
        title: figure title.
        fmt: format of annotated values.
        size: size of one panel in inches.

    Shape:
        - x: :math:`(T, C, H, W)`.

    Example:
        >>> from snnlab.coding import times_to_wave
        >>> fig = show_time_grid(times_to_wave(torch.tensor([[[0, 1], [2, 3]]]), 4), annotate=True)
        >>> len(fig.axes)
        4
    """
    check_tensor(x, "x", 4)
    arr = _np(x)
    t_steps, c = arr.shape[:2]
    lo = float(arr.min()) if vmin is None else vmin
    hi = float(arr.max()) if vmax is None else vmax
    if hi == lo:
        hi = lo + 1.0
    fig, axes = new_figure(c, t_steps, size)
    for ci in range(c):
        for t in range(t_steps):
            ax = axes[ci, t]
            ax.imshow(arr[t, ci], cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_color("0.6")
            if annotate:
                _annotate(ax, arr[t, ci], fmt, color_threshold=hi)
            if ci == 0:
                ax.set_title(f"t = {t}", fontsize=10)
            if t == 0:
                ax.set_ylabel(f"{row_label} {ci}")
    if title:
        fig.suptitle(title)
    return fig


def spike_raster(times, time_steps: int, ax=None, channel_names=None, max_points: int = 20000) -> Figure:
    r"""Raster plot of spike times: one dot per spiking neuron at :math:`(t, \text{neuron index})`.

    Neurons are numbered channel by channel in raster order; dots are coloured by channel.
    Times ``>= time_steps`` (no spike) are left out.

    Args:
        times: spike times of one sample.
        time_steps: ``T``.
        ax: draw into these axes (default: a new figure).
        channel_names: legend label per channel.
        max_points: draw at most this many spikes (a random, seeded subset beyond that).

    Shape:
        - times: :math:`(C, H, W)`.

    Example:
        >>> fig = spike_raster(torch.tensor([[[0, 1], [2, 3]]]), 3)
        >>> fig.axes[0].get_xlabel()
        'time step t'
    """
    check_tensor(times, "times", 3)
    check_positive_int(time_steps, "time_steps")
    t = times.detach().cpu().to(torch.int64)
    c = t.shape[0]
    per = t[0].numel()
    if ax is None:
        fig, axes = new_figure(1, 1, (6.0, 3.5))
        ax = axes[0, 0]
    fig = ax.figure
    rng = np.random.default_rng(0)
    total = int((t < time_steps).sum())
    keep = 1.0 if total <= max_points else max_points / total
    for ci in range(c):
        idx = torch.nonzero(t[ci].flatten() < time_steps).flatten().numpy()
        if keep < 1.0:
            idx = idx[rng.random(idx.size) < keep]
        ts = t[ci].flatten().numpy()[idx]
        label = channel_names[ci] if channel_names is not None else f"channel {ci}"
        ax.scatter(ts + rng.uniform(-0.25, 0.25, size=ts.size), idx + ci * per, s=3, label=label)
    ax.set_xlim(-0.6, time_steps - 0.4)
    ax.set_xlabel("time step t")
    ax.set_ylabel("neuron (channel-major index)")
    if c <= 8:
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    return fig


def spike_frames(times, time_steps: int, ncols: int | None = None, size=(1.8, 1.8), fig=None,
                 channel_names=None) -> Figure:
    r"""One frame per time step: neurons spiking *at* ``t`` in colour over the earlier ones in grey.

    A pixel is coloured by the channel of its spike at step ``t``
    (:math:`t_{spike} = t`), grey if any channel spiked there before ``t``, white otherwise.

    Args:
        times: spike times of one sample (``>= time_steps`` = no spike).
        time_steps: ``T``.
        ncols: frames per row (default: up to 8).
        size: size of one frame in inches.
        fig: draw into this figure (or sub-figure) instead of a new one.
        channel_names: one name per channel: adds a legend of the channel colours.

    Shape:
        - times: :math:`(C, H, W)`.

    Example:
        >>> fig = spike_frames(torch.tensor([[[0, 1], [2, 5]]]), 3)
        >>> [ax.get_title() for ax in fig.axes]
        ['t = 0 (1)', 't = 1 (1)', 't = 2 (1)']
    """
    from matplotlib import colormaps

    check_tensor(times, "times", 3)
    check_positive_int(time_steps, "time_steps")
    t = times.detach().cpu().to(torch.int64).numpy()
    c, h, w = t.shape
    colors = colormaps["tab10"](np.arange(c) % 10)[:, :3]
    nrows, ncols = _grid_shape(time_steps, 8 if ncols is None else ncols)
    if fig is None:
        fig, axes = new_figure(nrows, ncols, size)
    else:
        axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    first = t.min(0)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= time_steps:
            ax.axis("off")
            continue
        img = np.ones((h, w, 3))
        img[first < i] = 0.75
        now = t == i
        for ci in range(c):
            img[now[ci]] = colors[ci]
        ax.imshow(img)
        ax.set_title(f"t = {i} ({int(now.sum())})", fontsize=9)
    if channel_names is not None:
        from matplotlib.patches import Patch

        if len(channel_names) != c:
            raise ValueError(f"channel_names: expected {c} names, got {len(channel_names)}")
        handles = [Patch(color=colors[ci], label=str(n)) for ci, n in enumerate(channel_names)]
        handles.append(Patch(color="0.75", label="fired earlier"))
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    return fig


def show_winners(potentials, winners, radius: int = 0, ax=None, title: str | None = None) -> Figure:
    r"""Winners of k-WTA drawn over the map :math:`\max_f V[T-1, f]` of the final potentials.

    Each winner ``(f, y, x)`` is a dot labelled ``f``; with ``radius > 0`` its inhibition
    window of side :math:`2r+1` is outlined. ``-1`` rows are skipped.

    Args:
        potentials: (thresholded) potentials of one sample.
        winners: from :func:`snnlab.competition.k_winners`.
        radius: inhibition radius to outline.
        ax: draw into these axes (default: a new figure).
        title: axes title.

    Shape:
        - potentials: :math:`(T, F, H, W)`; winners: :math:`(k, 3)`.

    Example:
        >>> v = torch.zeros(2, 3, 6, 6); v[1, 2, 3, 4] = 5.
        >>> fig = show_winners(v, torch.tensor([[2, 3, 4], [-1, -1, -1]]), radius=1)
        >>> len(fig.axes[0].patches)
        1
    """
    check_tensor(potentials, "potentials", 4)
    check_tensor(winners, "winners", 2)
    if ax is None:
        fig, axes = new_figure(1, 1, (4.0, 4.0))
        ax = axes[0, 0]
    fig = ax.figure
    final = _np(potentials[-1]).max(0)
    ax.imshow(final, cmap="magma")
    for f, y, x in winners.tolist():
        if f < 0:
            continue
        ax.plot(x, y, "o", color="cyan", ms=6, mec="black")
        ax.annotate(str(f), (x, y), xytext=(3, 3), textcoords="offset points", color="cyan", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.1", fc="black", ec="none", alpha=0.6))  # readable on any map
        if radius > 0:
            ax.add_patch(Rectangle((x - radius - 0.5, y - radius - 0.5), 2 * radius + 1, 2 * radius + 1,
                                   fill=False, ec="cyan", lw=1.2))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return fig


def reconstruct_features(weight, kernels, balance: bool = False) -> torch.Tensor:
    r"""Project first-layer features back to pixel space: :math:`R_f = \sum_c W_{f,c} \ast D_c`.

    Each synapse of channel ``c`` stands for the input filter :math:`D_c` (e.g. a DoG), so
    a feature's preferred pixel pattern is the full convolution of its weights with the
    filters (a transposed convolution). With ``balance``, every filter is first scaled to
    :math:`\max|D_c| = 1`. Why: the encoders divide each channel by its own local mean
    before rank-order coding, so a filter's overall scale never reaches the spike order;
    max-normalised OFF-centre DoGs are ~8x larger in magnitude than the ON-centre ones
    (their maximum is the weak surround), and without balancing they dominate every
    reconstruction (untrained kernels, all weights ~0.8, then draw as dark squares).

    Args:
        weight: first-layer kernels.
        kernels: the input filters, one per input channel (e.g. ``FilterBank.weight``).
        balance: scale each filter to unit peak magnitude first.

    Shape:
        - weight: :math:`(F, C, k_h, k_w)`; kernels: :math:`(C, K, K)` or :math:`(C, 1, K, K)`.
        - Output: :math:`(F, k_h + K - 1, k_w + K - 1)`.

    Example:
        >>> reconstruct_features(torch.ones(4, 2, 5, 5), torch.ones(2, 3, 3)).shape
        torch.Size([4, 7, 7])
        >>> d = torch.stack([torch.eye(3), -8 * torch.eye(3)])   # a weak and a strong filter
        >>> float(reconstruct_features(torch.ones(1, 2, 1, 1), d, balance=True).abs().max())
        0.0
    """
    check_tensor(weight, "weight", 4)
    check_tensor(kernels, "kernels", (3, 4))
    k = kernels.reshape(kernels.shape[0], 1, *kernels.shape[-2:]).to(weight.device, torch.float32)
    if k.shape[0] != weight.shape[1]:
        raise ValueError(f"kernels: expected {weight.shape[1]} filters (one per input channel), got {k.shape[0]}")
    if balance:
        k = k / k.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-12)
    return F.conv_transpose2d(weight.float(), k).squeeze(1)


def tile_features(features, ncols: int = 10, pad: int = 1, normalize=True) -> torch.Tensor:
    r"""Tile ``F`` maps into one image, each rescaled to :math:`(x - \min)/(\max - \min)`.

    ``normalize="shared"`` instead maps all tiles with one scale centred on zero,
    :math:`x / (2 \max_{all} |x|) + 1/2`: 0 is mid-grey, and a flat (untrained) map stays
    flat instead of having its noise stretched to full contrast.

    Args:
        features: maps to tile.
        ncols: tiles per row.
        pad: gap between tiles (filled with NaN, drawn as background).
        normalize: ``True``/``"each"`` (every map to [0, 1]), ``"shared"`` (one scale
            centred on zero) or ``False`` (values as they are).

    Shape:
        - features: :math:`(F, H, W)`.
        - Output: :math:`(rows (H + pad) - pad, ncols (W + pad) - pad)` with ``rows = ceil(F / ncols)``.

    Example:
        >>> tile_features(torch.rand(5, 3, 3), ncols=2).shape
        torch.Size([11, 7])
        >>> tile_features(torch.tensor([[[0.0, 2.0]], [[0.0, -1.0]]]), normalize="shared").tolist()
        [[0.5, 1.0, nan, 0.5, 0.25]]
    """
    check_tensor(features, "features", 3)
    check_positive_int(ncols, "ncols")
    if normalize not in (True, False, "each", "shared"):
        raise ValueError(f"normalize: expected True, False, 'each' or 'shared', got {normalize!r}")
    x = features.detach().float().cpu()
    if normalize == "shared":
        x = x / (2 * x.abs().max()).clamp_min(1e-12) + 0.5
    elif normalize:
        lo = x.flatten(1).amin(1).view(-1, 1, 1)
        hi = x.flatten(1).amax(1).view(-1, 1, 1)
        x = (x - lo) / (hi - lo).clamp_min(1e-12)
    n, h, w = x.shape
    ncols = min(ncols, n)
    rows = math.ceil(n / ncols)
    out = torch.full((rows * (h + pad) - pad, ncols * (w + pad) - pad), float("nan"))
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = x[i]
    return out


def feature_grid(features, ncols: int = 10, ax=None, title: str | None = None, cmap: str = "gray",
                 normalize=True) -> Figure:
    r"""Draw :func:`tile_features` of ``features`` (each map rescaled to [0, 1] by default).

    Args:
        features: maps, e.g. from :func:`reconstruct_features`.
        ncols: tiles per row.
        ax: draw into these axes (default: a new figure).
        title: axes title.
        cmap: colour map.
        normalize: as in :func:`tile_features` (``"shared"``: one scale for all maps, 0 = mid-grey).

    Shape:
        - features: :math:`(F, H, W)`.

    Example:
        >>> fig = feature_grid(torch.rand(6, 5, 5), ncols=3, title="features")
        >>> fig.axes[0].get_title()
        'features'
    """
    img = tile_features(features, ncols, normalize=normalize)
    if ax is None:
        fig, axes = new_figure(1, 1, (0.6 * img.shape[1] / 6 + 1, 0.6 * img.shape[0] / 6 + 0.6))
        ax = axes[0, 0]
    fig = ax.figure
    ax.imshow(img.numpy(), cmap=cmap, vmin=0, vmax=1)
    ax.set_facecolor("white")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def learning_curve(values, x=None, ax=None, label: str | None = None, xlabel: str | None = None,
                   ylabel: str | None = None, title: str | None = None, **plot_kw) -> Figure:
    r"""Plot a sequence :math:`y_i` against :math:`x_i` (default :math:`x_i = i`).

    Args:
        values: the curve.
        x: abscissae (default: ``0..n-1``).
        ax: draw into these axes (default: a new figure); call again with the same ``ax``
            to overlay curves.
        label: legend label.
        xlabel, ylabel, title: axis labels and title (``None``: leave as they are).
        **plot_kw: passed to ``Axes.plot``.

    Shape:
        - values, x: :math:`(n,)`.

    Example:
        >>> fig = learning_curve([0.1, 0.5, 0.7], label="accuracy", ylabel="accuracy")
        >>> fig.axes[0].get_ylabel()
        'accuracy'
    """
    y = _np(values).reshape(-1)
    xs = np.arange(y.size) if x is None else _np(x).reshape(-1)
    if xs.size != y.size:
        raise ValueError(f"x: expected {y.size} values to match values, got {xs.size}")
    if ax is None:
        fig, axes = new_figure(1, 1, (5.0, 3.2))
        ax = axes[0, 0]
    fig = ax.figure
    ax.plot(xs, y, label=label, **plot_kw)
    if xs.size and np.all(np.mod(xs, 1) == 0):  # epochs, time steps, sample counts: no 2.5
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if label is not None:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def feature_evolution(snapshots, kernels=None, ncols: int = 10, size: float = 1.6, balance: bool = False,
                      normalize=True) -> Figure:
    r"""Feature grids of weight snapshots taken during training, one row per snapshot.

    Each snapshot's kernels are shown in pixel space, :math:`R_f = \sum_c W_{f,c} \ast D_c`
    (:func:`reconstruct_features`), or as the raw first channel when ``kernels`` is ``None``.
    With ``normalize="shared"`` all rows share one scale centred on zero.

    Args:
        snapshots: list of ``(sample, weight)`` pairs, e.g. from
            :func:`snnlab.widgets.train_stdp_layer`.
        kernels: input filters ``(C, K, K)`` for the reconstruction (``None``: no reconstruction).
        ncols: tiles per row of each grid.
        size: height of one grid row in inches.
        balance: scale the filters to unit peak first (see :func:`reconstruct_features`).
        normalize: as in :func:`tile_features`; ``"shared"`` uses one scale for every snapshot.

    Shape:
        - weight of each snapshot: :math:`(F, C, k_h, k_w)`.

    Example:
        >>> snaps = [(0, torch.rand(4, 2, 3, 3)), (10, torch.rand(4, 2, 3, 3))]
        >>> fig = feature_evolution(snaps, torch.ones(2, 3, 3), ncols=4)
        >>> [ax.get_title() for ax in fig.axes]
        ['after 0 samples', 'after 10 samples']
    """
    if not isinstance(snapshots, (list, tuple)) or not snapshots:
        raise TypeError("snapshots: expected a non-empty list of (sample, weight) pairs")
    feats = [(step, reconstruct_features(w, kernels, balance) if kernels is not None else w[:, 0])
             for step, w in snapshots]
    if normalize == "shared":  # one scale over all snapshots, so that rows compare
        top = max(float(f.abs().max()) for _, f in feats) or 1.0
        grids = [(step, tile_features(f / top / 2 + 0.5, ncols, normalize=False)) for step, f in feats]
    else:
        grids = [(step, tile_features(f, ncols, normalize=normalize)) for step, f in feats]
    h, w = grids[0][1].shape
    fig, axes = new_figure(len(grids), 1, (size * w / h, size))
    for ax, (step, img) in zip(axes[:, 0], grids):
        ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"after {step} samples", fontsize=10)
    return fig


def confusion_plot(confusion, ax=None, normalize: bool = True, title: str | None = None,
                   class_names=None) -> Figure:
    r"""Heat-map of a confusion matrix :math:`M_{ij}` (rows = true class, columns = predicted).

    Cells print the counts; the colour is the row fraction :math:`M_{ij} / \sum_j M_{ij}`
    (``normalize=True``) or the count. A matrix with one extra column (as from
    :func:`snnlab.metrics.confusion_matrix` with ``silent=True``) labels it "silent".

    Args:
        confusion: counts.
        ax: draw into these axes (default: a new figure).
        normalize: colour by row fraction instead of count.
        title: axes title.
        class_names: names of the ``C`` classes (default: ``0 .. C-1``).

    Shape:
        - confusion: :math:`(C, C)` or :math:`(C, C + 1)`.

    Example:
        >>> fig = confusion_plot([[5, 1], [0, 4]], title="toy")
        >>> fig.axes[0].get_ylabel()
        'true class'
    """
    m = _np(confusion)
    if m.ndim != 2 or m.shape[1] not in (m.shape[0], m.shape[0] + 1):
        raise ValueError(f"confusion: expected a (C, C) or (C, C + 1) matrix, got shape {m.shape}")
    c = m.shape[0]
    names = [str(i) for i in range(c)] if class_names is None else [str(n) for n in class_names]
    if len(names) != c:
        raise ValueError(f"class_names: expected {c} names, got {len(names)}")
    if m.shape[1] > c:
        names_x = names + ["silent"]
    else:
        names_x = names
    if ax is None:
        fig, axes = new_figure(1, 1, (0.45 * len(names_x) + 1.6, 0.45 * c + 1.0))
        ax = axes[0, 0]
    fig = ax.figure
    shade = m / np.maximum(m.sum(1, keepdims=True), 1) if normalize else m
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=max(float(shade.max()), 1e-12))
    hi = float(shade.max()) or 1.0
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, f"{int(v)}" if float(v).is_integer() else f"{v:.2g}", ha="center", va="center",
                    fontsize=7, color="white" if shade[i, j] > 0.6 * hi else "black")
    ax.set_xticks(range(len(names_x)), names_x)
    ax.set_yticks(range(c), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def embedding_plot(embedding, labels, ax=None, title: str | None = None, size: float = 4.0,
                   annotate: bool = True, legend: bool = False) -> Figure:
    r"""Scatter plot of a 2-D embedding :math:`z_i`, coloured by class (``tab10``).

    With ``annotate``, each class's number is printed at the median of its points; with
    ``legend``, a legend maps each colour to its class.

    Args:
        embedding: 2-D points, e.g. from :func:`snnlab.analysis.embed_tsne`.
        labels: integer class of each point.
        ax: draw into these axes (default: a new figure).
        title: axes title.
        size: marker size.
        annotate: print class numbers at the class medians.
        legend: add a colour legend of the classes (outside the axes, on the right).

    Shape:
        - embedding: :math:`(N, 2)`; labels: :math:`(N,)`.

    Example:
        >>> fig = embedding_plot(np.random.rand(20, 2), np.arange(20) % 3, title="toy")
        >>> fig.axes[0].get_title()
        'toy'
    """
    from matplotlib import colormaps

    z = _np(embedding)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(int)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"embedding: expected an (N, 2) array, got shape {z.shape}")
    if y.shape != (len(z),):
        raise ValueError(f"labels: expected shape ({len(z)},) to match embedding, got {y.shape}")
    if ax is None:
        fig, axes = new_figure(1, 1, (4.2, 4.0))
        ax = axes[0, 0]
    fig = ax.figure
    cmap = colormaps["tab10"]
    for cl in np.unique(y):  # one scatter per class, so that the legend has one entry each
        pts = z[y == cl]
        ax.scatter(pts[:, 0], pts[:, 1], color=cmap(cl % 10), s=size, linewidths=0, label=str(cl))
    if legend:
        ax.legend(title="class", loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                  markerscale=max(1.0, 12.0 / size), frameon=False)
    if annotate:
        for cl in np.unique(y):
            mx, my = np.median(z[y == cl], 0)
            ax.text(mx, my, str(cl), fontsize=11, weight="bold", ha="center", va="center",
                    color=cmap(cl % 10), bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def bar_chart(values, ax=None, title: str | None = None, ylabel: str | None = None, fmt: str = "{:.1f}",
              log: bool = False, reference: dict | None = None) -> Figure:
    r"""Bars with their values printed on top; grouped bars for a dict of dicts.

    ``values = {name: v}`` draws one bar per name; ``values = {group: {series: v}}`` draws one
    group of bars per group, one colour per series (missing values are left out).

    Args:
        values: the numbers.
        ax: draw into these axes (default: a new figure).
        title, ylabel: labels.
        fmt: format of the printed values (``None``: print nothing).
        log: logarithmic y axis.
        reference: ``{label: value}`` drawn as dashed horizontal lines (e.g. a paper's accuracy).

    Example:
        >>> fig = bar_chart({"a": {"x": 1.0, "y": 2.0}, "b": {"x": 3.0}}, reference={"target": 2.5})
        >>> len(fig.axes[0].patches)
        3
    """
    if not isinstance(values, dict) or not values:
        raise TypeError("values: expected a non-empty dict of numbers or of dicts of numbers")
    grouped = all(isinstance(v, dict) for v in values.values())
    if not grouped and any(isinstance(v, dict) for v in values.values()):
        raise TypeError("values: mix of numbers and dicts; expected all numbers or all dicts")
    groups = list(values)
    series = []
    if grouped:
        for g in groups:
            series += [s for s in values[g] if s not in series]
    if ax is None:
        fig, axes = new_figure(1, 1, (max(3.5, 0.9 * len(groups) * max(1, len(series)) ** 0.5 + 1.5), 3.2))
        ax = axes[0, 0]
    fig = ax.figure
    xs = np.arange(len(groups))
    if grouped:
        width = 0.8 / max(len(series), 1)
        for si, s in enumerate(series):
            pts = [(x, float(values[g][s])) for x, g in zip(xs, groups) if s in values[g]]
            px = [x - 0.4 + width * (si + 0.5) for x, _ in pts]
            bars = ax.bar(px, [v for _, v in pts], width, label=str(s), color=f"C{si}")
            if fmt:
                ax.bar_label(bars, [fmt.format(v) for _, v in pts], fontsize=7)
        ax.legend(fontsize=8)
    else:
        vals = [float(values[g]) for g in groups]
        bars = ax.bar(xs, vals, 0.6, color=[f"C{i}" for i in range(len(groups))])
        if fmt:
            ax.bar_label(bars, [fmt.format(v) for v in vals], fontsize=8)
    for i, (label, v) in enumerate((reference or {}).items()):
        ax.axhline(float(v), ls="--", lw=1, color=f"C{7 + i % 3}", label=label)
    if reference:
        ax.legend(fontsize=8)
    ax.set_xticks(xs, [str(g) for g in groups])
    if log:
        ax.set_yscale("log")
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def dot_plot(values: dict, reference: dict | None = None, ax=None, title: str | None = None,
             xlabel: str = "test accuracy (%)", fmt: str = "{:.2f}", margin: float = 0.15) -> Figure:
    r"""Dot plot of a few numbers on an axis zoomed to them: one row per name, value printed.

    The axis spans :math:`[\min - m\,r, \max + m\,r]` of the values and references, with
    :math:`r` their range (at least 1), so that differences of tenths of a percent are
    visible, unlike bars from 0; references (e.g. a paper's accuracy) are vertical dashed
    lines.

    Args:
        values: ``{name: value}``, drawn top to bottom in order.
        reference: ``{label: value}`` drawn as vertical lines.
        ax: draw into these axes (default: a new figure).
        title, xlabel: labels.
        fmt: format of the printed values.
        margin: ``m``, the share of the range added on each side.

    Shape:
        - no tensors.

    Example:
        >>> fig = dot_plot({"this run": 98.53, "quick": 98.23}, reference={"paper": 98.4})
        >>> lo, hi = map(float, fig.axes[0].get_xlim()); 97.0 < lo < 98.23 and 98.53 < hi < 99.5
        True
    """
    if not isinstance(values, dict) or not values:
        raise TypeError("values: expected a non-empty dict {name: number}")
    names = list(values)
    vals = [float(values[n]) for n in names]
    refs = {str(k): float(v) for k, v in (reference or {}).items()}
    if ax is None:  # wide enough for the longest name beside a readable axis
        fig, axes = new_figure(1, 1, (4.2 + 0.075 * max(len(str(n)) for n in names), 0.45 * len(names) + 1.3))
        ax = axes[0, 0]
    fig = ax.figure
    ys = np.arange(len(names))[::-1]
    ax.hlines(ys, -1e9, vals, color="0.85", lw=1, zorder=0)  # guide from the left edge to each dot
    ax.scatter(vals, ys, s=45, color=[f"C{i % 10}" for i in range(len(names))], zorder=3)
    for v, yy in zip(vals, ys):
        ax.annotate(fmt.format(v), (v, yy), xytext=(6, 4), textcoords="offset points", fontsize=8)
    for i, (label, v) in enumerate(refs.items()):
        ax.axvline(v, ls="--", lw=1, color=("0.35", "0.6", "0.75")[i % 3], label=f"{label} ({fmt.format(v)})")
    allv = vals + list(refs.values())
    span = max(max(allv) - min(allv), 1.0)
    ax.set_xlim(min(allv) - margin * span, max(allv) + margin * span + 0.1 * span)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_yticks(ys, [str(n) for n in names])
    ax.set_xlabel(xlabel)
    if refs:
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(refs), frameon=False)
    if title:
        ax.set_title(title, fontsize=10, pad=18 if refs else 6)
    ax.grid(axis="x", alpha=0.3)
    return fig


def feature_colors(n: int):
    r"""``n`` distinct colours for feature indices ``0..n-1``, and the matching colour map.

    ``tab10``/``tab20`` repeat after 10/20 entries; this samples the perceptually ordered
    ``turbo`` map at :math:`i / (n - 1)`, so neighbouring indices get neighbouring hues and no
    two features share a colour; draw it with a colour bar labelled "feature".

    Args:
        n: number of features.

    Shape:
        - Output: ``(colors, cmap)`` with ``colors`` an :math:`(n, 4)` RGBA array and ``cmap`` a
          ``ListedColormap`` of them (use ``vmin=-0.5, vmax=n-0.5`` for integer maps).

    Example:
        >>> colors, cmap = feature_colors(30)
        >>> colors.shape, len({tuple(c) for c in colors.round(3)})
        ((30, 4), 30)
    """
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    check_positive_int(n, "n")
    colors = colormaps["turbo"](np.linspace(0.05, 0.95, n))
    return colors, ListedColormap(colors)


def _epoch_axis(ax, xs, label="epoch"):
    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(xs) == 1:  # one point: centre it instead of an axis from 0.95 to 1.05
        ax.set_xlim(xs[0] - 1, xs[0] + 1)


def _convergence_panel(ax, history):
    """STDP convergence mean w(1 - w) of every layer on one log axis: after each epoch, or
    per thousand samples when the history records ``samples``."""
    layers = list(dict.fromkeys(h["layer"] for h in history))
    per_sample = bool(history) and all("samples" in h for h in history)
    xs_all = []
    for i, layer in enumerate(layers):
        rows = [h for h in history if h["layer"] == layer]
        xs = [h["samples"] / 1000 if per_sample else h["epoch"] for h in rows]
        ys = [max(h["mean_w_1_minus_w"], 1e-12) for h in rows]  # log axis: an exact 0 drawn at 1e-12
        winners = rows[-1].get("winners_per_sample")
        ax.plot(xs, ys, "o-" if len(xs) < 40 else "-", ms=4, color=f"C{i}",
                label=f"{layer} ({len(rows)} epoch{'s' if len(rows) > 1 else ''}"
                      + (f", {winners:.2f} winners/sample)" if winners is not None else ")"))
        xs_all += xs
    ax.set_yscale("log")
    _epoch_axis(ax, sorted(set(xs_all)), "training samples (thousands)" if per_sample else "epoch of the layer")
    ax.set_ylabel("mean w(1 - w)  (0 = all at a bound)")
    ax.set_title("STDP convergence per layer", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def run_figure(results: dict) -> Figure:
    r"""The figure of a finished run, from its ``results.json`` alone, readable without the code.

    - ``kheradpisheh2018``: per layer, the STDP convergence :math:`\mathrm{mean}\,w(1-w)`
      after each epoch (0 = every weight at a bound; log scale when it spans decades); the
      SVM's validation accuracy over :math:`C` (held-out training digits), the chosen
      :math:`C` and its test accuracy, and the paper's accuracy.
    - ``mozafari2019``: conv1/conv2 convergence per epoch; then per R-STDP epoch the
      percentage of correct decisions on the training digits (during the epoch), the
      validation digits and the test set, with the epoch chosen on validation marked. A run
      saved before the validation hold-out has no validation curve: its final epoch is
      marked instead, never the best test epoch.
    - ``kulkarni2018``: train and test accuracy per NormAD epoch, the final epoch marked
      (the stored weights are the final ones), and the learning rate per epoch.

    Args:
        results: a run's ``results.json`` as a dict (``snnlab.analysis.read_results``).

    Shape:
        - no tensors.

    Example:
        >>> r = {"model": "kulkarni2018", "history": [{"epoch": 1, "lr": 2.0, "train_acc": 90.0,
        ...      "test_acc": 91.0}, {"epoch": 2, "lr": 1.0, "train_acc": 95.0, "test_acc": 94.0}],
        ...      "final_test_accuracy": 94.0, "paper_accuracy": 98.17}
        >>> fig = run_figure(r)
        >>> fig.axes[0].get_xlabel(), len(fig.axes)
        ('NormAD epoch', 2)
    """
    if not isinstance(results, dict):
        raise TypeError(f"results: expected the dict of a results.json, got {type(results).__name__}")
    model = results.get("model")
    if model == "kheradpisheh2018":
        return _kheradpisheh_figure(results)
    if model == "mozafari2019":
        return _mozafari_figure(results)
    if model == "kulkarni2018":
        return _kulkarni_figure(results)
    raise ValueError(f"results: unknown model {model!r}; expected kheradpisheh2018, mozafari2019 or kulkarni2018")


def _name(results):
    cfg = results.get("config") or {}
    return cfg.get("name", "run") if isinstance(cfg, dict) else "run"


def _kheradpisheh_figure(r):
    fig, axes = new_figure(1, 2, (4.4, 3.2))
    _convergence_panel(axes[0][0], r.get("history") or [])
    ax = axes[0][1]
    test, paper = r.get("test_accuracy"), r.get("paper_accuracy")
    val = {float(c): a for c, a in (r.get("svm_validation") or {}).items()}
    if val:
        cs = sorted(val)
        ax.plot(cs, [val[c] for c in cs], "o-", ms=4, color="C1", label="validation (held-out training digits)")
        ax.set_xscale("log")
        ax.set_xlabel("SVM regularisation C")
    chosen = r.get("svm_c")
    if test is not None:
        x = chosen if (val and chosen is not None) else 1.0
        ax.plot([x], [test], "*", ms=13, color="C3", label=f"test at the chosen C = {chosen:g}: {test:.2f}%"
                if chosen is not None else f"test: {test:.2f}%")
    if paper is not None:
        ax.axhline(paper, ls="--", lw=1, color="0.4", label=f"paper: {paper}%")
    if not val:
        ax.set_xticks([])
        ax.set_xlabel(f"C = {chosen}" if chosen is not None else "")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("linear SVM on the conv2 features", fontsize=9)
    ax.legend(fontsize=7, loc="lower center")
    ax.grid(alpha=0.3)
    lo = min([v for v in list(val.values()) + [test, paper] if v is not None])
    hi = max([v for v in list(val.values()) + [test, paper] if v is not None])
    ax.set_ylim(lo - 0.9 * max(hi - lo, 0.5), hi + 0.3 * max(hi - lo, 0.5))
    head = f"test {test:.2f}%" if test is not None else "no test accuracy"
    fig.suptitle(f"Kheradpisheh 2018 ({_name(r)}), seed {r.get('seed')}: {head}"
                 + (f" (paper {paper}%)" if paper is not None else ""), fontsize=11)
    return fig


def mozafari_headline(results: dict, at: int | None = None) -> dict:
    r"""The accuracy a Mozafari 2019 run should be quoted with, and why.

    A run with a validation hold-out quotes the test accuracy of the epoch chosen on
    validation (``chosen_epoch``); a run saved before the hold-out existed has none, so its
    final epoch is quoted. The best *test* epoch is never the headline: choosing it looks
    at the test set.

    Args:
        results: a Mozafari 2019 ``results.json`` (either format).
        at: quote the run as if it had stopped after epoch ``at`` (for comparing runs of
            different lengths): the epoch with the best validation accuracy among the first
            ``at``, the later one on ties as the protocol chooses; without validation, epoch
            ``at``. ``None``: the whole run.

    Returns:
        dict ``{"epoch", "test_accuracy", "validation_accuracy", "by", "epochs"}``; ``by``
        is ``"validation"`` or ``"final epoch (no validation set)"``.

    Shape:
        - no tensors.

    Example:
        >>> old = {"history": [{"epoch": 1, "test": {"correct": 0.9}}, {"epoch": 2, "test": {"correct": 0.8}}]}
        >>> mozafari_headline(old)["epoch"], mozafari_headline(old)["by"]
        (2, 'final epoch (no validation set)')
        >>> mozafari_headline(old, at=1)["test_accuracy"]
        90.0
    """
    hist = results.get("history") or []
    if not hist:
        raise ValueError("results: no R-STDP history to quote")
    if at is not None:
        if isinstance(at, bool) or not isinstance(at, int) or not 1 <= at <= len(hist):
            raise ValueError(f"at: expected an epoch in 1..{len(hist)} (the run's epochs), got {at!r}")
        hist = hist[:at]
    # with ``at`` the choice is made here, so a bare history (e.g. a checkpoint's) needs no chosen_epoch
    with_val = (at is not None or results.get("chosen_epoch") is not None) and any(h.get("validation") for h in hist)
    if with_val:
        ep = int(results["chosen_epoch"]) if at is None else \
            max(range(1, len(hist) + 1), key=lambda e: (hist[e - 1]["validation"]["correct"], e))
        h = hist[ep - 1]
        return {"epoch": ep, "test_accuracy": 100 * h["test"]["correct"],
                "validation_accuracy": 100 * h["validation"]["correct"], "by": "validation", "epochs": len(hist)}
    h = hist[-1]
    return {"epoch": h["epoch"], "test_accuracy": 100 * h["test"]["correct"], "validation_accuracy": None,
            "by": "final epoch (no validation set)", "epochs": len(hist)}


def _mozafari_figure(r):
    hist = r.get("history") or []
    zoom = len(hist) > 20  # long runs: a second panel zoomed on the epochs after the first tenth
    fig = Figure(figsize=(13.5 if zoom else 10.0, 3.3), layout="constrained")
    grid = fig.add_gridspec(1, 7 if zoom else 5)
    _convergence_panel(fig.add_subplot(grid[0, :2]), r.get("stdp_history") or [])
    panels = [(fig.add_subplot(grid[0, 2:5]), 0)]
    if zoom:
        panels.append((fig.add_subplot(grid[0, 5:]), len(hist) // 10))
    paper = r.get("paper_accuracy")
    head = mozafari_headline(r) if hist else None
    curves = [("train", "train (during the epoch)", "C0"), ("validation", "validation (held-out training digits)", "C2"),
              ("test", "test", "C3")]
    for ax, start in panels:
        part = hist[start:]
        eps = [h["epoch"] for h in part]
        style = "o-" if len(eps) < 30 else "-"
        shown = []
        for key, label, color in curves:
            if part and all(h.get(key) for h in part):
                ys = [100 * h[key]["correct"] for h in part]
                shown += ys
                ax.plot(eps, ys, style, ms=3, lw=1.1, color=color, label=label)
        if head is not None:
            ax.axvline(head["epoch"], ls=":", lw=1.2, color="black")
            ax.plot([head["epoch"]], [head["test_accuracy"]], "*", ms=12, color="C3",
                    label=(f"chosen on validation: epoch {head['epoch']}, test {head['test_accuracy']:.2f}%"
                           if head["by"] == "validation" else
                           f"no validation set: final epoch {head['epoch']}, test {head['test_accuracy']:.2f}%"))
        if paper is not None:
            ax.axhline(paper, ls="--", lw=1, color="0.4", label=f"paper: {paper}%")
            shown.append(paper)
        if eps:
            _epoch_axis(ax, eps, "R-STDP epoch")
        if start and shown:
            ax.set_ylim(min(shown) - 0.3, max(shown) + 0.3)
        ax.set_ylabel("correct decisions (%)")
        ax.set_title("conv3 trained by R-STDP" if not start else f"zoom: epochs {start + 1}-{len(hist)}", fontsize=9)
        ax.grid(alpha=0.3)
    panels[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Mozafari 2019 ({_name(r)}), seed {r.get('seed')}", fontsize=11)
    return fig


def _kulkarni_figure(r):
    eps = r.get("history") or []  # older files: snnlab.analysis.read_results adds today's names
    fig, axes = new_figure(1, 2, (4.2, 3.0))
    ax, ax_lr = axes[0]
    if eps:
        xs = [e["epoch"] for e in eps]
        ax.plot(xs, [e["train_acc"] for e in eps], "o-", ms=3, color="C0", label="train (during the epoch)")
        ax.plot(xs, [e["test_acc"] for e in eps], "s-", ms=3, color="C3", label="test")
        final = r.get("final_test_accuracy", eps[-1]["test_acc"])
        ax.axvline(xs[-1], ls=":", lw=1.2, color="black")
        ax.plot([xs[-1]], [final], "*", ms=12, color="C3", label=f"final epoch (stored weights): {final:.2f}%")
        ax_lr.step(xs, [e["lr"] for e in eps], where="post", color="C1")
        _epoch_axis(ax, xs, "NormAD epoch")
        _epoch_axis(ax_lr, xs, "NormAD epoch")
    paper = r.get("paper_accuracy")
    if paper is not None:
        ax.axhline(paper, ls="--", lw=1, color="0.4", label=f"paper: {paper}%")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("output layer trained by NormAD", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    ax_lr.set_ylabel("NormAD step (pA)")
    ax_lr.set_title("learning rate per epoch", fontsize=9)
    ax_lr.grid(alpha=0.3)
    cfg = r.get("config") or {}
    fig.suptitle(f"Kulkarni & Rajendran 2018: {cfg.get('n_train', '?')} training images, seed {r.get('seed')}",
                 fontsize=11)
    return fig
