"""L3 limit order book with price-time priority (one book per env and market).

Levels per side are kept sorted so that the best level is the last used slot
(bids ascending, asks descending); a level's orders form a FIFO linked list
through the order pool. These kernels know nothing of accounts: matching
writes what it touched into the state's scratch arrays and the caller settles.
"""

from __future__ import annotations

from .._jit import inline_kernel
from .codes import ASK, BID, BUY


@inline_kernel
def side_slot(side):
    """Book side slot (BID/ASK) of an order side (BUY/SELL)."""
    return BID if side == BUY else ASK


@inline_kernel
def best_price(state, e, k, slot):
    """Best price (ticks) on a book side, or -1 when that side is empty."""
    n = state.n_levels[e, k, slot]
    if n == 0:
        return -1
    return state.level_price[e, k, slot, n - 1]


@inline_kernel
def _level_key(slot, price):
    # Sort key increasing towards the best price on both sides.
    return price if slot == BID else -price


@inline_kernel
def _find_level(state, e, k, slot, price):
    """Index of the first level whose key is >= price's key (binary search)."""
    key = _level_key(slot, price)
    lo = 0
    hi = state.n_levels[e, k, slot]
    while lo < hi:
        mid = (lo + hi) >> 1
        if _level_key(slot, state.level_price[e, k, slot, mid]) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@inline_kernel
def can_rest(state, e, k, side, price):
    """True if an order at ``price`` fits: a free pool slot and a level for it."""
    if state.n_free[e, k] == 0:
        return False
    slot = side_slot(side)
    n = state.n_levels[e, k, slot]
    if n < state.level_price.shape[3]:
        return True
    i = _find_level(state, e, k, slot, price)
    return i < n and state.level_price[e, k, slot, i] == price


@inline_kernel
def rest_order(state, e, k, side, price, qty, owner):
    """Append an order at the back of its price level; returns its id.

    The caller checks ``can_rest`` first.
    """
    slot = side_slot(side)
    n = state.n_levels[e, k, slot]
    i = _find_level(state, e, k, slot, price)
    if i == n or state.level_price[e, k, slot, i] != price:
        # New level: shift the better levels up by one.
        for j in range(n, i, -1):
            state.level_price[e, k, slot, j] = state.level_price[e, k, slot, j - 1]
            state.level_qty[e, k, slot, j] = state.level_qty[e, k, slot, j - 1]
            state.level_head[e, k, slot, j] = state.level_head[e, k, slot, j - 1]
            state.level_tail[e, k, slot, j] = state.level_tail[e, k, slot, j - 1]
        state.level_price[e, k, slot, i] = price
        state.level_qty[e, k, slot, i] = 0
        state.level_head[e, k, slot, i] = -1
        state.level_tail[e, k, slot, i] = -1
        state.n_levels[e, k, slot] = n + 1
    state.n_free[e, k] -= 1
    o = state.free_slots[e, k, state.n_free[e, k]]
    capacity = state.order_id.shape[2]
    oid = state.next_order_seq[e] * capacity + o
    state.next_order_seq[e] += 1
    state.order_id[e, k, o] = oid
    state.order_price[e, k, o] = price
    state.order_qty[e, k, o] = qty
    state.order_owner[e, k, o] = owner
    state.order_side[e, k, o] = side
    tail = state.level_tail[e, k, slot, i]
    state.order_prev[e, k, o] = tail
    state.order_next[e, k, o] = -1
    if tail >= 0:
        state.order_next[e, k, tail] = o
    else:
        state.level_head[e, k, slot, i] = o
    state.level_tail[e, k, slot, i] = o
    state.level_qty[e, k, slot, i] += qty
    return oid


@inline_kernel
def find_order(state, e, k, oid):
    """Pool slot of a live order id, or -1."""
    if oid <= 0:
        return -1
    o = oid % state.order_id.shape[2]
    if state.order_id[e, k, o] != oid:
        return -1
    return o


@inline_kernel
def _drop_level(state, e, k, slot, i):
    n = state.n_levels[e, k, slot]
    for j in range(i, n - 1):
        state.level_price[e, k, slot, j] = state.level_price[e, k, slot, j + 1]
        state.level_qty[e, k, slot, j] = state.level_qty[e, k, slot, j + 1]
        state.level_head[e, k, slot, j] = state.level_head[e, k, slot, j + 1]
        state.level_tail[e, k, slot, j] = state.level_tail[e, k, slot, j + 1]
    state.n_levels[e, k, slot] = n - 1


@inline_kernel
def remove_order(state, e, k, o, level):
    """Unlink pool slot ``o`` from its level (index ``level``, or -1 to search) and free it."""
    side = state.order_side[e, k, o]
    slot = side_slot(side)
    if level < 0:
        level = _find_level(state, e, k, slot, state.order_price[e, k, o])
    prev = state.order_prev[e, k, o]
    nxt = state.order_next[e, k, o]
    if prev >= 0:
        state.order_next[e, k, prev] = nxt
    else:
        state.level_head[e, k, slot, level] = nxt
    if nxt >= 0:
        state.order_prev[e, k, nxt] = prev
    else:
        state.level_tail[e, k, slot, level] = prev
    state.level_qty[e, k, slot, level] -= state.order_qty[e, k, o]
    if state.level_head[e, k, slot, level] < 0:
        _drop_level(state, e, k, slot, level)
    state.order_id[e, k, o] = 0
    state.order_qty[e, k, o] = 0
    state.free_slots[e, k, state.n_free[e, k]] = o
    state.n_free[e, k] += 1


@inline_kernel
def match(state, e, k, side, limit, qty, taker):
    """Take up to ``qty`` lots from the opposite side at prices no worse than ``limit``.

    Resting orders of ``taker`` met on the way are cancelled (self-trade
    prevention). Every resting order touched is written to the scratch arrays
    ``match_*[e, :n]``: a positive ``match_qty`` is a fill at ``match_price``,
    a negative one a self-trade cancel of that many lots. Returns
    ``(n, filled_lots)``.
    """
    slot = 1 - side_slot(side)
    n = 0
    filled = 0
    while filled < qty and state.n_levels[e, k, slot] > 0:
        i = state.n_levels[e, k, slot] - 1
        price = state.level_price[e, k, slot, i]
        if (side == BUY and price > limit) or (side != BUY and price < limit):
            break
        o = state.level_head[e, k, slot, i]
        while o >= 0 and filled < qty:
            nxt = state.order_next[e, k, o]
            owner = state.order_owner[e, k, o]
            resting = state.order_qty[e, k, o]
            state.match_slot[e, n] = o
            state.match_price[e, n] = price
            state.match_owner[e, n] = owner
            if owner == taker:
                state.match_qty[e, n] = -resting
                n += 1
                remove_order(state, e, k, o, i)
                if state.n_levels[e, k, slot] <= i:
                    break  # the level went with the order
            else:
                take = min(qty - filled, resting)
                state.match_qty[e, n] = take
                n += 1
                filled += take
                if take == resting:
                    remove_order(state, e, k, o, i)
                    if state.n_levels[e, k, slot] <= i:
                        break
                else:
                    state.order_qty[e, k, o] = resting - take
                    state.level_qty[e, k, slot, i] -= take
            o = nxt
    return n, filled


@inline_kernel
def depth_within(state, e, k, slot, bound, tick_value):
    """Notional resting on one side at prices inside ``bound`` (ticks, inclusive)."""
    total = 0.0
    for i in range(state.n_levels[e, k, slot] - 1, -1, -1):
        price = state.level_price[e, k, slot, i]
        if (slot == BID and price < bound) or (slot != BID and price > bound):
            break
        total += price * tick_value * state.level_qty[e, k, slot, i]
    return total
