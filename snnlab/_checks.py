"""Argument checks shared by the public functions.

Every check raises ``TypeError`` or ``ValueError`` whose message names the argument,
what was expected and what came, so that bad input never surfaces as a stack trace
from deep inside torch.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "as_batch",
    "check_tensor",
    "check_finite",
    "check_positive_int",
    "check_nonnegative_int",
    "check_kernel_fits",
    "field_int",
    "field_number",
    "field_values",
    "field_choice",
    "field_bool",
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


# --- config fields ------------------------------------------------------------------------
# Config dataclasses check every field in __post_init__ with these, so that the Python API
# and ``--set FIELD=VALUE`` get the same one-line ValueError naming the field.

def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" in {lo}..{hi}"
    if lo is not None:
        return f" >= {lo}"
    return f" <= {hi}" if hi is not None else ""


def field_int(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` if it is an int (not a bool) with ``lo <= value <= hi``; ``ValueError`` otherwise.

    Example:
        >>> field_int(3, "k", 1)
        3
        >>> field_int("3", "k", 1)
        Traceback (most recent call last):
        ...
        ValueError: k: expected an int >= 1, got '3'
    """
    if isinstance(value, bool) or not isinstance(value, int) or (lo is not None and value < lo) \
            or (hi is not None and value > hi):
        raise ValueError(f"{name}: expected an int{_range(lo, hi)}, got {value!r}")
    return value


def field_number(value, name: str, lo: float | None = None, hi: float | None = None, above: bool = False):
    """``value`` if it is a finite real number (int or float, not a bool) with ``lo <= value <= hi``
    (``lo < value`` when ``above``); ``ValueError`` otherwise.

    Example:
        >>> field_number(0.5, "rate", 0, 1)
        0.5
        >>> field_number(float("nan"), "rate")
        Traceback (most recent call last):
        ...
        ValueError: rate: expected a finite number, got nan
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
        and (lo is None or (value > lo if above else value >= lo)) and (hi is None or value <= hi)
    if not ok:
        bound = f" > {lo}" if above and hi is None else _range(lo, hi)
        raise ValueError(f"{name}: expected a finite number{bound}, got {value!r}")
    return value


def field_values(value, name: str, n: int, check) -> tuple:
    """``value`` (a list or tuple of ``n`` items) as a tuple, each item passed through
    ``check(item, "name[i]")``; ``ValueError`` naming the field or the item otherwise.

    Example:
        >>> field_values([5, 3], "kernels", 2, lambda v, name: field_int(v, name, 1))
        (5, 3)
        >>> field_values(None, "kernels", 2, field_int)
        Traceback (most recent call last):
        ...
        ValueError: kernels: expected a list of 2 values, got None
    """
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise ValueError(f"{name}: expected a list of {n} values, got {value!r}")
    return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(value))


def field_choice(value, name: str, choices) -> str:
    """``value`` if it is one of ``choices``; ``ValueError`` listing them otherwise.

    Example:
        >>> field_choice("fast", "mode", ("exact", "batched"))
        Traceback (most recent call last):
        ...
        ValueError: mode: expected 'exact' or 'batched', got 'fast'
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected {' or '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def field_bool(value, name: str) -> bool:
    """``value`` if it is a bool (JSON ``true``/``false``); ``ValueError`` otherwise.

    Example:
        >>> field_bool(1, "shuffle")
        Traceback (most recent call last):
        ...
        ValueError: shuffle: expected true or false, got 1
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value
