"""Layer-wise training and inference loops shared by the reproduction models.

Exact mode reproduces the published one-sample-at-a-time semantics; it is made fast by
these facts:

- *frozen-layer caches*: while a layer learns, the layers below are frozen, so each
  sample's layer input (spike times, uint8) is computed once, batched;
- *exact chunking by correction*: potentials of a chunk of samples are computed in one
  batched convolution with the chunk-start weights, and before each sample only the
  features whose kernels changed earlier in the chunk are recomputed (conv2d on CPU gives
  the same bits for any batch of two or more images and any subset of features, so results
  are bit-identical to the plain loop; on CPU the chunk is 1 by default, as batching buys
  nothing there);
- *sparse competition*: only the ~1% of neurons that fire at all are looked at after one
  pass over the last time slice, and only the winners' kernel rows are updated; on CPU
  the last slice is convolved first and all T slices only over the box of neurons that
  can fire (a crop gives the same bits as the whole map);
- *final-slice inference*: weights are non-negative and spike-waves cumulative, so where
  no time-dependent competition applies a neuron "spiked at all" iff its potential on the
  last time slice exceeds the threshold: 1/T of the work.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import _decision_kernels, _stdp_kernels
from ._batching import _progress, batch_for, batched_map, chunks
from .coding import times_to_wave
from .competition import pick_winners
from .learning import _receptive_fields, _stabilise, apply_stdp, batch_stdp, stdp_pairing, stdp_rates_for_winners

__all__ = [
    "StdpLayer",
    "train_stdp",
    "compete",
    "decide",
    "train_rstdp",
    "binary_conv_agrees",
]


@dataclass
class StdpLayer:
    """Hyper-parameters of one STDP-trained layer.

    Args:
        threshold: firing threshold.
        k: winners per sample.
        radius: lateral inhibition radius of k-WTA.
        pointwise: point-wise inhibition before k-WTA.
        stabilizer: multiply updates by ``(w - LB)(UB - w)``.
        lower, upper: weight bounds.
        flush_below: weights below this magnitude become 0 (avoids subnormal slow-downs).
    """

    threshold: float
    k: int
    radius: int
    pointwise: bool = True
    stabilizer: bool = True
    lower: float = 0.0
    upper: float = 1.0
    flush_below: float = 1e-30


@torch.no_grad()
def train_stdp(weight: torch.Tensor, input_times: torch.Tensor, spec: StdpLayer, rates: torch.Tensor,
               time_steps: int, chunk: int | None = None, progress: bool = False, desc: str = "STDP",
               mode: str = "exact", batch: int = 16) -> dict:
    r"""STDP training of one layer: exact (sample by sample, chunked by correction) or batched.

    Exact mode, for each sample: potentials :math:`V = W \star S`, fire, (point-wise
    inhibition), k-WTA, and the STDP update of the winners, in order; the next sample sees the
    updated weights. Identical to the plain loop (tested), but potentials of ``chunk`` samples
    are computed at once and only the kernels changed inside the chunk are recomputed.

    Batched mode: the winners of ``batch`` samples are found with the batch-start weights
    :math:`W_0` and their updates summed, :math:`W \leftarrow \mathrm{clip}(W_0 + s(W_0)
    \sum_b \sum_{w \in b} a_{b,w})` (:func:`~snnlab.learning.batch_stdp`); ``batch=1`` is
    exact mode.

    Args:
        weight: ``(F, C, kh, kw)``, updated in place.
        input_times: padded layer input as spike times (uint8).
        spec: the layer's hyper-parameters.
        rates: per-sample ``(a_plus, a_minus)``, from :func:`snnlab.learning.rate_schedule`.
        time_steps: ``T``.
        chunk: samples per batched convolution; ``None``: 1 on CPU (where one batched
            convolution costs as much per sample as one sample's, so the corrections would be
            pure overhead), 32 elsewhere. At most ``F // (4k)`` either way.
        progress: show a progress bar.
        desc: its label.
        mode: ``"exact"`` or ``"batched"``.
        batch: samples per update in batched mode.

    Returns:
        ``{"winners": int64 (N, k, 3), "spikes": int64 (N,)}``: each sample's winners and
        its number of output spikes after inhibition.

    Shape:
        - input_times: :math:`(N, C, H, W)`; rates: :math:`(N, 2)`.
    """
    n = len(input_times)
    if rates.shape != (n, 2):
        raise ValueError(f"rates: expected shape ({n}, 2), got {tuple(rates.shape)}")
    if mode not in ("exact", "batched"):
        raise ValueError(f"mode: expected 'exact' or 'batched', got {mode!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected a positive int, got {batch!r}")
    if mode == "batched":
        return _train_stdp_batched(weight, input_times, spec, rates, time_steps, batch, progress, desc)
    dev = weight.device
    nf = weight.shape[0]
    ks = weight.shape[-2:]
    if chunk is None:
        chunk = 1 if dev.type == "cpu" else 32
    # each sample changes up to k kernels: past ~F/(4k) samples a chunk would recompute
    # most of the layer anyway, so larger chunks only add work
    chunk = max(1, min(chunk, nf // (4 * spec.k)))
    all_winners = np.full((n, spec.k, 3), -1, dtype=np.int64)
    n_spikes = np.zeros(n, dtype=np.int64)
    # the reference clips (and we flush) every kernel at each update call: after the first
    # one, doing so again on untouched kernels is a no-op, so only the winners' rows need it
    first_update = True
    rates = rates.to(dev)
    # CPU: the per-sample steps after the convolution run in compiled loops (same bits)
    compiled = dev.type == "cpu" and _stdp_kernels.available() and weight.dtype == torch.float32 \
        and weight.is_contiguous()
    if compiled:
        w_np = weight.detach().numpy()
        rates_np = rates.float().numpy()
        bounds = (np.float32(spec.lower), np.float32(spec.upper), np.float32(spec.flush_below))
    bar = _progress(range(n), progress, desc=desc, unit="sample", mininterval=1.0)
    it = iter(bar)
    # spike-waves of whole maps are built for blocks of samples (one sample's call costs
    # mostly overhead), and only where a chunk is convolved whole
    block = chunk * -(-64 // chunk)
    for a0, b0 in chunks(n, block):
        tin_block = input_times[a0:b0].to(dev)
        wave_block = None
        for a, b in chunks(b0 - a0, chunk):
            tin = tin_block[a:b]
            if chunk == 1 and not first_update:
                s = a0 + a
                next(it, None)
                win, n_spikes[s], t_win = _compete_cropped(tin[0], weight, spec, time_steps)
                if compiled:
                    _stdp_kernels.update(w_np, tin[0].numpy(), win, t_win, rates_np[s, 0], rates_np[s, 1],
                                         spec.stabilizer, *bounds)
                else:
                    _update_winners(weight, tin[0], win, t_win, rates[s], spec)
                all_winners[s] = win
                continue
            if wave_block is None:
                wave_block = times_to_wave(tin_block, time_steps)
            wave = wave_block[a:b]
            pots = F.conv2d(wave.flatten(0, 1), weight)
            pots = pots.view(b - a, time_steps, *pots.shape[1:])
            changed = torch.zeros(nf, dtype=torch.bool, device=dev)
            for i in range(b - a):
                s = a0 + a + i
                next(it, None)
                pot = pots[i]
                if i and bool(changed.any()):
                    idx = changed.nonzero().flatten()
                    pot[:, idx] = F.conv2d(wave[i], weight[idx])
                win, out_t, n_spk, t_win = _compete(pot, spec, time_steps)
                if first_update:
                    w = torch.from_numpy(win).to(dev)
                    pair = stdp_pairing(tin[i:i + 1], out_t[None], w[None], ks)
                    lr = stdp_rates_for_winners(pair, w[None], rates[s].view(1, 2).expand(nf, 2))
                    apply_stdp(weight, w, lr[0], spec.stabilizer, spec.lower, spec.upper,
                               clamp_all=True, flush_below=spec.flush_below)
                    changed[:] = True
                    first_update = False
                else:
                    rows = _update_winners(weight, tin[i], win, t_win, rates[s], spec)
                    changed[rows] = True
                all_winners[s] = win
                n_spikes[s] = n_spk
    if progress:
        bar.close()
    return {"winners": torch.from_numpy(all_winners), "spikes": torch.from_numpy(n_spikes)}


def _train_stdp_batched(weight, input_times, spec, rates, time_steps, batch, progress, desc, dense=None):
    # dense: one convolution and a device-side competition per mini-batch, with no host
    # synchronisation (the accelerator path); otherwise (default on CPU, where it is faster)
    # each sample is convolved over the box of neurons that can fire and competes on the host
    n = len(input_times)
    dev = weight.device
    nf = weight.shape[0]
    kh, kw = weight.shape[-2:]
    dense = dev.type != "cpu" if dense is None else dense
    winners_all, spikes_all = [], []
    rates = rates.to(dev)
    bar = _progress(chunks(n, batch), progress, desc=desc, unit="batch", mininterval=1.0)
    for a, b in bar:
        tin = input_times[a:b].to(dev)
        if dense:
            pots = F.conv2d(times_to_wave(tin, time_steps).flatten(0, 1), weight)
            pots = pots.view(b - a, time_steps, nf, *pots.shape[-2:])
            winners, t_win, n_spk, _ = _compete_batch(pots, spec, time_steps)
        else:
            found = [_compete_cropped(tin[i], weight, spec, time_steps) for i in range(b - a)]
            winners = torch.from_numpy(np.stack([f[0] for f in found])).to(dev)
            n_spk = torch.tensor([f[1] for f in found])
            t_win = torch.from_numpy(np.stack([f[2] for f in found])).to(dev)
        patches = _receptive_fields(tin, winners, (kh, kw)).to(torch.int16)  # (B, k, C, kh, kw)
        r = rates[a:b].view(b - a, 1, 2, 1, 1, 1)
        lr = torch.where(patches <= t_win.view(b - a, -1, 1, 1, 1), r[:, :, 0], r[:, :, 1])
        lr = lr * (winners[..., 0] >= 0).view(b - a, -1, 1, 1, 1)  # padding rows learn nothing
        batch_stdp(weight, winners, lr, spec.stabilizer, spec.lower, spec.upper, flush_below=spec.flush_below)
        winners_all.append(winners)
        spikes_all.append(n_spk)
    if not winners_all:
        return {"winners": torch.full((0, spec.k, 3), -1, dtype=torch.long), "spikes": torch.zeros(0, dtype=torch.long)}
    return {"winners": torch.cat(winners_all).cpu(), "spikes": torch.cat([s.cpu() for s in spikes_all]).long()}


@torch.no_grad()
def _compete_batch(pots, spec, time_steps):
    # _compete for a mini-batch, dense and on the device: fire, point-wise inhibition and the
    # k-WTA ranking in the same float32 arithmetic (keys accumulated step by step, first
    # maximum on ties, i.e. the lowest flat (f, y, x) index), so each sample gets the winners,
    # winner times and spike count of _compete (tested). pots (B, T, F, H, W) ->
    # winners (B, k, 3) (-1 rows pad), t_win (B, k) (T for pads), n_spikes (B,), out_t (B, F, H, W)
    t = time_steps
    b, _, nf, h, w = pots.shape
    dev = pots.device
    n_above = (pots > spec.threshold).sum(1)
    t_first = t - n_above  # potentials never decrease: first spike; T = silent
    live = n_above > 0
    v_first = pots.gather(1, t_first.clamp(max=t - 1).unsqueeze(1)).squeeze(1)
    fi = torch.arange(nf, device=dev).view(1, nf, 1, 1)
    if spec.pointwise:  # per location: earliest spike, then highest potential then, then lowest feature
        keep = live & (t_first == t_first.min(1, keepdim=True).values)
        v = torch.where(keep, v_first, -float("inf"))
        keep &= v_first == v.max(1, keepdim=True).values
        keep &= fi == torch.where(keep, fi, nf).min(1, keepdim=True).values
        live = keep
    out_t = torch.where(live, t_first, t)
    vf = torch.where(live, v_first, 0.0)
    step = vf + vf.flatten(1).max(1).values.view(b, 1, 1, 1) * float(t)
    keys = torch.zeros_like(vf)
    acc = step.clone()
    last = t - 1 - t_first
    for m in range(t):  # key = step added (T - t_first) times in sequence, as _k_winners_of
        keys = torch.where(last == m, acc, keys)
        acc = acc + step
    keys = keys.masked_fill(~live, 0.0)
    winners = pick_winners(keys, spec.k, spec.radius)
    valid = winners[..., 0] >= 0
    flat = (winners[..., 0] * h + winners[..., 1]) * w + winners[..., 2]
    t_win = torch.where(valid, out_t.flatten(1).gather(1, flat.clamp_min(0)), t)
    return winners, t_win, live.flatten(1).sum(1), out_t


def _compete_cropped(tin, weight, spec, time_steps):
    # _compete for one sample (spike times tin (C, H, W)), convolving all T slices only over
    # the bounding box of the neurons that can fire at all. The box comes from a convolution
    # of the last slice alone (1/T of the work), whose bits may differ from the T-slice
    # convolution's by rounding: a margin covers that (|error| <= N u * sum|terms| for each of
    # the two sums, N taps, unit roundoff u = 2**-24, |w| <= bound, inputs 0/1). Convolving a
    # crop gives the same bits as the same outputs of the whole map (checked on real data of
    # all four layers), and the flat (f, y, x) order, hence every tie-break, is unchanged
    # within the box. Only the box's spike-wave is built: the whole map's would cost as much
    # memory traffic as the competition itself.
    c, kh, kw = weight.shape[1:]
    n_taps = c * kh * kw
    margin = n_taps * n_taps * max(abs(spec.lower), abs(spec.upper)) * 2.0 ** -23
    last = F.conv2d((tin < time_steps).to(weight.dtype)[None], weight)[0]
    compiled = last.device.type == "cpu" and _stdp_kernels.available()
    if compiled:
        y0, y1, x0, x1 = _stdp_kernels.live_box(last.numpy(), np.float32(spec.threshold - margin))
    else:
        live = (last > spec.threshold - margin).any(0)
        rows, cols = live.any(1).nonzero().flatten(), live.any(0).nonzero().flatten()
        y0, y1, x0, x1 = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1) if len(rows) else (0,) * 4
    if y1 == 0:
        return np.full((spec.k, 3), -1, dtype=np.int64), 0, np.full(spec.k, time_steps, dtype=np.int64)
    pot = F.conv2d(times_to_wave(tin[:, y0:y1 + kh - 1, x0:x1 + kw - 1], time_steps, weight.dtype), weight)
    if compiled:
        win, t_win, n_spk = _stdp_kernels.compete(np.ascontiguousarray(pot.numpy()), np.float32(spec.threshold),
                                                  spec.k, spec.radius, spec.pointwise)
    else:
        win, _, n_spk, t_win = _compete(pot, spec, time_steps)
    valid = win[:, 0] >= 0
    win[valid, 1] += y0
    win[valid, 2] += x0
    return win, n_spk, t_win


def _update_winners(weight, tin, win, t_win, rates, spec):
    # apply_stdp for one sample, on the winners' rows only (k-WTA gives each winner its own
    # feature, so rows are distinct); same arithmetic, so the same bits. t_win: the winners'
    # output spike times
    valid = win[:, 0] >= 0
    win, t_win = win[valid], t_win[valid]
    if not len(win):
        return []
    kh, kw = weight.shape[-2:]
    rows = torch.from_numpy(win[:, 0]).to(weight.device)
    patches = torch.stack([tin[:, y:y + kh, x:x + kw] for _, y, x in win.tolist()])
    t_out = torch.from_numpy(t_win.astype(np.int16)).to(weight.device)
    lr = torch.where(patches.to(torch.int16) <= t_out.view(-1, 1, 1, 1), rates[0], rates[1])
    w = weight[rows]
    w += lr * _stabilise(w, spec.stabilizer, spec.lower, spec.upper)
    w.clamp_(spec.lower, spec.upper)
    if spec.flush_below > 0:
        w.masked_fill_(w.abs() < spec.flush_below, 0.0)
    weight[rows] = w
    return rows


@torch.no_grad()
def compete(potentials: torch.Tensor, spec: StdpLayer, time_steps: int):
    r"""Fire, point-wise inhibition and k-WTA of one sample, on first-spike times.

    Equal, bit for bit, to ``fire`` -> :func:`~snnlab.competition.pointwise_inhibition` ->
    :func:`~snnlab.competition.k_winners` on the full potentials, but only the last time slice
    is scanned in full: potentials never decrease, so a neuron fires at all iff
    :math:`V[T-1] > \theta`, and only those neurons (typically about 1%) are looked at further:
    their first spike :math:`t_0 = T - \#\{t : V[t] > \theta\}` and :math:`V[t_0]`. Point-wise
    inhibition leaves at most one of them per location, and the k-WTA ranking (in the
    reference's float arithmetic) runs on those.

    Args:
        potentials: one sample's potentials (non-negative weights: non-decreasing in time).
        spec: threshold, ``k``, radius and point-wise inhibition of the layer.
        time_steps: ``T``.

    Returns:
        ``(winners, output_times, n_spikes)``: int64 ``(k, 3)`` (``-1`` rows pad), the output
        spike times ``(F, H, W)`` int16 after inhibition (``T`` = silent), and the number of
        output neurons that fire after inhibition.

    Shape:
        - potentials: :math:`(T, F, H, W)`.

    Example:
        >>> pot = torch.zeros(3, 2, 1, 2); pot[1:, 0, 0, 1] = 5.0; pot[2, 1, 0, 0] = 4.0
        >>> win, tout, n = compete(pot, StdpLayer(threshold=1.0, k=2, radius=0), 3)
        >>> win.tolist(), tout[:, 0].tolist(), n
        ([[0, 0, 1], [1, 0, 0]], [[3, 1], [2, 3]], 2)
    """
    win, out_t, n, _ = _compete(potentials, spec, time_steps)
    return torch.from_numpy(win).to(potentials.device), out_t, n


def _compete(potentials, spec, time_steps):
    # compete() with the winners as a numpy array (the training loop's form), and their
    # output spike times
    t = time_steps
    nf, h, w = potentials.shape[1:]
    dev = potentials.device
    flat = potentials.reshape(t, -1)
    idx = (flat[-1] > spec.threshold).nonzero().flatten()  # ascending flat (f, y, x) order
    sub = flat.index_select(1, idx)
    t_first = t - (sub > spec.threshold).sum(0, dtype=torch.uint8).long()
    v_first = sub.gather(0, t_first[None])[0]
    if spec.pointwise:
        # per location: earliest spike, then highest potential then, then lowest feature
        hw = h * w
        loc, feat = idx % hw, idx // hw
        tmin = torch.full((hw,), t, dtype=t_first.dtype, device=dev).scatter_reduce(0, loc, t_first, "amin")
        keep = t_first == tmin[loc]
        vmax = torch.full((hw,), -float("inf"), device=dev).scatter_reduce(
            0, loc, torch.where(keep, v_first, -float("inf")), "amax")
        keep &= v_first == vmax[loc]
        fmin = torch.full((hw,), nf, dtype=feat.dtype, device=dev).scatter_reduce(
            0, loc, torch.where(keep, feat, nf), "amin")
        keep &= feat == fmin[loc]
        idx, t_first, v_first = idx[keep], t_first[keep], v_first[keep]
    out_t = torch.full((nf * h * w,), t, dtype=torch.int16, device=dev)
    out_t[idx] = t_first.to(torch.int16)
    out_t = out_t.view(nf, h, w)
    # k-WTA touches at most one neuron per location: numpy beats torch's per-op overhead
    idx, tf, vf = idx.cpu().numpy(), t_first.cpu().numpy(), v_first.cpu().numpy()
    winners, t_win = _k_winners_of(idx, tf, vf, spec, t, nf, h, w)
    return winners, out_t, len(idx), t_win


def _k_winners_of(idx, tf, vf, spec, t, nf, h, w):
    # k-WTA on the first-spike times and potentials of the neurons that fire (flat indices in
    # ascending order, as the reference ranks ties), in the reference's float32 arithmetic:
    # key = V[t0] + T * max V[t0], added once per time step from t0 on, in sequence
    # (np.add.accumulate is sequential; see competition.winner_keys)
    winners = np.full((spec.k, 3), -1, dtype=np.int64)
    t_win = np.full(spec.k, t, dtype=np.int64)
    if not len(idx):
        return winners, t_win
    step = vf + vf.max() * np.float32(t)
    sums = np.add.accumulate(np.broadcast_to(step, (t, len(step))), axis=0)
    keys = sums[t - 1 - tf, np.arange(len(step))]
    fs, ys, xs = idx // (h * w), idx // w % h, idx % w
    for i in range(min(spec.k, nf)):
        j = int(keys.argmax())
        if keys[j] == 0:
            break
        winners[i] = fs[j], ys[j], xs[j]
        t_win[i] = tf[j]
        off = fs == fs[j]
        if spec.radius > 0:
            off |= (np.abs(ys - ys[j]) <= spec.radius) & (np.abs(xs - xs[j]) <= spec.radius)
        keys[off] = 0
    return winners, t_win


def _in_bounds(weight, lower, upper):
    return bool(((weight >= lower) & (weight <= upper)).all())


def _decision_keys(pot: torch.Tensor, time_steps: int) -> torch.Tensor:
    # k-WTA keys of a decision layer (no threshold: every positive neuron spikes at T-1),
    # in the reference's float arithmetic: fl(V + T * max V+) for V > 0, else 0
    pos = pot.clamp_min(0)
    v = pos.flatten(1).amax(1).view(-1, *([1] * (pot.dim() - 1))) * time_steps
    return torch.where(pot > 0, pot + v, torch.zeros((), device=pot.device))


def decide(weight: torch.Tensor, inputs: torch.Tensor, decision_map: torch.Tensor, time_steps: int,
           batch_size: int | None = None, padding: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Decisions of a last (decision) layer from its final-slice input, batched.

    The winner is the neuron with the largest potential :math:`V = W \star x` (k-WTA with
    ``k = 1`` on the last time step); its feature's class is the decision, ``-1`` if no
    neuron has positive potential.

    Args:
        weight: ``(F, C, kh, kw)``.
        inputs: ``(N, C, H, W)`` final-slice input spikes (0/1).
        decision_map: ``(F,)`` class of each feature.
        time_steps: ``T`` (enters the reference's ranking arithmetic).
        batch_size: samples per convolution (``None``: :func:`batch_for` the device, 256 on CPU).
        padding: zero padding of the input on each side. Passing it here rather than padding
            the input gives the same potentials, bit for bit, in half the time when half the
            taps fall on padding (the convolution skips them).

    Returns:
        ``(decisions, winners)``: int64 ``(N,)`` and ``(N, 3)`` (feature, y, x; -1 if silent).

    Shape:
        - inputs: :math:`(N, C, H, W)`. Output: :math:`(N,)` and :math:`(N, 3)`.

    Example:
        >>> w = torch.zeros(4, 1, 1, 1); w[2] = 1
        >>> decide(w, torch.ones(1, 1, 2, 2), torch.tensor([0, 0, 1, 1]), 15)[0].tolist()
        [1]
    """
    dev = weight.device
    dmap = decision_map.to(dev)

    def batch(a, b):
        pot = F.conv2d(inputs[a:b].to(dev, torch.float32), weight, padding=padding)
        dec, win = _decide_from_pot(pot, dmap, time_steps)
        return dec.cpu(), win.cpu()

    out = batched_map(batch, len(inputs), batch_for(dev, batch_size, 256))
    if not out:
        return torch.empty(0, dtype=torch.long), torch.empty(0, 3, dtype=torch.long)
    return torch.cat([d for d, _ in out]), torch.cat([w for _, w in out])


def _probe_binary(c: int, h: int, w: int) -> torch.Tensor:
    # binary inputs of densities 0-100% (a blank one and a full one among them)
    gen = torch.Generator().manual_seed(0)
    dens = torch.linspace(0, 1, 8).view(8, 1, 1, 1)
    return (torch.rand(8, c, h, w, generator=gen) < dens).to(torch.uint8)


@functools.lru_cache(maxsize=32)
def binary_conv_agrees(weight_shape: tuple, input_shape: tuple, padding: int = 0) -> int:
    """The channel block with which the compiled binary convolution gives ``F.conv2d``'s bits.

    :mod:`snnlab._decision_kernels` sums each potential in oneDNN's order (input channels in
    blocks of 16 or 8, see there). This checks it once per layer shape, on binary probe inputs
    of all densities with random weights, and returns the block size that reproduces
    ``F.conv2d`` bit for bit, or 0 (then the torch path runs). The answer is remembered.

    Args:
        weight_shape: ``(F, C, kh, kw)``.
        input_shape: ``(C, H, W)`` of one sample.
        padding: zero padding of the convolution.

    Returns:
        16, 8, or 0.

    Shape:
        - shapes only.

    Example:
        >>> binary_conv_agrees((4, 3, 2, 2), (3, 5, 5)) in (0, 8, 16)
        True
    """
    if not _decision_kernels.available():
        return 0
    gen = torch.Generator().manual_seed(1)
    w = torch.rand(weight_shape, generator=gen) * 0.6 + 0.2
    x = _probe_binary(*input_shape)
    ref = F.conv2d(x.float(), w, padding=padding)
    for block in (16, 8):
        if all(torch.equal(torch.from_numpy(_decision_kernels.potentials(x[i].numpy(), w.numpy(), block, padding)),
                           ref[i]) for i in range(len(x))):
            return block
    warnings.warn("train_rstdp: the compiled recomputation does not reproduce F.conv2d's bits for a layer of shape "
                  f"{tuple(weight_shape)} on this machine; using the torch path (same results, slower)",
                  RuntimeWarning, stacklevel=3)
    return 0


def _compiled_block(weight: torch.Tensor, inputs: torch.Tensor, padding: int) -> int:
    # the compiled R-STDP loop runs on CPU float32 weights and binary inputs, where a one-off
    # probe finds F.conv2d's summation order (else 0: the torch path)
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or not weight.is_contiguous() \
            or inputs.device.type != "cpu" or not len(inputs):
        return 0
    if inputs.dtype != torch.bool and bool(((inputs != 0) & (inputs != 1)).any()):
        return 0
    return binary_conv_agrees(tuple(weight.shape), tuple(inputs.shape[1:]), padding)


@torch.no_grad()
def train_rstdp(weight: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor, decision_map: torch.Tensor,
                reward_rates, punish_rates, time_steps: int, lower: float, upper: float,
                mode: str = "exact", chunk: int | None = None, progress: bool = False, desc: str = "R-STDP",
                padding: int = 0, active: torch.Tensor | None = None, stabilizer: bool = False) -> torch.Tensor:
    r"""One pass of R-STDP over ``inputs`` on a decision layer (final-slice form).

    Each sample's decision is the class of the winning feature (:func:`decide`); right:
    STDP with ``reward_rates``, wrong: ``punish_rates`` (anti-STDP), silent: no update.
    Only the winner's kernel changes: :math:`w_f \mathrel{+}= a^{\pm}` on synapses whose input
    spiked at all (``a_plus``) or not (``a_minus``; padding included), clipped to
    ``[lower, upper]``; with ``stabilizer``, :math:`w_f \mathrel{+}= a^{\pm} (w_f - l)(u - w_f)`
    (SpykeTorch's soft bound, as in the STDP layers). Features outside ``active`` cannot win
    (their potentials are set to 0, as dropout does in Mozafari et al. 2018).

    ``mode="exact"`` processes samples one by one (chunked by correction, identical to the
    plain loop; on CPU the per-sample steps run compiled); ``mode="batched"`` decides a whole
    chunk with the chunk-start weights and applies the summed updates at once.

    Args:
        weight: ``(F, C, kh, kw)``, updated in place.
        inputs: ``(N, C, H, W)`` final-slice input spikes (0/1, any dtype).
        labels: ``(N,)`` targets.
        decision_map: ``(F,)``.
        reward_rates, punish_rates: ``(a_plus, a_minus)`` pairs.
        time_steps: ``T``.
        lower, upper: weight bounds.
        mode: ``"exact"`` or ``"batched"``.
        chunk: samples per batched convolution (``None``: 32 for the compiled exact loop, 16
            otherwise; in batched mode it is the mini-batch, so it changes the result).
        padding: zero padding of the input on each side (see :func:`decide`).
        active: ``(F,)`` bool, the features that may win (``None``: all).
        stabilizer: multiply each update by :math:`(w - l)(u - w)`.

    Returns:
        int64 ``(N,)`` decisions (``-1`` = silent).

    Shape:
        - inputs: :math:`(N, C, H, W)`; labels: :math:`(N,)`. Output: :math:`(N,)`.
    """
    if mode not in ("exact", "batched"):
        raise ValueError(f"mode: expected 'exact' or 'batched', got {mode!r}")
    dev = weight.device
    kh, kw = weight.shape[-2:]
    dmap = decision_map.to(dev)
    rw = torch.tensor(reward_rates, dtype=torch.float32, device=dev)
    pn = torch.tensor(punish_rates, dtype=torch.float32, device=dev)
    decisions = torch.full((len(inputs),), -1, dtype=torch.long)
    needs_clamp = not _in_bounds(weight, lower, upper)
    if active is not None:
        active = torch.as_tensor(active, dtype=torch.bool)
        if active.shape != weight.shape[:1]:
            raise ValueError(f"active: expected a bool mask of shape ({weight.shape[0]},), got {tuple(active.shape)}")
        silenced = (~active).nonzero().flatten().to(dev)
    else:
        silenced = torch.empty(0, dtype=torch.long, device=dev)
    block = _compiled_block(weight, inputs, padding) if mode == "exact" else 0
    chunk = chunk or (32 if block else 16)
    start = 0
    if block and needs_clamp:
        # the first update clips every kernel, so the potentials after it change everywhere:
        # the samples up to it take the plain path
        while start < len(inputs) and needs_clamp:
            needs_clamp = _train_rstdp_chunk(weight, inputs[start:start + 1], labels[start:start + 1], dmap, rw, pn,
                                             time_steps, lower, upper, mode, padding, needs_clamp,
                                             decisions[start:start + 1], (kh, kw), silenced, stabilizer)
            start += 1
    if block:  # CPU: chunk convolution by oneDNN, then the compiled per-sample loop (same bits)
        x_all = inputs[start:] if inputs.dtype == torch.uint8 else (inputs[start:] != 0).to(torch.uint8)
        out_hw = (inputs.shape[-2] + 2 * padding - kh + 1, inputs.shape[-1] + 2 * padding - kw + 1)
        work = _decision_kernels.workspace(tuple(weight.shape), tuple(inputs.shape[1:]), out_hw, block)
        rates = np.array([reward_rates, punish_rates], np.float32)
        w_np, dmap_np = weight.numpy(), dmap.long().numpy()
        y_np, dec_np = labels[start:].long().numpy(), decisions[start:].numpy()
        for a, b in _progress(chunks(len(x_all), chunk), progress, desc=desc, unit="chunk", mininterval=1.0):
            x = x_all[a:b]
            pots = F.conv2d(x.float(), weight, padding=padding)
            pots[:, silenced] = 0  # silenced features never win, so never need recomputing
            _decision_kernels.rstdp_chunk(pots.numpy(), x.numpy(), y_np[a:b], w_np, dmap_np, rates, time_steps, lower,
                                          upper, stabilizer, block, padding, dec_np[a:b], work)
        return decisions
    for a, b in _progress(chunks(len(inputs), chunk), progress, desc=desc, unit="chunk", mininterval=1.0):
        needs_clamp = _train_rstdp_chunk(weight, inputs[a:b], labels[a:b], dmap, rw, pn, time_steps, lower, upper,
                                         mode, padding, needs_clamp, decisions[a:b], (kh, kw), silenced, stabilizer)
    return decisions


def _train_rstdp_chunk(weight, inputs, labels, dmap, rw, pn, time_steps, lower, upper, mode, padding, needs_clamp,
                       decisions, ks, silenced, stabilizer):
    # one chunk of train_rstdp's torch paths; returns whether the first clip is still due
    dev = weight.device
    x = inputs.to(dev, torch.float32)
    y = labels.to(dev)
    pots = F.conv2d(x, weight, padding=padding)
    pots[:, silenced] = 0
    if padding:  # the updates see the padded receptive fields, as the reference does
        x = F.pad(x, (padding,) * 4)
    if mode == "batched":
        dec, win = _decide_from_pot(pots, dmap, time_steps)
        ltp = _receptive(x, win, ks) > 0
        r = torch.where((dec == y)[:, None], rw, pn).masked_fill((dec < 0)[:, None], 0.0)
        lr = torch.where(ltp, r[:, 0].view(-1, 1, 1, 1), r[:, 1].view(-1, 1, 1, 1))
        batch_stdp(weight, win[:, None], lr[:, None], stabilizer, lower, upper)
        decisions[:] = dec.cpu()
        return False
    if dev.type == "cpu" and weight.is_contiguous() and weight.dtype == torch.float32:
        return _rstdp_exact_host(weight, x, y, pots, dmap, rw, pn, time_steps, lower, upper, needs_clamp,
                                 decisions, silenced, stabilizer)
    changed = set()
    for i in range(len(x)):
        pot = pots[i:i + 1]
        if changed:  # kernels updated earlier in the chunk: recompute just those for this sample
            idx = torch.tensor(sorted(changed), device=dev)
            pot[:, idx] = F.conv2d(x[i:i + 1], weight[idx])
        dec, win = _decide_from_pot(pot, dmap, time_steps)
        f = int(win[0, 0])
        if f < 0:
            continue
        wy, wx = int(win[0, 1]), int(win[0, 2])
        r = rw if int(dec[0]) == int(y[i]) else pn
        lr = torch.where(x[i, :, wy:wy + ks[0], wx:wx + ks[1]] > 0, r[0], r[1])
        weight[f] += lr * _stabilise(weight[f], stabilizer, lower, upper) if stabilizer else lr
        if needs_clamp:  # first update: the reference clips every kernel
            weight.clamp_(lower, upper)
            needs_clamp = False
            if i + 1 < len(x):
                pots[i + 1:] = F.conv2d(x[i + 1:], weight)
                pots[i + 1:, silenced] = 0
        else:
            weight[f].clamp_(lower, upper)
            changed.add(f)
        decisions[i] = int(dec[0])
    return needs_clamp


def _rstdp_exact_host(weight, x, y, pots, dmap, rw, pn, time_steps, lower, upper, needs_clamp, out, silenced,
                      stabilizer):
    # The exact per-sample loop with the decisions and updates in numpy on shared memory (the
    # CPU path without numba): a few microseconds per sample instead of ~30 torch dispatches.
    # Potentials still come from F.conv2d (the chunk's, then the rows updated earlier in the
    # chunk), keys and updates use the same float32 operations, so the bits equal the torch
    # loop's. x is the padded input.
    wn, xn, pn_ = weight.numpy(), x.numpy(), pots.numpy()
    dm, yn = dmap.cpu().numpy(), y.cpu().numpy()
    t32, lo, hi = np.float32(time_steps), np.float32(lower), np.float32(upper)
    rates = {True: rw.cpu().numpy(), False: pn.cpu().numpy()}
    kh, kw = wn.shape[-2:]
    spatial = pn_.shape[-2] * pn_.shape[-1]
    changed = []
    for i in range(len(xn)):
        p = pn_[i]
        if changed:  # kernels updated earlier in the chunk: recompute just those for this sample
            p[changed] = F.conv2d(x[i:i + 1], weight[changed])[0].numpy()
        m = p.max()
        if not m > 0:  # no positive potential: silent, no update
            continue
        keys = np.where(p > 0, p + m * t32, np.float32(0))  # _decision_keys, in float32
        flat = int(keys.argmax())  # first maximum, as torch's max
        f, rest = divmod(flat, spatial)
        wy, wx = divmod(rest, pn_.shape[-1])
        dec = int(dm[f])
        r = rates[dec == int(yn[i])]
        wf = wn[f]
        lr = np.where(xn[i, :, wy:wy + kh, wx:wx + kw] > 0, r[0], r[1])
        wf += lr * ((wf - lo) * (hi - wf)) if stabilizer else lr
        if needs_clamp:  # first update: the reference clips every kernel
            np.clip(wn, lo, hi, out=wn)
            needs_clamp = False
            if i + 1 < len(xn):
                pn_[i + 1:] = F.conv2d(x[i + 1:], weight).numpy()
                pn_[i + 1:, silenced.numpy()] = 0
        else:
            np.clip(wf, lo, hi, out=wf)
            if f not in changed:
                changed.append(f)
                changed.sort()
        out[i] = dec
    return needs_clamp


def _decide_from_pot(pot, dmap, time_steps):
    keys = _decision_keys(pot, time_steps)
    best, idx = keys.flatten(1).max(1)
    h, w = pot.shape[-2:]
    win = torch.stack([idx // (h * w), (idx % (h * w)) // w, idx % w], 1)
    silent = best == 0
    win = win.masked_fill(silent[:, None], -1)
    dec = torch.where(silent, torch.full_like(idx, -1), dmap[win[:, 0].clamp_min(0)])
    return dec, win


def _receptive(x, win, ks):
    # (B, C, H, W) and winners (B, 3) -> receptive fields (B, C, kh, kw); slicing is
    # ~100x faster on CPU than advanced indexing of the permuted tensor
    kh, kw = ks
    corners = win[:, 1:].clamp_min(0).tolist()
    return torch.stack([x[i, :, y:y + kh, c:c + kw] for i, (y, c) in enumerate(corners)])
