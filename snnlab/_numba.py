"""numba, when installed: every compiled CPU loop of the package is optional.

The kernel modules (``_stdp_kernels``, ``_coding_kernels``, ``models._kulkarni_kernels``)
define their loops only when ``numba`` is not None; callers ask ``available()`` and fall
back to the torch functions, which give the same results.
"""
from __future__ import annotations

try:
    import numba
except ImportError:  # optional: the torch paths are used instead
    numba = None


def available() -> bool:
    """Whether the compiled loops can be used (numba is installed)."""
    return numba is not None
