"""Synthetic order-book event streams (for the benchmark and the book tests).

A stream is an int64 array of pre-drawn rows ``(draw, side, price_ticks,
qty_lots, choice)``; ``apply_book_stream`` turns each row into one event:

* a market order for ``qty`` lots if ``draw < p_market``;
* else a cancel, if ``draw < p_market + p_cancel * live / target``, of the
  newest order at level ``choice % levels`` of the row's side (cancels rise
  with the number of live orders, so the book hovers around ``target``
  orders as real books hover around their usual depth);
* else a limit order at ``price`` (a geometric distance from a fixed
  reference, most of them near the touch).

``draw`` is uniform on [0, 2**30). Randomness is drawn up front from a
``numpy.random.Generator``; the kernel only reads it.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .book import can_rest, match, remove_order, rest_order, side_slot
from .codes import BUY

DRAW_SCALE = 1 << 30


def book_event_stream(rng: np.random.Generator, n_events: int, reference: int = 100_000):
    """Draw ``n_events`` rows around ``reference`` ticks."""
    sides = rng.choice(np.array([1, -1]), size=n_events)
    offsets = 1 + rng.geometric(0.08, size=n_events)
    rows = (
        rng.integers(0, DRAW_SCALE, n_events),
        sides,
        reference - sides * offsets,
        rng.integers(1, 11, n_events),
        rng.integers(0, 1 << 30, n_events),
    )
    return np.ascontiguousarray(np.stack(rows, axis=1).astype(np.int64))


@kernel
def apply_book_stream(state, e, k, events, p_market, p_cancel, target):
    """Apply a stream to one book; returns (fills, limits, cancels, markets, rejected)."""
    capacity = state.order_id.shape[2]
    fills = limits = cancels = markets = rejected = 0
    for r in range(events.shape[0]):
        draw = events[r, 0] / DRAW_SCALE
        side = events[r, 1]
        live = capacity - state.n_free[e, k]
        if draw < p_market:
            markets += 1
            limit = 1 << 40 if side == BUY else 1
            n, _ = match(state, e, k, side, limit, events[r, 3] // 2 + 1, -1)
            fills += n
        elif live > 0 and draw < p_market + p_cancel * live / target:
            slot = side_slot(side)
            if state.n_levels[e, k, slot] == 0:
                slot = 1 - slot
            level = events[r, 4] % state.n_levels[e, k, slot]
            cancels += 1
            remove_order(state, e, k, state.level_tail[e, k, slot, level], level)
        elif can_rest(state, e, k, side, events[r, 2]):
            limits += 1
            rest_order(state, e, k, side, events[r, 2], events[r, 3], 1 + r % 16)
        else:
            rejected += 1
    return fills, limits, cancels, markets, rejected
