"""Competition between neurons: point-wise inhibition, k-winners-take-all, feature inhibition.

All functions are batched and run on the tensors' device. :func:`k_winners`, the checked
entry point, first refuses NaN or infinite potentials and non-binary spikes (one host sync);
the steps it is made of (:func:`winner_keys`, :func:`pick_winners`) never synchronise with the
host (no ``.item()``), so they can sit inside device-resident training loops.
"""
from __future__ import annotations

import torch

from ._checks import as_batch, check_finite, check_nonnegative_int, check_positive_int

__all__ = ["pointwise_inhibition", "k_winners", "winner_keys", "pick_winners", "feature_inhibition", "inhibit_times"]


def pointwise_inhibition(thresholded: torch.Tensor) -> torch.Tensor:
    r"""At each location only one feature may fire: the earliest, then the strongest.

    For every ``(y, x)`` the winner is the feature that spikes first; among features first
    spiking at that same step, the one with the highest potential there (lowest index on
    exact ties). All other features at that location are zeroed at all time steps.

    Args:
        thresholded: thresholded potentials (zero where a neuron has not fired), or a
            spike-wave.

    Shape:
        - Input: :math:`(B, T, C, H, W)` or :math:`(T, C, H, W)`.
        - Output: same shape.

    Example:
        >>> v = torch.zeros(2, 2, 1, 1); v[0, 1] = 5.; v[1, 0] = 9.; v[1, 1] = 6.
        >>> pointwise_inhibition(v)[:, :, 0, 0]
        tensor([[0., 5.],
                [0., 6.]])
    """
    xb, single = as_batch(thresholded, "thresholded", 5)
    best, feat = xb.max(dim=2, keepdim=True)            # (B, T, 1, H, W)
    fired, t_first = best.sign().max(dim=1, keepdim=True)  # first step with any spike
    winner = feat.gather(1, t_first)                    # (B, 1, 1, H, W)
    coef = torch.zeros_like(xb[:, :1]).scatter_(2, winner, fired)
    out = xb * coef
    return out[0] if single else out


def winner_keys(potentials: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    r"""Ranking keys of k-WTA: earliest spike first, then potential at the first spike.

    :math:`key = \sum_t S[t]\,(V[t_0] + v)` with :math:`t_0` the first spike step and
    :math:`v = T \max(S\,V[t_0])` per sample, so more spiking steps always rank higher; the
    reference's float arithmetic is kept so that ties break the same way. Zero = silent.

    Shape:
        - potentials, spikes: :math:`(B, T, C, H, W)`.
        - Output: :math:`(B, C, H, W)`.
    """
    t_first = spikes.max(dim=1, keepdim=True)[1]
    values = potentials.gather(1, t_first)
    truncated = spikes * values
    v = truncated.flatten(1).amax(1).view(-1, 1, 1, 1, 1) * potentials.shape[1]
    truncated = truncated + spikes * v
    return truncated.sum(dim=1)


def k_winners(potentials: torch.Tensor, k: int = 1, radius: int = 0, spikes: torch.Tensor | None = None):
    r"""k-winners-take-all with one winner per feature and lateral inhibition.

    Neurons are ranked by earliest spike, then by potential at their first spike
    (:func:`winner_keys`). The best becomes a winner ``(feature, y, x)``; its whole feature
    map is excluded and, for ``radius > 0``, so is the ``(2r+1)^2`` window around
    ``(y, x)`` in every feature map; repeat until ``k`` winners or no spiking neuron left.
    Only positive potentials spike: a sample whose potentials are all ``<= 0`` has no winner.

    Args:
        potentials: (thresholded) potentials, finite.
        k: maximum number of winners.
        radius: lateral inhibition radius (0: none).
        spikes: binary spike-wave (default: :math:`[V > 0]`).

    Raises:
        ValueError: NaN or infinite potentials (they would pick arbitrary winners), or
            spikes other than 0 and 1.

    Returns:
        int64 winners ``(feature, y, x)`` in the order they were picked; rows of ``-1``
        pad samples with fewer than ``k`` winners.

    Shape:
        - potentials, spikes: :math:`(B, T, C, H, W)` or :math:`(T, C, H, W)`.
        - Output: :math:`(B, k, 3)` or :math:`(k, 3)`.

    Example:
        >>> v = torch.zeros(1, 2, 3, 3); v[0, 0, 1, 1] = 5.; v[0, 1, 1, 2] = 4.
        >>> k_winners(v, k=2, radius=0).tolist()
        [[0, 1, 1], [1, 1, 2]]
        >>> k_winners(v, k=2, radius=1).tolist()
        [[0, 1, 1], [-1, -1, -1]]
    """
    vb, single = as_batch(potentials, "potentials", 5)
    check_positive_int(k, "k")
    check_nonnegative_int(radius, "radius")
    check_finite(vb, "potentials")
    if spikes is None:
        sb = (vb > 0).to(vb.dtype)  # for thresholded potentials (>= 0) the reference's sign()
    else:
        sb, _ = as_batch(spikes, "spikes", 5)
        if sb.shape != vb.shape:
            raise ValueError(f"spikes: shape {tuple(spikes.shape)} differs from potentials {tuple(potentials.shape)}")
        if not bool(((sb == 0) | (sb == 1)).all()):
            raise ValueError("spikes: expected a binary (0/1) spike-wave")
    winners = pick_winners(winner_keys(vb, sb), k, radius)
    return winners[0] if single else winners


def pick_winners(keys: torch.Tensor, k: int, radius: int = 0) -> torch.Tensor:
    r"""The k-WTA selection on ranking keys: best key (first maximum on ties), exclude its
    feature and, for ``radius > 0``, its :math:`(2r+1)^2` window in every feature; repeat.

    Args:
        keys: non-negative ranking keys, 0 = silent (:func:`winner_keys`).
        k: maximum number of winners.
        radius: lateral inhibition radius.

    Returns:
        int64 winners ``(feature, y, x)``, rows of ``-1`` when fewer than ``k`` keys are positive
        (a key ``<= 0`` never wins).

    Shape:
        - keys: :math:`(B, C, H, W)`; output: :math:`(B, k, 3)`.

    Example:
        >>> keys = torch.zeros(1, 2, 3, 3); keys[0, 0, 1, 1] = 5.; keys[0, 1, 1, 2] = 4.
        >>> pick_winners(keys, 2, radius=1).tolist()
        [[[0, 1, 1], [-1, -1, -1]]]
    """
    b, c, h, w = keys.shape
    dev = keys.device
    feats = torch.arange(c, device=dev).view(1, c, 1, 1)
    rows = torch.arange(h, device=dev).view(1, 1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, 1, w)
    winners = torch.full((b, k, 3), -1, dtype=torch.long, device=dev)
    alive = torch.ones(b, dtype=torch.bool, device=dev)
    for i in range(min(k, c)):
        best, idx = keys.flatten(1).max(1)
        alive = alive & (best > 0)
        f, rem = idx // (h * w), idx % (h * w)
        y, x = rem // w, rem % w
        found = torch.stack([f, y, x], 1)
        winners[:, i] = torch.where(alive[:, None], found, winners[:, i])
        mask = feats == f.view(b, 1, 1, 1)
        if radius > 0:
            near = ((rows - y.view(b, 1, 1, 1)).abs() <= radius) & ((cols - x.view(b, 1, 1, 1)).abs() <= radius)
            mask = mask | near
        keys = keys.masked_fill(mask, 0)
    return winners


def feature_inhibition(potentials: torch.Tensor, features) -> torch.Tensor:
    r"""Silence whole feature maps: :math:`V[:, f] = 0` for every ``f`` in ``features``.

    Args:
        potentials: potentials or spikes.
        features: a sequence of feature indices, or a bool mask of length ``C``, or for
            per-sample inhibition a bool mask ``(B, C)``.

    Shape:
        - potentials: :math:`(B, T, C, H, W)` or :math:`(T, C, H, W)`.
        - Output: same shape.

    Example:
        >>> feature_inhibition(torch.ones(1, 3, 1, 1), [0, 2]).flatten().tolist()
        [0.0, 1.0, 0.0]
    """
    vb, single = as_batch(potentials, "potentials", 5)
    c = vb.shape[2]
    if isinstance(features, torch.Tensor) and features.dtype == torch.bool:
        mask = features.to(vb.device)
        if mask.shape not in ((c,), (vb.shape[0], c)):
            raise ValueError(f"features: bool mask must have shape ({c},) or ({vb.shape[0]}, {c}), got {tuple(mask.shape)}")
    else:
        idx = torch.as_tensor(list(features) if not isinstance(features, torch.Tensor) else features,
                              dtype=torch.long).flatten()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= c):
            raise ValueError(f"features: indices must lie in [0, {c}), got {idx.tolist()}")
        mask = torch.zeros(c, dtype=torch.bool, device=vb.device)
        mask[idx.to(vb.device)] = True
    mask = mask.view(-1, 1, c, 1, 1) if mask.dim() == 2 else mask.view(1, 1, c, 1, 1)
    out = vb.masked_fill(mask, 0)
    return out[0] if single else out


def inhibit_times(times: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Point-wise inhibition of a spike-wave given as times: per location only the earliest
    feature keeps its spike (the lowest index among simultaneous ones).

    Shape:
        - Input/Output: :math:`(B, C, H, W)`.

    Example:
        >>> t = torch.tensor([[[[4]], [[2]], [[2]]]], dtype=torch.uint8)
        >>> inhibit_times(t, 15).flatten().tolist()
        [15, 2, 15]
    """
    first = times.argmin(1, keepdim=True)
    keep = torch.zeros_like(times, dtype=torch.bool).scatter_(1, first, True)
    return times.masked_fill(~keep, time_steps)
