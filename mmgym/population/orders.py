"""The population's order buffer: agents write rows, the step applies them in order."""

from __future__ import annotations

from .._jit import inline_kernel
from ..core.codes import (
    O_ACCOUNT,
    O_ENV,
    O_KIND,
    O_MARKET,
    O_PRICE,
    O_QTY,
    O_REF,
    O_SIDE,
)


@inline_kernel
def set_row(row, e, k, a, kind, side, price, lots, ref):
    """Fill one order row (columns ``O_*`` of ``core.codes``)."""
    row[O_ENV] = e
    row[O_MARKET] = k
    row[O_ACCOUNT] = a
    row[O_KIND] = kind
    row[O_SIDE] = side
    row[O_PRICE] = price
    row[O_QTY] = lots
    row[O_REF] = ref


@inline_kernel
def push(ps, e, k, a, kind, side, price, lots, ref, tag):
    """Append one order row for env ``e``; ``tag`` marks a maker quote slot (or -1)."""
    n = ps.n_buffer[e]
    set_row(ps.buffer[e, n], e, k, a, kind, side, price, lots, ref)
    ps.buffer_tag[e, n] = tag
    ps.n_buffer[e] = n + 1
