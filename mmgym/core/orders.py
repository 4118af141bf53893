"""Order entry: band, post-only and margin checks, matching, resting, cancels."""

from __future__ import annotations

import math

from .._jit import inline_kernel
from .accounts import cancel_all_in_market, cancel_by_id, hold_resting, settle_matches
from .book import best_price, can_rest, match, rest_order
from .codes import (
    ACCEPTED,
    ASK,
    BID,
    BUY,
    CANCEL,
    CANCEL_ALL,
    LIMIT,
    MARKET,
    O_ACCOUNT,
    O_ENV,
    O_KIND,
    O_MARKET,
    O_PRICE,
    O_QTY,
    O_REF,
    O_SIDE,
    PERP,
    POST_ONLY,
    R_FILLED,
    R_ORDER_ID,
    R_STATUS,
    REJECT_BALANCE,
    REJECT_BOOK_FULL,
    REJECT_HALTED,
    REJECT_IN_LIQUIDATION,
    REJECT_MARGIN,
    REJECT_POSITION_LIMIT,
    REJECT_POST_ONLY,
    REJECT_PRICE_BAND,
    REJECT_REDUCE_ONLY,
    REJECT_UNKNOWN_ORDER,
    UNIFIED,
)
from .margin import equity, equity_and_mm, exposure, initial_margin, wallet_balance


@inline_kernel
def band_ticks(params, state, e, k):
    """Lowest and highest limit price (ticks) the price band allows around mark."""
    mark = state.mark_price[e, k]
    band = params.price_band[k]
    tick = params.tick_size[k]
    # A hair of tolerance so a band edge that is a whole tick is not lost to rounding.
    lo = math.ceil(mark * (1.0 - band) / tick - 1e-9)
    hi = math.floor(mark * (1.0 + band) / tick + 1e-9)
    return max(lo, 1), hi


@inline_kernel
def free_margin(params, state, e, a, k, extra_buy, extra_sell, spend, collateral_gain):
    """Equity left after initial margin, reserved spot cash and an order's cost.

    ``extra_*`` lots are added to perp exposure in market ``k``; ``spend`` is
    cash a spot buy pays and ``collateral_gain`` what its purchase adds as
    (haircut) collateral. Unified accounts also hold ``borrow_imr`` on debt.
    """
    reserved = state.reserved_quote[e, a]
    free = equity(params, state, e, a) + collateral_gain - spend - reserved
    free -= initial_margin(params, state, e, a, k, extra_buy, extra_sell)
    if state.account_kind[e, a] == UNIFIED:
        debt = -(wallet_balance(params, state, e, a) - spend - reserved)
        if debt > 0:
            free -= debt * params.borrow_imr
    return free


@inline_kernel
def reduce_only(params, state, e, a):
    """Whether a unified account's uniMMR is below its reduce-only level."""
    if state.account_kind[e, a] != UNIFIED:
        return False
    eq, mm = equity_and_mm(params, state, e, a)
    return mm > 0.0 and eq < params.unified_reduce_only_level * mm


@inline_kernel
def open_loss(params, state, e, k, side, lots, limit, kind):
    """What an order loses against the mark as it fills (USDT), charged on top of
    initial margin as venues do, so that no order opens a position already bankrupt.

    Priced at the order's limit (Binance's rule for limit orders); a market
    order at the book's levels it would sweep up to its band-edge limit, the
    taker's own resting orders counted as if they filled.
    """
    mark = state.mark_price[e, k] / params.tick_size[k]
    value = params.lot_size[k] * params.tick_size[k]
    if kind != MARKET:
        return lots * max(0.0, side * (limit - mark)) * value
    slot = ASK if side == BUY else BID
    left = lots
    loss = 0.0
    for i in range(state.n_levels[e, k, slot] - 1, -1, -1):
        price = state.level_price[e, k, slot, i]
        if side * (price - limit) > 0 or left == 0:
            break
        take = min(left, state.level_qty[e, k, slot, i])
        loss += take * max(0.0, side * (price - mark))
        left -= take
    return loss * value


@inline_kernel
def _margin_status(params, state, e, a, k, side, lots, limit, kind):
    if params.market_kind[k] == PERP:
        extra_buy = lots if side == BUY else 0
        extra_sell = lots if side != BUY else 0
        after = exposure(state, e, a, k, extra_buy, extra_sell)
        if after <= exposure(state, e, a, k, 0, 0):
            return ACCEPTED  # reduces (or keeps) worst-case exposure: always allowed
        if after * params.lot_size[k] * state.mark_price[e, k] > params.position_limit[k]:
            return REJECT_POSITION_LIMIT
        if reduce_only(params, state, e, a):
            return REJECT_REDUCE_ONLY
        free = free_margin(params, state, e, a, k, extra_buy, extra_sell, 0.0, 0.0)
        if free < open_loss(params, state, e, k, side, lots, limit, kind):
            return REJECT_MARGIN
        return ACCEPTED
    if side != BUY:
        if state.pos[e, a, k] - state.open_sell[e, a, k] < lots:
            return REJECT_BALANCE
        return ACCEPTED
    if reduce_only(params, state, e, a):
        return REJECT_REDUCE_ONLY
    cost = lots * params.lot_size[k] * limit * params.tick_size[k]
    gain = 0.0  # what the coins add to equity: their collateral value, as margin counts it
    unspendable = 0.0
    if state.account_kind[e, a] == UNIFIED:
        gain = lots * params.lot_size[k] * state.collateral_price[e, k] * params.collateral_ratio[k]
    else:
        # A cross account's coins are no margin: unrealised profit may back its
        # positions but is not cash to pay for them.
        unspendable = max(0.0, equity(params, state, e, a) - wallet_balance(params, state, e, a))
    if free_margin(params, state, e, a, k, 0, 0, cost, gain) < unspendable:
        return REJECT_MARGIN
    return ACCEPTED


@inline_kernel
def _would_take(state, e, k, side, limit):
    if side == BUY:
        ask = best_price(state, e, k, ASK)
        return ask >= 0 and ask <= limit
    bid = best_price(state, e, k, BID)
    return bid >= 0 and bid >= limit


@inline_kernel
def process_order(params, state, orders, r, results):
    """Apply order event ``orders[r]``; write status, order id and filled lots to ``results[r]``."""
    e = orders[r, O_ENV]
    k = orders[r, O_MARKET]
    a = orders[r, O_ACCOUNT]
    kind = orders[r, O_KIND]
    side = orders[r, O_SIDE]
    lots = orders[r, O_QTY]
    results[r, R_ORDER_ID] = 0
    results[r, R_FILLED] = 0
    if kind == CANCEL:
        cancelled = cancel_by_id(params, state, e, k, a, orders[r, O_REF])
        results[r, R_STATUS] = ACCEPTED if cancelled >= 0 else REJECT_UNKNOWN_ORDER
        return
    if kind == CANCEL_ALL:
        cancel_all_in_market(params, state, e, k, a)
        results[r, R_STATUS] = ACCEPTED
        return
    if state.in_liquidation[e, a]:
        results[r, R_STATUS] = REJECT_IN_LIQUIDATION
        return
    if state.step[e] < state.halted_until[e, k]:
        results[r, R_STATUS] = REJECT_HALTED
        return
    lo, hi = band_ticks(params, state, e, k)
    if kind == MARKET:
        limit = hi if side == BUY else lo
    else:
        limit = orders[r, O_PRICE]
        if limit < lo or limit > hi:
            results[r, R_STATUS] = REJECT_PRICE_BAND
            return
    if kind == POST_ONLY and _would_take(state, e, k, side, limit):
        results[r, R_STATUS] = REJECT_POST_ONLY
        return
    status = _margin_status(params, state, e, a, k, side, lots, limit, kind)
    if status != ACCEPTED:
        results[r, R_STATUS] = status
        return
    n, filled = match(state, e, k, side, limit, lots, a)
    settle_matches(params, state, e, k, n, a, side, False)
    results[r, R_FILLED] = filled
    results[r, R_STATUS] = ACCEPTED
    remaining = lots - filled
    if remaining > 0 and (kind in (LIMIT, POST_ONLY)):
        if can_rest(state, e, k, side, limit):
            results[r, R_ORDER_ID] = rest_order(state, e, k, side, limit, remaining, a)
            hold_resting(params, state, e, k, a, side, remaining, limit)
        else:
            results[r, R_STATUS] = REJECT_BOOK_FULL
