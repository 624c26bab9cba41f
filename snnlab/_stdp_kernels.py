"""Compiled CPU loops (numba) of one exact STDP step after its convolution.

For one sample, the exact trainer (:func:`snnlab.training.train_stdp`) convolves the input, then
runs first-spike competition, point-wise inhibition, k-WTA and the STDP update of the winners.
In torch those last steps are ~60 small operations per sample, as much time as the convolution
itself on a trained layer; here they are plain loops over the ~1% of neurons that fire. Every
value is computed with the same float32 operations in the same order as the torch/numpy path
(:func:`snnlab.training._compete`, :func:`snnlab.training._k_winners_of`,
:func:`snnlab.training._update_winners`), so the weights come out bit for bit the same (tested).
Without numba the torch path is used.
"""
from __future__ import annotations

import numpy as np

from ._numba import available, numba  # noqa: F401 (available: the callers' switch)


if numba is not None:

    @numba.njit(cache=True)
    def live_box(last, bound):
        # bounding box (y0, y1, x0, x1) of the positions where any feature's last-slice
        # potential exceeds bound; y1 == 0 when there is none
        nf, h, w = last.shape
        y0, y1, x0, x1 = h, 0, w, 0
        for f in range(nf):
            for y in range(h):
                for x in range(w):
                    if last[f, y, x] > bound:
                        y0 = min(y0, y)
                        y1 = max(y1, y + 1)
                        x0 = min(x0, x)
                        x1 = max(x1, x + 1)
        return y0, y1, x0, x1

    @numba.njit(cache=True)
    def compete(pot, threshold, k, radius, pointwise):
        # fire -> point-wise inhibition -> k-WTA on first-spike times, as training._compete and
        # training._k_winners_of; pot (T, F, H, W) float32, non-decreasing in time.
        # Returns winners (k, 3) (-1 rows pad), t_win (k,) (T for pads), number of spikes.
        t_steps, nf, h, w = pot.shape
        hw = h * w
        n_max = nf * hw
        flat = pot.reshape(t_steps, n_max)
        # spikes per neuron over time: one branch-free pass per slice vectorises, whereas
        # counting neuron by neuron mispredicts on every threshold test
        count = np.zeros(n_max, np.uint8)
        for t in range(t_steps):
            row = flat[t]
            for j in range(n_max):
                count[j] += np.uint8(row[j] > threshold)
        # feature and location of each firing neuron kept apart: integer division per
        # neuron and per k-WTA round would cost more than all the comparisons
        feat = np.empty(n_max, np.int64)
        loc = np.empty(n_max, np.int64)
        tf = np.empty(n_max, np.int64)
        vf = np.empty(n_max, np.float32)
        n = 0
        last = flat[t_steps - 1]
        for f in range(nf):  # ascending flat (f, y, x) order, as the reference ranks ties
            base = f * hw
            for p in range(hw):
                j = base + p
                if last[j] > threshold:
                    t0 = t_steps - np.int64(count[j])
                    feat[n] = f
                    loc[n] = p
                    tf[n] = t0
                    vf[n] = flat[t0, j]
                    n += 1
        if pointwise and n > 0:
            # per location: earliest spike, then highest potential then, then lowest feature
            tmin = np.full(hw, t_steps, np.int64)
            for i in range(n):
                tmin[loc[i]] = min(tmin[loc[i]], tf[i])
            vmax = np.full(hw, -np.inf, np.float32)
            for i in range(n):
                if tf[i] == tmin[loc[i]] and vf[i] > vmax[loc[i]]:
                    vmax[loc[i]] = vf[i]
            fmin = np.full(hw, nf, np.int64)
            for i in range(n):
                if tf[i] == tmin[loc[i]] and vf[i] == vmax[loc[i]]:
                    fmin[loc[i]] = min(fmin[loc[i]], feat[i])
            m = 0
            for i in range(n):
                li = loc[i]
                if tf[i] == tmin[li] and vf[i] == vmax[li] and feat[i] == fmin[li]:
                    feat[m], loc[m], tf[m], vf[m] = feat[i], li, tf[i], vf[i]
                    m += 1
            n = m
        winners = np.full((k, 3), -1, np.int64)
        t_win = np.full(k, t_steps, np.int64)
        if n == 0:
            return winners, t_win, 0
        vmx = vf[0]
        for i in range(1, n):
            if vf[i] > vmx:
                vmx = vf[i]
        big = vmx * np.float32(t_steps)
        keys = np.empty(n, np.float32)
        ys = np.empty(n, np.int64)
        xs = np.empty(n, np.int64)
        for i in range(n):
            step = vf[i] + big
            acc = step
            for _ in range(t_steps - 1 - tf[i]):  # added once per step from t0 on, in sequence
                acc = acc + step
            keys[i] = acc
            ys[i] = loc[i] // w
            xs[i] = loc[i] - ys[i] * w
        for r in range(min(k, nf)):
            j = 0
            for i in range(1, n):
                if keys[i] > keys[j]:
                    j = i
            if keys[j] == 0:
                break
            fj, yj, xj = feat[j], ys[j], xs[j]
            winners[r, 0], winners[r, 1], winners[r, 2] = fj, yj, xj
            t_win[r] = tf[j]
            for i in range(n):
                if feat[i] == fj or (radius > 0 and abs(ys[i] - yj) <= radius and abs(xs[i] - xj) <= radius):
                    keys[i] = 0
        return winners, t_win, n

    @numba.njit(cache=True)
    def update(weight, tin, winners, t_win, a_plus, a_minus, stabilizer, lower, upper, flush_below):
        # STDP of the winners' kernels in place, as training._update_winners: LTP where the
        # input spiked at or before the winner, LTD otherwise, stabiliser, clip, flush
        _, c, kh, kw = weight.shape
        for r in range(winners.shape[0]):
            f, y, x = winners[r, 0], winners[r, 1], winners[r, 2]
            if f < 0:
                continue
            t = t_win[r]
            for ci in range(c):
                for a in range(kh):
                    for b in range(kw):
                        lr = a_plus if tin[ci, y + a, x + b] <= t else a_minus
                        wv = weight[f, ci, a, b]
                        s = (wv - lower) * (upper - wv) if stabilizer else np.float32(1)
                        wv = wv + lr * s
                        wv = min(max(wv, lower), upper)
                        if abs(wv) < flush_below:
                            wv = np.float32(0)
                        weight[f, ci, a, b] = wv
