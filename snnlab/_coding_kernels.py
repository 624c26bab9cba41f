"""Compiled CPU loops (numba) of the input encoding.

- :func:`rank_order`: rank-order coding of given intensities. In torch,
  :func:`snnlab.coding.intensity_to_latency` sorts every row padded to the longest row and
  scatters the times back, about ten passes over the batch; here each image is handled once.
- :func:`encode`: the whole encoder of :meth:`snnlab.coding.Encoder.encode_batch` (filter
  bank, threshold, local normalisation, rank order) in one pass per image, skipping the
  empty rows of each digit; it gives torch's bits (see its comments).

Both sort the non-zero values by decreasing value, ties in index order, as the torch path
does, and give the same spike times (tested). Callers split batches over threads; without
numba the torch path is used.
"""
from __future__ import annotations

import numpy as np

from ._numba import available, numba  # noqa: F401 (available: the callers' switch)


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def rank_order(flat, time_steps, out):
        # flat (B, N) float32, finite -> uint8 spike times written to out (B, N), which the
        # caller fills with time_steps (no spike). Releases the GIL: the caller splits the
        # batch over threads (numba's own thread pool would compete with torch's)
        b, n = flat.shape
        values, index, scratch = np.empty(n, np.float32), np.empty(n, np.int32), _scratch(n)
        for i in range(b):
            row = flat[i]
            nnz = 0
            for j in range(n):
                if row[j] != 0:
                    values[nnz], index[nnz] = row[j], j
                    nnz += 1
            _spike_times(values, index, nnz, time_steps, out[i], scratch)

    @numba.njit(inline="always")
    def _scratch(n):
        return np.empty(n, np.uint32), np.empty(n, np.uint32), np.empty(n, np.int32), np.empty(256, np.int64)

    @numba.njit(nogil=True)
    def _spike_times(values, index, nnz, time_steps, out, scratch):
        # Rank-order coding of the nnz non-zero values[:nnz] (flat indices index[:nnz], in
        # increasing order) into out[index]. Each value gets a uint32 key: decreasing value
        # first (finite floats > 0 order like their bit patterns), the negatives (which never
        # spike) last; a stable LSD radix sort, 8 bits a pass, keeps equal keys in index
        # order, as the torch path's stable sort does.
        if nnz == 0:
            return
        keys, keys2, index2, hist = scratch
        bits = values.view(np.uint32)
        for m in range(nnz):
            keys[m] = np.uint32(0x7FFFFFFF) - bits[m] if values[m] > 0 else np.uint32(0xFFFFFFFF)
        low, high = keys[0], keys[0]
        for m in range(nnz):
            low, high = min(low, keys[m]), max(high, keys[m])
        span = high - low
        ka, ia, kb, ib = keys, index, keys2, index2
        shift = 0
        while True:
            hist[:] = 0
            for m in range(nnz):
                hist[((ka[m] - low) >> shift) & 255] += 1
            total = 0
            for d in range(256):
                total, hist[d] = total + hist[d], total
            for m in range(nnz):
                d = ((ka[m] - low) >> shift) & 255
                kb[hist[d]], ib[hist[d]] = ka[m], ia[m]
                hist[d] += 1
            ka, ia, kb, ib = kb, ib, ka, ia
            shift += 8
            if shift >= 32 or (span >> shift) == 0:
                break
        bin_size = max(nnz // time_steps, 1)
        limit = bin_size * time_steps if nnz >= time_steps else nnz
        for m in range(limit):
            if ka[m] == np.uint32(0xFFFFFFFF):
                break
            out[ia[m]] = np.uint8(min(m // bin_size, time_steps))


if numba is not None:

    @numba.njit(cache=True, nogil=True, fastmath={"contract"})
    def encode(imgs, weight, pad, threshold, radius, eps, time_steps, out, intensities):
        # The whole encoder on (B, H, W) float32 images: filter bank, threshold, local
        # normalisation and rank-order coding, one image at a time, writing uint8 spike times
        # to out (B, C*H'*W'), which the caller fills with time_steps. radius < 0: no
        # normalisation. intensities: (B, C*H'*W') zeros to receive the normalised values too
        # (checks and tests), or (0, 0). Returns 0, or 1 (infinite) / 2 (NaN) if an intensity
        # is not finite.
        #
        # Same bits as the torch convolutions: for every output, the products are added in
        # raster order of the kernel taps with fused multiply-adds ("contract"; no
        # reassociation), which is how oneDNN's direct and depthwise convolutions sum them
        # (checked on all 70k MNIST images of both encoders). Taps whose weight or input row
        # is zero are skipped: adding +0 leaves a sum unchanged. The filter bank and the box
        # filter each run as one long loop per tap over the image flattened with the stride
        # of its padded input ("shifted rows"), which vectorises; the columns past the
        # output's width are scratch.
        b, h, wd = imgs.shape
        c, k = weight.shape[0], weight.shape[1]
        hp, wp = h + 2 * pad, wd + 2 * pad
        ho, wo = hp - k + 1, wp - k + 1
        r = max(radius, 0)
        side = 2 * r + 1
        box_row = np.full(side, np.float32(1.0) / np.float32(side * side), np.float32)
        s2 = wo + 2 * r
        src = np.zeros(hp * wp, np.float32)            # padded image
        filt = np.zeros(ho * wp, np.float32)           # one filtered map (stride wp)
        thr = np.zeros((ho + 2 * r) * s2, np.float32)  # thresholded map, padded by r
        mean = np.zeros(ho * s2, np.float32)
        n = c * ho * wo
        values, index, scratch = np.empty(n, np.float32), np.empty(n, np.int32), _scratch(n)
        status = 0
        keep = intensities.shape[0] > 0
        for i in range(b):
            top, bottom = hp, -1  # non-zero rows of the padded image
            for y in range(h):
                for x in range(wd):
                    v = imgs[i, y, x]
                    src[(pad + y) * wp + pad + x] = v
                    if v != 0:
                        top = min(top, pad + y)
                        bottom = pad + y
            nnz = 0
            for ch in range(c):
                filt[:] = 0
                for ky in range(k):
                    y0, y1 = max(0, top - ky), min(ho - 1, bottom - ky)
                    if y0 > y1:
                        continue
                    wk = weight[ch, ky]
                    kx, last = 0, k - 1  # the row's non-zero taps: kx..last
                    while kx <= last and wk[kx] == 0:
                        kx += 1
                    while last >= kx and wk[last] == 0:
                        last -= 1
                    _taps(filt[y0 * wp:y1 * wp + wo], src[(y0 + ky) * wp:], wk, kx, last)
                top2, bottom2 = ho + 2 * r, -1  # non-zero rows of the thresholded map
                for y in range(ho):
                    for x in range(wo):
                        v = filt[y * wp + x]
                        if v < threshold:  # as torch.where(v < threshold, 0, v): NaN stays
                            v = np.float32(0)
                        thr[(r + y) * s2 + r + x] = v
                        if v != 0:
                            top2 = min(top2, r + y)
                            bottom2 = r + y
                if bottom2 < 0:
                    continue
                y0, y1 = top2 - r, bottom2 - r  # output rows holding non-zero values
                if radius >= 0:
                    mean[y0 * s2:y1 * s2 + wo] = 0
                    for ky in range(side):
                        a, z = max(y0, top2 - ky), min(y1, bottom2 - ky)
                        if a > z:
                            continue
                        _taps(mean[a * s2:z * s2 + wo], thr[(a + ky) * s2:], box_row, 0, side - 1)
                for y in range(y0, y1 + 1):
                    for x in range(wo):
                        v = thr[(r + y) * s2 + r + x]
                        if v == 0:
                            continue
                        q = v / (mean[y * s2 + x] + eps) if radius >= 0 else v
                        if np.isnan(q):
                            status = 2
                        elif np.isinf(q) and status == 0:
                            status = 1
                        j = (ch * ho + y) * wo + x
                        if keep:
                            intensities[i, j] = q
                        if q != 0:
                            values[nnz], index[nnz] = q, j
                            nnz += 1
            _spike_times(values, index, nnz, time_steps, out[i], scratch)
        return status

    @numba.njit(inline="always", fastmath={"contract"})
    def _taps(dst, src, w, first, last):
        # one row of kernel taps: dst[t] += src[t + kx] w[kx] for kx = first..last in this
        # order, one fused multiply-add each. Eight, four, then single taps per pass over dst
        # (fewer loads and stores of dst; a zero weight inside a row adds +0: exact)
        kx = first
        while kx + 7 <= last:
            _axpy8(dst, src[kx:], w[kx], w[kx + 1], w[kx + 2], w[kx + 3], w[kx + 4], w[kx + 5], w[kx + 6],
                   w[kx + 7])
            kx += 8
        while kx + 3 <= last:
            _axpy8(dst, src[kx:], w[kx], w[kx + 1], w[kx + 2], w[kx + 3], 0, 0, 0, 0, 4)
            kx += 4
        for kx in range(kx, last + 1):
            _axpy8(dst, src[kx:], w[kx], 0, 0, 0, 0, 0, 0, 0, 1)

    @numba.njit(inline="always", fastmath={"contract"})
    def _axpy8(dst, src, a0, a1, a2, a3, a4, a5, a6, a7, taps=8):
        # dst[t] += src[t] a0 + ... + src[t + taps - 1] a(taps-1), in this order (taps: 1, 4
        # or 8, a compile-time branch). Slices from 0 let LLVM vectorise (no wrap-around checks)
        n = dst.shape[0]
        if taps == 8:
            for t in range(n):
                dst[t] = (dst[t] + src[t] * a0 + src[t + 1] * a1 + src[t + 2] * a2 + src[t + 3] * a3
                          + src[t + 4] * a4 + src[t + 5] * a5 + src[t + 6] * a6 + src[t + 7] * a7)
        elif taps == 4:
            for t in range(n):
                dst[t] = dst[t] + src[t] * a0 + src[t + 1] * a1 + src[t + 2] * a2 + src[t + 3] * a3
        else:
            for t in range(n):
                dst[t] = dst[t] + src[t] * a0
