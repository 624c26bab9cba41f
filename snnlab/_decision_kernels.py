"""Compiled CPU loops (numba) of exact R-STDP on a decision layer with binary input.

The exact trainer (:func:`snnlab.training.train_rstdp`) convolves a chunk of samples at once
with the chunk-start weights (``F.conv2d``); before each sample, only the kernels that the
earlier samples of the chunk changed are recomputed. In torch that recomputation is a small
convolution per sample, costing mostly call overhead and a weight reorder; here it is a loop
over the active inputs of one sample, for the changed kernels only, followed by the decision
and the update of the winner's kernel, all in one call per chunk.

Why the bits are torch's: on CPU, ``F.conv2d`` runs oneDNN's direct convolution, which splits
the input channels into blocks of 16 (8 on AVX2 machines), sums each block's products in
(kernel row, kernel column, channel) order into a fresh accumulator, skipping the taps that
fall on padding, and adds the block sums to the output in block order. With 0/1 inputs every
product is the weight or +0, and adding +0 changes no sum, so summing the weights of the
active inputs in that order gives the same float32 result.
:func:`snnlab.training.binary_conv_agrees` checks this once per layer shape and machine on
probe inputs; where it does not hold, the torch path runs.

The recomputed kernels are held transposed, ``wt[c, kh, kw, s]`` (one lane ``s`` per changed
kernel), so that one active input adds one contiguous row of lanes.
"""
from __future__ import annotations

import numpy as np

from ._numba import available, numba  # noqa: F401 (available: the callers' switch)

#: lanes of the transposed block of recomputed kernels (a multiple of 16: whole vectors)
LANES = 16


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
    def _potentials(wt, block, pad, out, part, chans, starts, h, w):
        # out[o, s] (o = oy * OW + ox): the convolution, zero-padded by pad, of the input indexed
        # by _index (size h x w) with the lanes of wt, summed in oneDNN's order (module docstring)
        kh_, kw_, lanes = wt.shape[1], wt.shape[2], wt.shape[3]
        oh, ow = h + 2 * pad - kh_ + 1, w + 2 * pad - kw_ + 1
        nb = starts.shape[1] - 1
        for oy in range(oh):
            for ox in range(ow):
                acc = out[oy * ow + ox]
                for s in range(lanes):
                    acc[s] = 0.0
                for b in range(nb):
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
                                row = wt[chans[p, j], kh, kw]
                                if used:
                                    for s in range(lanes):
                                        part[s] += row[s]
                                else:
                                    for s in range(lanes):
                                        part[s] = row[s]
                                    used = True
                    if used:
                        for s in range(lanes):
                            acc[s] += part[s]

    def _scratch(x, lanes, block):
        c_in, h, w = x.shape[-3:]
        nb = (c_in + block - 1) // block
        return (np.empty(lanes, np.float32), np.empty((h * w, c_in), np.int32), np.empty((h * w, nb + 1), np.int32))

    def potentials(x, wt, block, pad):
        """Potentials ``(F, OH, OW)`` of one binary input ``x (C, H, W)`` uint8, zero-padded by
        ``pad``, under transposed weights ``wt (C, kh, kw, F)`` float32: ``F.conv2d``'s bits
        where its order holds (the probe of :func:`snnlab.training.binary_conv_agrees`)."""
        part, chans, starts = _scratch(x, wt.shape[3], block)
        h, w = x.shape[1:]
        oh, ow = h + 2 * pad - wt.shape[1] + 1, w + 2 * pad - wt.shape[2] + 1
        out = np.empty((oh * ow, wt.shape[3]), np.float32)
        _index(x, block, chans, starts)
        _potentials(wt, block, pad, out, part, chans, starts, h, w)
        return out.T.reshape(wt.shape[3], oh, ow)

    @numba.njit(cache=True, nogil=True)
    def _chunk(pots, x, labels, weight, dmap, rates, t32, lo, hi, stabilizer, block, pad, dec,
               wt, lane_of, feat, fresh, part, chans, starts):
        # The exact per-sample loop over one chunk; pots (n, F, OH, OW) hold the potentials under
        # the chunk-start weights. Per sample: the kernels changed earlier in the chunk are
        # recomputed (lanes of wt), then the k = 1 winner (key V + T max V for V > 0, float32,
        # first maximum in flat (f, y, x) order), then its kernel's update (times the
        # stabiliser (w - lo)(hi - w) if asked, grouped as the reference groups it) and clip.
        nf, c_in, kh_, kw_ = weight.shape
        oh, ow = pots.shape[2], pots.shape[3]
        h, w = x.shape[2], x.shape[3]
        n_changed = 0
        for i in range(x.shape[0]):
            p = pots[i]
            if n_changed:
                _index(x[i], block, chans, starts)
                _potentials(wt, block, pad, fresh, part, chans, starts, h, w)
                for s in range(n_changed):
                    f = feat[s]
                    for o in range(oh * ow):
                        p[f, o // ow, o % ow] = fresh[o, s]
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
            wf = weight[bf]
            s = lane_of[bf]
            if s < 0:
                s = n_changed
                lane_of[bf] = s
                feat[s] = bf
                n_changed += 1
            for c in range(c_in):
                for kh in range(kh_):
                    y = by + kh - pad
                    for kw in range(kw_):
                        xx = bx + kw - pad
                        on = 0 <= y < h and 0 <= xx < w and x[i, c, y, xx] != 0
                        v = wf[c, kh, kw]
                        a = a_plus if on else a_minus
                        v = v + a * ((v - lo) * (hi - v)) if stabilizer else v + a
                        v = min(max(v, lo), hi)
                        wf[c, kh, kw] = v
                        wt[c, kh, kw, s] = v
            dec[i] = d
        for s in range(n_changed):
            lane_of[feat[s]] = -1

    def rstdp_chunk(pots, x, labels, weight, dmap, rates, time_steps, lower, upper, stabilizer, block, pad, dec, work):
        """Exact R-STDP over one chunk: ``pots (n, F, OH, OW)`` float32 from ``F.conv2d`` with
        the chunk-start ``weight (F, C, kh, kw)`` (updated in place), binary inputs ``x (n, C,
        H, W)`` uint8 (zero-padded by ``pad``), ``rates`` (2, 2) float32: reward and punishment
        ``(a_plus, a_minus)``; ``stabilizer``: soft bounds. At most ``LANES`` samples per chunk.
        Writes the decisions into ``dec`` (silent: left as is). ``work`` comes from
        :func:`workspace`."""
        _chunk(pots, x, labels, weight, dmap, rates, np.float32(time_steps), np.float32(lower), np.float32(upper),
               bool(stabilizer), block, pad, dec, *work)

    def workspace(weight_shape, input_shape, out_hw, block):
        """Scratch arrays of :func:`rstdp_chunk` for a layer, allocated once per call of the trainer."""
        nf, c_in, kh, kw = weight_shape
        part, chans, starts = _scratch(np.empty(input_shape, np.uint8), LANES, block)
        return (np.zeros((c_in, kh, kw, LANES), np.float32), np.full(nf, -1, np.int64), np.zeros(LANES, np.int64),
                np.empty((out_hw[0] * out_hw[1], LANES), np.float32), part, chans, starts)
