"""Compiled CPU loops (numba) of exact R-STDP on a decision layer with binary input.

The exact trainer (:func:`snnlab.training.train_rstdp`) convolves a chunk of samples at once
with the chunk-start weights (``F.conv2d``). One sample changes one kernel, so before each
later sample of the chunk the potentials of the kernels changed since the chunk start are
stale. Here they are brought up to date only where they could matter: a changed kernel's
potential is recomputed, exactly, only at the positions where a bound on how far it can have
moved lets it reach the largest potential of the unchanged kernels (see :func:`_chunk`); most
samples need none. Then the decision and the update of the winner's kernel follow, all in one
call per chunk. In torch the same step is a small convolution per sample, mostly call overhead
and a weight reorder.

Why a recomputed potential has torch's bits: on CPU, ``F.conv2d`` runs oneDNN's direct
convolution, which splits the input channels into blocks of 16 (8 on AVX2 machines), sums each
block's products in (kernel row, kernel column, channel) order into a fresh accumulator,
skipping the taps that fall on padding, and adds the block sums to the output in block order.
With 0/1 inputs every product is the weight or +0, and adding +0 changes no sum, so summing the
weights of the active inputs in that order gives the same float32 result.
:func:`snnlab.training.binary_conv_agrees` checks this once per layer shape and machine on
probe inputs; where it does not hold, the torch path runs.
"""
from __future__ import annotations

import numpy as np

from ._numba import available, numba  # noqa: F401 (available: the callers' switch)


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _index(x, block, chans, starts):
        # the active channels of x (C, H, W) at each position p = y * W + x, ascending, and
        # where each channel block starts in that list: chans[p, starts[p, b]:starts[p, b + 1]]
        c_in, h, w = x.shape
        nb = starts.shape[1] - 1
        for y in range(h):
            for xx in range(w):
                p = y * w + xx
                n = 0
                for b in range(nb):
                    starts[p, b] = n
                    for c in range(b * block, min(c_in, (b + 1) * block)):
                        if x[c, y, xx] != 0:
                            chans[p, n] = c
                            n += 1
                starts[p, nb] = n

    @numba.njit(cache=True, nogil=True)
    def _potential(weight, f, oy, ox, pad, chans, starts, h, w):
        # the potential of kernel f at output (oy, ox) over the input indexed by _index (size
        # h x w, zero-padded by pad), summed in oneDNN's order (module docstring), float32
        kh_, kw_ = weight.shape[2], weight.shape[3]
        acc = np.float32(0.0)
        for b in range(starts.shape[1] - 1):
            part = np.float32(0.0)
            used = False
            for kh in range(kh_):
                y = oy + kh - pad
                if y < 0 or y >= h:
                    continue
                for kw in range(kw_):
                    xx = ox + kw - pad
                    if xx < 0 or xx >= w:
                        continue
                    p = y * w + xx
                    for j in range(starts[p, b], starts[p, b + 1]):
                        v = weight[f, chans[p, j], kh, kw]
                        part = part + v if used else v
                        used = True
            if used:  # the first adds to +0: exactly the block's sum
                acc = acc + part
        return acc

    def _scratch(c_in, h, w, block):
        nb = (c_in + block - 1) // block
        return np.empty((h * w, c_in), np.int32), np.empty((h * w, nb + 1), np.int32)

    def potentials(x, weight, block, pad):
        """Potentials ``(F, OH, OW)`` of one binary input ``x (C, H, W)`` uint8, zero-padded by
        ``pad``, under ``weight (F, C, kh, kw)`` float32: ``F.conv2d``'s bits where its order
        holds (the probe of :func:`snnlab.training.binary_conv_agrees`)."""
        c_in, h, w = x.shape
        chans, starts = _scratch(c_in, h, w, block)
        _index(x, block, chans, starts)
        return _all_potentials(weight, pad, chans, starts, h, w)

    @numba.njit(cache=True, nogil=True)
    def _all_potentials(weight, pad, chans, starts, h, w):
        nf, _, kh_, kw_ = weight.shape
        out = np.empty((nf, h + 2 * pad - kh_ + 1, w + 2 * pad - kw_ + 1), np.float32)
        for f in range(nf):
            for oy in range(out.shape[1]):
                for ox in range(out.shape[2]):
                    out[f, oy, ox] = _potential(weight, f, oy, ox, pad, chans, starts, h, w)
        return out

    @numba.njit(cache=True, nogil=True)
    def _chunk(pots, x, labels, weight, dmap, rates, t32, lo, hi, stabilizer, block, pad, dec,
               changed, drift, order, window, chans, starts):
        # The exact per-sample loop over one chunk; pots (n, F, OH, OW) hold the potentials under
        # the chunk-start weights. Per sample: the stale potentials of the kernels changed
        # earlier in the chunk are recomputed where they could matter (below), then the k = 1
        # winner (key V + T max V for V > 0, float32, first maximum in flat (f, y, x) order),
        # then its kernel's update (times the stabiliser (w - lo)(hi - w) if asked, grouped as
        # the reference groups it) and clip. Returns how many potentials were recomputed.
        #
        # Where a stale potential cannot matter: every weight of a changed kernel f has moved by
        # at most drift[f] since the chunk start (the sum of its updates' largest steps; a clip
        # only shortens a step), so its potential at output o has moved by at most
        # window[o] * drift[f] in exact arithmetic (window[o]: the active inputs under o), plus
        # the rounding of the two float32 sums, each within (n + 32) 2^-24 of the sum of its n
        # terms. If that bound stays below the largest potential U of the unchanged kernels by
        # more than the key's rounding step near U (1 + T) (2^-19 U for T <= 30; 2^-17 U kept),
        # the potential can neither reach U, tie with the winner's key, nor be the maximum, so
        # its stale value decides exactly as the true one would.
        nf, c_in, kh_, kw_ = weight.shape
        oh, ow = pots.shape[2], pots.shape[3]
        h, w = x.shape[2], x.shape[3]
        n_changed, recomputed = 0, 0
        stab = ((hi - lo) / 2.0) ** 2 if stabilizer else 1.0  # the largest stabiliser factor
        for i in range(x.shape[0]):
            p = pots[i]
            if n_changed:
                _index(x[i], block, chans, starts)
                nb = starts.shape[1] - 1
                for oy in range(oh):
                    for ox in range(ow):
                        n = 0
                        for kh in range(kh_):
                            y = oy + kh - pad
                            for kw in range(kw_):
                                xx = ox + kw - pad
                                if 0 <= y < h and 0 <= xx < w:
                                    n += starts[y * w + xx, nb]
                        window[oy * ow + ox] = n
                u = -np.inf
                for f in range(nf):
                    if not changed[f]:
                        for y in range(oh):
                            for xx in range(ow):
                                u = max(u, p[f, y, xx])
                limit = u * (1.0 - 2.0 ** -17) if u > 0 else np.inf
                for s in range(n_changed):
                    f = order[s]
                    for y in range(oh):
                        for xx in range(ow):
                            n = window[y * ow + xx]
                            reach = p[f, y, xx] + n * drift[f]
                            if reach + (n + 32) * 2.0 ** -24 * 2.02 * (abs(p[f, y, xx]) + abs(reach)) + 1e-6 >= limit:
                                p[f, y, xx] = _potential(weight, f, y, xx, pad, chans, starts, h, w)
                                recomputed += 1
            m = np.float32(-np.inf)
            for f in range(nf):
                for y in range(oh):
                    for xx in range(ow):
                        if p[f, y, xx] > m:
                            m = p[f, y, xx]
            if not m > 0:  # silent: no update
                continue
            mt = m * t32
            best, bf, by, bx = np.float32(0), -1, 0, 0
            for f in range(nf):
                for y in range(oh):
                    for xx in range(ow):
                        v = p[f, y, xx]
                        if v > 0 and v + mt > best:
                            best, bf, by, bx = v + mt, f, y, xx
            d = dmap[bf]
            r = 0 if d == labels[i] else 1
            a_plus, a_minus = rates[r, 0], rates[r, 1]
            if not changed[bf]:
                changed[bf] = True
                drift[bf] = 0.0
                order[n_changed] = bf
                n_changed += 1
            drift[bf] += max(abs(a_plus), abs(a_minus)) * stab
            wf = weight[bf]
            for c in range(c_in):
                for kh in range(kh_):
                    y = by + kh - pad
                    for kw in range(kw_):
                        xx = bx + kw - pad
                        on = 0 <= y < h and 0 <= xx < w and x[i, c, y, xx] != 0
                        v = wf[c, kh, kw]
                        a = a_plus if on else a_minus
                        v = v + a * ((v - lo) * (hi - v)) if stabilizer else v + a
                        wf[c, kh, kw] = min(max(v, lo), hi)
            dec[i] = d
        for s in range(n_changed):
            changed[order[s]] = False
        return recomputed

    def rstdp_chunk(pots, x, labels, weight, dmap, rates, time_steps, lower, upper, stabilizer, block, pad, dec, work):
        """Exact R-STDP over one chunk: ``pots (n, F, OH, OW)`` float32 from ``F.conv2d`` with
        the chunk-start ``weight (F, C, kh, kw)`` (updated in place), binary inputs ``x (n, C,
        H, W)`` uint8 (zero-padded by ``pad``), ``rates`` (2, 2) float32: reward and punishment
        ``(a_plus, a_minus)``; ``stabilizer``: soft bounds. Writes the decisions into ``dec``
        (silent: left as is); returns how many stale potentials had to be recomputed. ``work``
        comes from :func:`workspace`."""
        return _chunk(pots, x, labels, weight, dmap, rates, np.float32(time_steps), np.float32(lower),
                      np.float32(upper), bool(stabilizer), block, pad, dec, *work)

    def workspace(weight_shape, input_shape, out_hw, block):
        """Scratch arrays of :func:`rstdp_chunk` for a layer, allocated once per call of the trainer."""
        nf = weight_shape[0]
        chans, starts = _scratch(*input_shape, block)
        return (np.zeros(nf, np.bool_), np.zeros(nf), np.zeros(nf, np.int64), np.zeros(out_hw[0] * out_hw[1], np.int64),
                chans, starts)
