"""The one numba decorator every kernel uses.

Kernels are compiled with ``cache=True`` so that a second process starts fast.
When no cache location is writable numba refuses ``cache=True`` at decoration
time; we then compile without a cache rather than fail the import.
"""

from __future__ import annotations

import numba

_OPTIONS = {"nogil": True, "error_model": "numpy", "boundscheck": False}


def kernel(fn):
    """Compile ``fn`` in nopython mode, cached on disk when possible."""
    try:
        return numba.njit(cache=True, **_OPTIONS)(fn)
    except RuntimeError:  # no writable cache locator
        return numba.njit(cache=False, **_OPTIONS)(fn)
