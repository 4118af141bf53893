"""Settling trades into accounts: cash, positions, entry prices, fees, open orders."""

from __future__ import annotations

from .._jit import inline_kernel
from .book import find_order, remove_order
from .codes import (
    BUY,
    F_LIQUIDATION,
    F_MAKER,
    F_MARKET,
    F_PRICE,
    F_QTY,
    F_STEP,
    F_TAKER,
    F_TAKER_SIDE,
    PERP,
    S_VOLUME,
)


@inline_kernel
def _apply_position(params, state, e, a, k, delta, price):
    """Change account ``a``'s holding in market ``k`` by ``delta`` lots bought at ``price``."""
    old = state.pos[e, a, k]
    new = old + delta
    if params.market_kind[k] == PERP:
        entry = state.entry[e, a, k]
        if old == 0 or (old > 0) == (delta > 0):
            # Opening or adding: volume-weighted entry.
            state.entry[e, a, k] = (abs(old) * entry + abs(delta) * price) / abs(new)
        else:
            closed = min(abs(old), abs(delta))
            sign = 1.0 if old > 0 else -1.0
            state.realised_pnl[e, a] += sign * closed * params.lot_size[k] * (price - entry)
            if new == 0:
                state.entry[e, a, k] = 0.0
            elif (new > 0) != (old > 0):
                state.entry[e, a, k] = price  # flipped: the remainder opened here
        state.open_interest[e, k] += max(new, 0) - max(old, 0)
    state.pos[e, a, k] = new
    state.cushion[e, a] = -1.0  # its margin changed: the screen must check it again


@inline_kernel
def transfer(params, state, e, k, buyer, seller, price, lots):
    """Move ``lots`` of market ``k`` from seller to buyer at ``price`` (a float, USDT).

    Cash moves by exactly ``price * lots * lot_size``, so total cash is conserved.
    """
    notional = price * lots * params.lot_size[k]
    state.cash[e, buyer] -= notional
    state.cash[e, seller] += notional
    _apply_position(params, state, e, buyer, k, lots, price)
    _apply_position(params, state, e, seller, k, -lots, price)
    return notional


@inline_kernel
def charge_fee(state, e, a, amount):
    """Account ``a`` pays ``amount`` (negative = receives a rebate) to the exchange."""
    state.cash[e, a] -= amount
    state.fees_paid[e, a] += amount
    state.fees_collected[e] += amount
    state.cushion[e, a] = -1.0  # its margin changed: the screen must check it again


@inline_kernel
def release_resting(params, state, e, k, owner, side, lots, price_ticks):
    """Forget ``lots`` of a resting order that filled or was cancelled."""
    if side == BUY:
        state.open_buy[e, owner, k] -= lots
        if params.market_kind[k] != PERP:
            state.reserved_quote[e, owner] -= (
                price_ticks * params.tick_size[k] * lots * params.lot_size[k]
            )
    else:
        state.open_sell[e, owner, k] -= lots


@inline_kernel
def hold_resting(params, state, e, k, owner, side, lots, price_ticks):
    """Account for ``lots`` that now rest in the book."""
    if side == BUY:
        state.open_buy[e, owner, k] += lots
        if params.market_kind[k] != PERP:
            state.reserved_quote[e, owner] += (
                price_ticks * params.tick_size[k] * lots * params.lot_size[k]
            )
    else:
        state.open_sell[e, owner, k] += lots


@inline_kernel
def _log_fill(state, e, k, maker, taker, price, lots, side, liquidation):
    capacity = state.fills.shape[1]
    row = state.n_fills[e] % capacity
    state.fills[e, row, F_STEP] = state.step[e]
    state.fills[e, row, F_MARKET] = k
    state.fills[e, row, F_MAKER] = maker
    state.fills[e, row, F_TAKER] = taker
    state.fills[e, row, F_PRICE] = price
    state.fills[e, row, F_QTY] = lots
    state.fills[e, row, F_TAKER_SIDE] = side
    state.fills[e, row, F_LIQUIDATION] = liquidation
    state.n_fills[e] += 1


@inline_kernel
def settle_matches(params, state, e, k, n, taker, side, liquidation):
    """Settle the ``n`` scratch entries written by ``book.match`` for an incoming order.

    Returns the filled notional. Liquidation and fund orders (``liquidation``
    true) pay no taker fee: the clearance fee is charged separately.
    """
    notional = 0.0
    tick = params.tick_size[k]
    for j in range(n):
        lots = state.match_qty[e, j]
        maker = state.match_owner[e, j]
        price_ticks = state.match_price[e, j]
        if lots < 0:  # self-trade prevention cancelled a resting order
            release_resting(params, state, e, k, maker, -side, -lots, price_ticks)
            continue
        release_resting(params, state, e, k, maker, -side, lots, price_ticks)
        price = price_ticks * tick
        if side == BUY:
            value = transfer(params, state, e, k, taker, maker, price, lots)
        else:
            value = transfer(params, state, e, k, maker, taker, price, lots)
        charge_fee(state, e, maker, params.maker_fee[k] * value)
        if not liquidation:
            charge_fee(state, e, taker, params.taker_fee[k] * value)
        notional += value
        state.last_price[e, k] = price
        state.market_stats[e, k, S_VOLUME] += value
        _log_fill(state, e, k, maker, taker, price_ticks, lots, side, liquidation)
    return notional


@inline_kernel
def cancel_order(params, state, e, k, o):
    """Cancel the live order in pool slot ``o``."""
    release_resting(
        params,
        state,
        e,
        k,
        state.order_owner[e, k, o],
        state.order_side[e, k, o],
        state.order_qty[e, k, o],
        state.order_price[e, k, o],
    )
    remove_order(state, e, k, o, -1)


@inline_kernel
def cancel_by_id(params, state, e, k, a, oid):
    """Cancel order ``oid`` if account ``a`` owns it; returns the lots cancelled or -1."""
    o = find_order(state, e, k, oid)
    if o < 0 or state.order_owner[e, k, o] != a:
        return -1
    lots = state.order_qty[e, k, o]
    cancel_order(params, state, e, k, o)
    return lots


@inline_kernel
def cancel_all_in_market(params, state, e, k, a):
    """Cancel every order of account ``a`` in market ``k``; returns how many."""
    if state.open_buy[e, a, k] == 0 and state.open_sell[e, a, k] == 0:
        return 0
    count = 0
    for o in range(state.order_id.shape[2]):
        if state.order_id[e, k, o] != 0 and state.order_owner[e, k, o] == a:
            cancel_order(params, state, e, k, o)
            count += 1
    return count


@inline_kernel
def cancel_all(params, state, e, a):
    """Cancel every order of account ``a`` in every market."""
    for k in range(state.pos.shape[2]):
        cancel_all_in_market(params, state, e, k, a)
