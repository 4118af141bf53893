"""The one numba decorator every kernel uses.

Kernels are compiled with ``cache=True`` so that a second process starts fast.
When no cache location is writable numba refuses ``cache=True`` at decoration
time; we then compile without a cache rather than fail the import.

Numba validates a cached kernel against its own source file only, so a kernel
that calls (or inlines) helpers from other files would survive an edit of
those helpers. Every cached kernel here is stamped with a hash of all kernel
modules and the constants modules instead: any edit to them recompiles
everything, while edits to pure-Python modules do not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba

# Kernels never allocate, so they run without numba's reference counting (``_nrt``):
# with it, every array taken from the state tuple costs an atomic incref/decref,
# which made a margin scan 70x slower.
_OPTIONS = {"nogil": True, "error_model": "numpy", "boundscheck": False, "_nrt": False}


# Modules whose constants kernels read (numba freezes globals at compile time).
_CONSTANT_MODULES = ("codes.py", "state.py")


def _package_stamp() -> str:
    """Hash of every module that defines kernels, of the constants modules and of this one."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        text = path.read_bytes()
        if b"_jit import" in text or path.name in _CONSTANT_MODULES or path == Path(__file__):
            digest.update(text)
    return digest.hexdigest()


_STAMP = _package_stamp()


def _compile(fn, options):
    try:
        dispatcher = numba.njit(cache=True, **options)(fn)
    except RuntimeError:  # no writable cache locator
        return numba.njit(cache=False, **options)(fn)
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = _STAMP
    return dispatcher


def kernel(fn):
    """Compile ``fn`` in nopython mode, cached on disk when possible."""
    return _compile(fn, _OPTIONS)


def inline_kernel(fn):
    """Like ``kernel``, but inlined into its callers at numba IR level.

    Small helpers that take the whole state tuple are inlined: a call passes
    every array of the state as separate arguments.
    """
    return _compile(fn, {**_OPTIONS, "inline": "always"})
