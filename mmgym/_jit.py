"""The one numba decorator every kernel uses.

Kernels are compiled with ``cache=True`` so that a second process starts fast.
When no cache location is writable numba refuses ``cache=True`` at decoration
time; we then compile without a cache rather than fail the import.
"""

from __future__ import annotations

import numba

# Kernels never allocate, so they run without numba's reference counting (``_nrt``):
# with it, every array taken from the state tuple costs an atomic incref/decref,
# which made a margin scan 70x slower.
_OPTIONS = {"nogil": True, "error_model": "numpy", "boundscheck": False, "_nrt": False}


def _compile(fn, options):
    try:
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError:  # no writable cache locator
        return numba.njit(cache=False, **options)(fn)


def kernel(fn):
    """Compile ``fn`` in nopython mode, cached on disk when possible."""
    return _compile(fn, _OPTIONS)


def inline_kernel(fn):
    """Like ``kernel``, but inlined into its callers at numba IR level.

    Small helpers that take the whole state tuple are inlined: a call would
    otherwise pass every array of the state by value.
    """
    return _compile(fn, {**_OPTIONS, "inline": "always"})
