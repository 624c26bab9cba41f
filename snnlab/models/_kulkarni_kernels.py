"""Compiled CPU loops (numba) of the Kulkarni & Rajendran output layer and its NormAD training.

The output layer is 10 LIF neurons stepped 1000 times per image: in torch each step is ~30
tiny tensor operations, so one image costs ~100 ms of dispatch overhead and per-image updates
(the paper's protocol) take ~33 h for 20 epochs on one core. These loops do the same float32
arithmetic, in the same order, element by element: ~1 ms per image including the update.

They mirror :func:`~snnlab.models.kulkarni2018.output_layer` (forward) and
:func:`snnlab.learning.normad_update` (update, the rule's one reference definition; ``_normad``
is its compiled backend for one image) and are tested against them; the only
reductions whose order may differ (the sum of the 10 output traces for lateral inhibition, the
norm of ``d(t)``, ``err @ d``) can move a value by a rounding step. Without numba the torch
functions are used.
"""
from __future__ import annotations

import numpy as np

from .._numba import available, numba  # noqa: F401 (available: the callers' switch)
from ..neurons import rheobase


def constants(cfg):
    """The float32/float64/int constants the loops need, from a ``Kulkarni2018Config``."""
    p = cfg.lif
    a = p.dt / p.C
    f32 = np.array([
        *cfg.synapse.decays,
        cfg.lateral_pA, a, 0.5 * a, p.gL, p.EL, p.reset, p.VT,
        p.v_min if p.v_min is not None else -np.inf,
    ], dtype=np.float32)
    ints = np.array([cfg.n_steps, p.ref_steps, cfg.method == "rk2", p.v_min is not None], dtype=np.int64)
    return f32, np.float64(rheobase(p)), ints


if numba is not None:

    @numba.njit(cache=True)
    def _forward(neuron, step, lo, hi, W, c, rh, ints, drive, out, counts, mean):
        # output_layer for one image: drive from its events, then the LIF loop; fills out
        # (10, T) bool, counts (10,), mean (10,) float32
        T, ref_steps, rk2, clamp = ints[0], ints[1], ints[2], ints[3]
        a1, a2, w_lat, a, half_a, gL, EL, reset, VT, vmin = (c[0], c[1], c[2], c[3], c[4], c[5], c[6],
                                                            c[7], c[8], c[9])
        n_out = W.shape[0]
        drive[:] = 0
        out[:] = False
        last = -1
        for e in range(lo, hi):
            t = step[e]
            j = neuron[e]
            if t > last:
                last = t
            for o in range(n_out):
                drive[t, o] += W[o, j]
        x1 = np.zeros(n_out, np.float32)
        x2 = np.zeros(n_out, np.float32)
        y1 = np.zeros(n_out, np.float32)
        y2 = np.zeros(n_out, np.float32)
        c_out = np.zeros(n_out, np.float32)
        v = np.full(n_out, EL, np.float32)
        ref = np.zeros(n_out, np.int64)
        total = np.zeros(n_out, np.float32)
        counts[:] = 0
        for s in range(T):
            if w_lat <= 0 and s > last and s % 10 == 0:
                m = np.float32(0)
                for o in range(n_out):
                    val = abs(x1[o]) + abs(x2[o])
                    if val > m:
                        m = val
                if np.float64(m) < rh:
                    break  # no input left and |I| only decays: no output can fire any more
            tot_out = np.float32(0)
            for o in range(n_out):
                c_out[o] = y1[o] - y2[o]
                tot_out += c_out[o]
            for o in range(n_out):
                x1[o] = x1[o] * a1 + drive[s, o]
                x2[o] = x2[o] * a2 + drive[s, o]
                cur = x1[o] - x2[o]
                if w_lat != 0:
                    cur = cur + w_lat * (tot_out - c_out[o])
                total[o] += cur
                if rk2:
                    k1 = cur - gL * (v[o] - EL)
                    k2 = cur - gL * (v[o] + a * k1 - EL)
                    dv = half_a * (k1 + k2)
                else:
                    dv = a * (cur - gL * (v[o] - EL))
                vn = v[o] + dv if ref[o] <= 0 else reset
                if clamp and vn < vmin:
                    vn = vmin
                ref[o] = max(ref[o] - 1, 0)
                if vn >= VT:
                    out[o, s] = True
                    counts[o] += 1
                    vn = reset
                    ref[o] = ref_steps
                v[o] = vn
            for o in range(n_out):
                sp = np.float32(1) if out[o, s] else np.float32(0)
                y1[o] = y1[o] * a1 + sp
                y2[o] = y2[o] * a2 + sp
        for o in range(n_out):
            mean[o] = total[o] / np.float32(T)

    @numba.njit(cache=True)
    def _predict(counts, mean):
        # most spikes; ties to the largest mean current (as kulkarni2018._predict)
        best, arg = -1.0, 0
        for o in range(counts.shape[0]):
            score = counts[o] + 0.5 * (1.0 / (1.0 + np.exp(-np.float64(mean[o]) / 1e4)))
            if score > best:
                best, arg = score, o
        return arg

    @numba.njit(cache=True)
    def _normad(neuron, step, lo, hi, label, out, desired, g, dW, col, act, touched):
        # normad_update for one image, added into dW; marks the columns it changed in touched
        n_out, T = out.shape
        if hi == lo:
            return
        mark = np.zeros(T, np.bool_)
        for t in desired:
            mark[t] = True
        for o in range(n_out):
            for s in range(T):
                if out[o, s]:
                    mark[s] = True
        q = np.nonzero(mark)[0]
        nq = q.shape[0]
        qpos = np.full(T, -1, np.int64)
        for i in range(nq):
            qpos[q[i]] = i
        err = np.zeros((n_out, nq), np.float32)
        for t in desired:
            err[label, qpos[t]] += 1
        for o in range(n_out):
            for s in range(T):
                if out[o, s]:
                    err[o, qpos[s]] -= 1
        nact = 0
        for e in range(lo, hi):
            j = neuron[e]
            if col[j] < 0:
                col[j] = nact
                act[nact] = j
                nact += 1
        d = np.zeros((nq, nact), np.float32)
        for e in range(lo, hi):
            cj = col[neuron[e]]
            t = step[e]
            for i in range(nq):
                lag = q[i] - t
                if lag >= 0:
                    d[i, cj] += g[lag]
        for i in range(nq):
            ss = np.float32(0)
            for cj in range(nact):
                ss += d[i, cj] * d[i, cj]
            nrm = np.sqrt(ss)
            if nrm > 0:
                inv = max(nrm, np.float32(1e-12))
                for cj in range(nact):
                    d[i, cj] = d[i, cj] / inv
        for cj in range(nact):
            j = act[cj]
            touched[j] = True
            for o in range(n_out):
                acc = np.float32(0)
                for i in range(nq):
                    acc += err[o, i] * d[i, cj]
                dW[o, j] += acc
            col[j] = -1

    @numba.njit(cache=True)
    def _train_epoch(neuron, step, offsets, labels, perm, W, lr, batch, desired, g, c, rh, ints):
        # one NormAD epoch in place on W; batches of `batch` images share the batch-start W
        n_out, n_hidden = W.shape
        T = ints[0]
        drive = np.zeros((T, n_out), np.float32)
        out = np.zeros((n_out, T), np.bool_)
        counts = np.zeros(n_out, np.int64)
        mean = np.zeros(n_out, np.float32)
        dW = np.zeros_like(W)
        col = np.full(n_hidden, -1, np.int64)
        act = np.zeros(n_hidden, np.int64)
        touched = np.zeros(n_hidden, np.bool_)
        correct = 0
        for b0 in range(0, perm.shape[0], batch):
            b1 = min(b0 + batch, perm.shape[0])
            for k in range(b0, b1):
                i = perm[k]
                lo, hi = offsets[i], offsets[i + 1]
                _forward(neuron, step, lo, hi, W, c, rh, ints, drive, out, counts, mean)
                if _predict(counts, mean) == labels[i]:
                    correct += 1
                _normad(neuron, step, lo, hi, labels[i], out, desired, g, dW, col, act, touched)
            for j in range(n_hidden):
                if touched[j]:
                    for o in range(n_out):
                        W[o, j] = W[o, j] + lr * dW[o, j]
                        dW[o, j] = 0
                    touched[j] = False
        return correct

    @numba.njit(cache=True)
    def _evaluate(neuron, step, offsets, W, c, rh, ints):
        # predictions of every image with the output layer
        n_out = W.shape[0]
        T = ints[0]
        n = offsets.shape[0] - 1
        drive = np.zeros((T, n_out), np.float32)
        out = np.zeros((n_out, T), np.bool_)
        counts = np.zeros(n_out, np.int64)
        mean = np.zeros(n_out, np.float32)
        pred = np.zeros(n, np.int64)
        for i in range(n):
            _forward(neuron, step, offsets[i], offsets[i + 1], W, c, rh, ints, drive, out, counts, mean)
            pred[i] = _predict(counts, mean)
        return pred


def _events(hidden):
    # int16 event arrays are used as they are (no int64 copy of 150M events)
    return hidden.neuron.numpy(), hidden.step.numpy(), hidden.offsets.numpy()


def train_epoch(hidden, W, lr: float, cfg, perm, g, desired) -> int:
    """One NormAD pass over the images ``perm`` of ``hidden``, updating ``W`` (CPU float32) in place.

    Returns the number of training images classified correctly before their update.
    """
    neuron, step, offsets = _events(hidden)
    c, rh, ints = constants(cfg)
    return int(_train_epoch(neuron, step, offsets, hidden.labels.numpy(), np.asarray(perm, dtype=np.int64),
                            W.numpy(), np.float32(lr), cfg.batch_size, np.asarray(desired, dtype=np.int64),
                            g.numpy(), c, rh, ints))


def predict(hidden, W, cfg) -> np.ndarray:
    """Class of every image of ``hidden`` with output weights ``W`` (CPU float32)."""
    neuron, step, offsets = _events(hidden)
    c, rh, ints = constants(cfg)
    return _evaluate(neuron, step, offsets, W.numpy(), c, rh, ints)
