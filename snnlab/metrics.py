"""Scores of classifiers and decision layers: confusion matrices."""
from __future__ import annotations

import numpy as np
import torch

from ._checks import check_positive_int

__all__ = ["confusion_matrix"]


def confusion_matrix(targets, predictions, num_classes: int | None = None, silent: bool = False) -> torch.Tensor:
    r"""Counts :math:`M_{ij} = \#\{n : y_n = i,\ \hat y_n = j\}` (rows = true class).

    Args:
        targets: true classes ``0 .. C-1``.
        predictions: predicted classes; ``-1`` (a silent network) is allowed with ``silent=True``.
        num_classes: ``C`` (default: one more than the largest class seen).
        silent: add a last column counting the ``-1`` predictions.

    Shape:
        - targets, predictions: :math:`(N,)`.
        - Output: int64 :math:`(C, C)`, or :math:`(C, C + 1)` with ``silent=True``.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, -1]), silent=True).tolist()
        [[1, 0, 0], [0, 1, 1]]
    """
    y = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor) else targets).long().cpu()
    p = torch.as_tensor(np.asarray(predictions) if not isinstance(predictions, torch.Tensor) else predictions).long().cpu()
    if y.dim() != 1 or p.shape != y.shape:
        raise ValueError(f"predictions: expected shape {tuple(y.shape)} to match 1-D targets, got {tuple(p.shape)}")
    if len(y) and int(y.min()) < 0:
        raise ValueError("targets: expected classes >= 0")
    if len(p) and int(p.min()) < (-1 if silent else 0):
        raise ValueError("predictions: negative classes; pass silent=True to count -1 (silent) separately")
    if len(p) and silent and bool((p < -1).any()):
        raise ValueError("predictions: expected classes >= -1")
    seen = max(int(y.max()) if len(y) else -1, int(p.max()) if len(p) else -1) + 1
    c = seen if num_classes is None else check_positive_int(num_classes, "num_classes")
    if seen > c:
        raise ValueError(f"num_classes: {c} is too small for class {seen - 1}")
    cols = c + 1 if silent else c
    p = torch.where(p < 0, torch.full_like(p, c), p)
    return torch.bincount(y * cols + p, minlength=c * cols).view(c, cols)
