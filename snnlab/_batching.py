"""Batching helpers: chunks of a sample range, batches that shrink instead of running out of
memory, default batch sizes per device, optional progress bars."""
from __future__ import annotations

import torch

__all__ = ["chunks", "batched_map", "batch_for"]


def chunks(n: int, size: int):
    """``(start, stop)`` pairs covering ``range(n)`` in steps of ``size``."""
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    msg = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def batched_map(fn, n: int, batch_size: int, progress: bool = False, desc: str = "batches") -> list:
    r"""``[fn(a, b) for a, b in chunks(n, batch_size)]``, splitting a batch that does not fit.

    On an out-of-memory error (GPU or host) the batch size is halved and the same batch is
    retried, down to one sample; the smaller size is kept for the rest. Other errors
    propagate. Use it for per-sample computations, whose results do not depend on the batch.

    Args:
        fn: ``fn(start, stop)`` computing samples ``start:stop``.
        n: number of samples.
        batch_size: first batch size to try (>= 1).
        progress: show a progress bar over samples.
        desc: the bar's label.

    Returns:
        The list of ``fn``'s results, in order.

    Example:
        >>> def f(a, b):
        ...     if b - a > 2:
        ...         raise torch.OutOfMemoryError("out of memory")
        ...     return list(range(a, b))
        >>> batched_map(f, 5, 4)
        [[0, 1], [2, 3], [4]]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    out, a, size = [], 0, batch_size
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=desc, unit="sample", mininterval=1.0)
    while a < n:
        b = min(a + size, n)
        try:
            out.append(fn(a, b))
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err) or size == 1:
                raise
            size = max(1, (b - a) // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        if bar is not None:
            bar.update(b - a)
        a = b
    if bar is not None:
        bar.close()
    return out


def batch_for(device, batch_size: int | None, cpu: int) -> int:
    r"""Inference batch size: ``batch_size``, or for ``None`` the default of ``device``.

    :math:`b = b_{cpu}` on a CPU, :math:`16\,b_{cpu}` elsewhere. On CPU, inference is
    fastest on cache-sized batches (measured optima 128-256 samples, up to 2x faster than 512).

    Args:
        device: where the batch runs.
        batch_size: an explicit size (returned as is) or ``None``.
        cpu: the default on a CPU.

    Shape:
        - scalars only.

    Example:
        >>> batch_for("cpu", None, 128), batch_for("cpu", 32, 128)
        (128, 32)
    """
    if batch_size is not None:
        return batch_size
    return cpu if torch.device(device).type == "cpu" else 16 * cpu


def _progress(iterable, progress, **kw):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)
