"""Index, mark and collateral prices (MECHANICS.md sections 3 and 6).

Mark = median(index * (1 + funding term), index + moving average of
(mid - index) over ``basis_window`` steps, last trade). Funding is not
simulated, so the first component is the index itself (``book_price`` says
what "mid" is when a side of the book is empty). A spot market's
collateral price blends its own last trade with its conversion value (the
index): ``w * last + (1 - w) * index``.
"""

from __future__ import annotations

from .._jit import inline_kernel, kernel
from .book import best_price
from .codes import ASK, BID, PERP


@inline_kernel
def median3(a, b, c):
    """Median of three numbers."""
    return max(min(a, b), min(max(a, b), c))


@inline_kernel
def book_price(bid, ask, last, tick):
    """The book's price: the mid, or with one side empty the last trade moved to the
    remaining best quote when that quote undercuts it (such a last trade is stale)."""
    if bid >= 0 and ask >= 0:
        return 0.5 * (bid + ask) * tick
    if ask >= 0:
        return min(last, ask * tick)
    if bid >= 0:
        return max(last, bid * tick)
    return last


@kernel
def update_breakers(params, state, e):
    """Halt a market whose mark left its circuit-breaker band; re-anchor the reference."""
    t = state.step[e]
    for k in range(params.market_kind.shape[0]):
        band = params.circuit_breaker[k]
        if band <= 0.0 or t < state.halted_until[e, k]:
            continue
        mark = state.mark_price[e, k]
        if t == state.halted_until[e, k]:
            state.breaker_reference[e, k] = mark  # trading resumes from here
        elif abs(mark / state.breaker_reference[e, k] - 1.0) > band:
            state.halted_until[e, k] = t + params.breaker_halt
            state.breaker_reference[e, k] = mark
        elif t % params.breaker_window == 0:
            state.breaker_reference[e, k] = mark  # a new window, compared first


@kernel
def update_prices(params, state, e):
    """Refresh mark and collateral prices from the index, the books and the last trades."""
    window = state.basis_ring.shape[2]
    slot = state.step[e] % window
    samples = min(state.step[e] + 1, window)
    for k in range(params.market_kind.shape[0]):
        index = state.index_price[e, k]
        last = state.last_price[e, k]
        bid = best_price(state, e, k, BID)
        ask = best_price(state, e, k, ASK)
        state.basis_ring[e, k, slot] = book_price(bid, ask, last, params.tick_size[k]) - index
        basis = state.basis_ring[e, k].sum() / samples
        state.mark_price[e, k] = median3(index, index + basis, last)
        if params.market_kind[k] != PERP:
            w = params.book_weight[k]
            state.collateral_price[e, k] = w * last + (1.0 - w) * index
