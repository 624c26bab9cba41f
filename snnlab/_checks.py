"""Argument checks shared by the public functions.

Every check raises ``TypeError`` or ``ValueError`` whose message names the argument,
what was expected and what came, so that bad input never surfaces as a stack trace
from deep inside torch.
"""
from __future__ import annotations

import torch

__all__ = [
    "as_batch",
    "check_tensor",
    "check_finite",
    "check_positive_int",
    "check_nonnegative_int",
    "check_kernel_fits",
]


def check_tensor(x, name: str, ndims=None, floating: bool | None = None) -> None:
    """Raise unless ``x`` is a tensor with one of the ranks ``ndims``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if ndims is not None:
        ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
        if x.dim() not in ndims:
            want = " or ".join(str(n) for n in ndims)
            raise ValueError(
                f"{name}: expected a {want}-D tensor, got shape {tuple(x.shape)} ({x.dim()}-D)"
            )
    if floating is True and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dtype == torch.bool and floating is None:
        return
    if x.is_complex():
        raise TypeError(f"{name}: complex tensors are not supported (dtype {x.dtype})")


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if a floating tensor holds NaN or infinity."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = "NaN" if bool(torch.isnan(x).any()) else "infinite"
        raise ValueError(f"{name}: contains {bad} values; expected finite numbers")


def check_positive_int(value, name: str, maximum: int | None = None) -> int:
    """Return ``value`` as int after checking ``1 <= value (<= maximum)``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a positive int, got {value!r}")
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name}: expected an int >= 1{bound}, got {value}")
    return value


def check_nonnegative_int(value, name: str) -> int:
    """Return ``value`` as int after checking ``value >= 0``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a non-negative int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value}")
    return value


def check_kernel_fits(kernel_hw, input_hw, name: str = "kernel_size") -> None:
    """Raise if a (valid-mode) kernel is larger than the input plane."""
    kh, kw = kernel_hw
    h, w = input_hw
    if kh > h or kw > w:
        raise ValueError(
            f"{name}: kernel {kh}x{kw} is larger than the input plane {h}x{w}; "
            "pad the input or use a smaller kernel"
        )


def as_batch(x: torch.Tensor, name: str, batched_ndim: int):
    """Add a leading batch axis to a single-sample tensor.

    Returns ``(x_batched, was_single)``; callers strip the axis again with
    ``y[0] if was_single else y``.
    """
    check_tensor(x, name, (batched_ndim - 1, batched_ndim))
    if x.dim() == batched_ndim - 1:
        return x.unsqueeze(0), True
    return x, False
