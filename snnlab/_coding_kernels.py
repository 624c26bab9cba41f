"""Compiled CPU loop (numba) of rank-order coding.

:func:`snnlab.coding.intensity_to_latency` in torch sorts every row padded to the longest
row and then scatters the times back: about ten passes over the batch. Here each image is
handled once, images in parallel threads: its non-zero values are sorted by decreasing value,
ties in index order (as in the torch path), and binned. The spike times are
the same integers (tested against the torch path). Without numba the torch path is used.
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
        for i in range(b):
            row = flat[i]
            nnz = 0
            for j in range(n):
                if row[j] != 0:
                    nnz += 1
            if nnz == 0:
                continue
            # one unique int64 key per value, sorted ascending: the high half orders by
            # decreasing value (finite floats > 0 order like their int32 bit patterns; the
            # negatives, which never spike, all go last), the low half by increasing index
            keys = np.empty(nnz, np.int64)
            bits = row.view(np.int32)
            m = 0
            for j in range(n):
                if row[j] != 0:
                    high = np.int64(0x7FFFFFFF) - bits[j] if row[j] > 0 else np.int64(0x7FFFFFFF)
                    keys[m] = (high << 32) | j
                    m += 1
            keys.sort()
            bin_size = max(nnz // time_steps, 1)
            limit = bin_size * time_steps if nnz >= time_steps else nnz
            for r in range(limit):
                if (keys[r] >> 32) == 0x7FFFFFFF:
                    break
                out[i, keys[r] & 0xFFFFFFFF] = np.uint8(min(r // bin_size, time_steps))
