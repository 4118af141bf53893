"""Per-env random streams for kernels.

Each env owns a SplitMix64 counter in the population state, seeded at reset
from that env's ``numpy.random.Generator``. Kernels draw from their env's
counter only, so an env's trajectory depends on its own seed and nothing else:
a batch of envs reproduces the same envs run one by one, bit for bit. (Passing
one ``Generator`` per env into a kernel would need a tuple of generators,
whose unboxing alone costs milliseconds per call at 256 envs.)
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import inline_kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


def seed_streams(generators) -> np.ndarray:
    """One 64-bit stream seed per env, drawn from each env's ``Generator``."""
    return np.array([g.integers(0, 2**63, dtype=np.int64) for g in generators], dtype=np.uint64)


@inline_kernel
def uniform(streams, e):
    """A float in [0, 1) from env ``e``'s stream (SplitMix64, 53 bits)."""
    z = streams[e] + _GOLDEN
    streams[e] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return (z >> _S11) * _TO_UNIT


@inline_kernel
def normal(streams, e):
    """A standard normal draw (Box-Muller, one of the pair)."""
    u1 = 1.0 - uniform(streams, e)  # (0, 1]: log is finite
    u2 = uniform(streams, e)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@inline_kernel
def exponential(streams, e):
    """An exponential draw with mean 1."""
    return -math.log(1.0 - uniform(streams, e))


@inline_kernel
def pareto(streams, e, alpha):
    """A Pareto (Lomax + 1) draw >= 1 with tail index ``alpha``: heavy-tailed sizes."""
    return (1.0 - uniform(streams, e)) ** (-1.0 / alpha)


@inline_kernel
def poisson(streams, e, lam):
    """A Poisson count (Knuth's method; the rates here are a few per step)."""
    limit = math.exp(-lam)
    count = 0
    product = uniform(streams, e)
    while product > limit:
        count += 1
        product *= uniform(streams, e)
    return count
