"""numba, when installed: every compiled CPU loop of the package is optional.

The kernel modules (``_stdp_kernels``, ``_coding_kernels``, ``models._kulkarni_kernels``)
define their loops only when ``numba`` is not None; callers ask ``available()`` and fall
back to the torch functions, which give the same results.

Their loops are cached on disk (``cache=True``). numba refuses such a function at import
when neither the package's ``__pycache__`` nor the user's cache folder (under ``HOME``) is
writable; the compiled code then goes to a fresh temporary folder instead.
"""
from __future__ import annotations

import tempfile

try:
    import numba
except ImportError:  # optional: the torch paths are used instead
    numba = None


def available() -> bool:
    """Whether the compiled loops can be used (numba is installed)."""
    return numba is not None


def _probe():  # a function of this package's folder, for the cache check below
    return 0


def _ensure_cache_dir() -> None:
    # where numba finds no writable cache folder, cache=True raises "no locator available";
    # a user-provided folder (numba's own NUMBA_CACHE_DIR setting) is tried first by numba
    if numba is None:
        return
    try:
        numba.njit(cache=True)(_probe)
    except RuntimeError:
        numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="snnlab-numba-")


_ensure_cache_dir()
