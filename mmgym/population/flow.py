"""Background traders: noise, momentum, fundamental (anchor) and arbitrage flow."""

from __future__ import annotations

import math

from .._jit import inline_kernel, kernel
from ..core.book import best_price
from ..core.codes import ASK, BID, BUY, CANCEL_ALL, IOC, LIMIT, MARKET, PERP, SELL
from ..core.orders import band_ticks
from .orders import push
from .rng import exponential, pareto, poisson, uniform

NOISE, ANCHOR, MOMENTUM, ARBITRAGE = range(4)
MAX_ARRIVALS = 64  # per kind, market and step: bounds the order buffer


@inline_kernel
def flow_account(pp, k, role):
    """Account index of a background role in market ``k``."""
    return pp.flow_start + 4 * k + role


@inline_kernel
def _size(ps, e, base, alpha):
    # Heavy-tailed size, capped at 100x the base so one draw cannot empty every book.
    return max(1, int(base * min(pareto(ps.streams, e, alpha), 100.0)))


@inline_kernel
def _gap_trade(params, state, ps, e, k, a, gap, threshold, lots, capacity, held, reference):
    """Trade towards ``reference`` when the book is more than ``threshold`` away from it.

    Buys when the best ask is below ``reference * (1 - threshold)``, sells when
    the best bid is above ``reference * (1 + threshold)``, with an IOC limited
    at that bound, in size growing with the gap, while its net trade (position
    less the ``held`` lots it started with) is within ``capacity``
    either way; a spot trader sells only coins it holds.
    A bound outside the venue's price band is brought to the band's edge: the
    venue would reject it, and a trader who wants the price back keeps buying
    (or selling) at the best price the venue accepts.
    """
    tick = params.tick_size[k]
    pos = state.pos[e, a, k]
    net = pos - held
    if gap < -threshold and net < capacity:
        _, hi = band_ticks(params, state, e, k)  # only when trading: this runs every step
        limit = min(math.floor(reference * (1.0 - threshold) / tick), hi)
        size = min(int(lots * min(-gap / threshold, 5.0)) + 1, int(capacity - net))
        if size > 0:
            push(ps, e, k, a, IOC, BUY, limit, size, 0, -1)
    elif gap > threshold and net > -capacity:
        room = capacity + net
        if params.market_kind[k] != PERP:
            room = min(room, pos)  # spot: only coins held
        lo, _ = band_ticks(params, state, e, k)
        limit = max(math.ceil(reference * (1.0 + threshold) / tick), lo)
        size = min(int(lots * min(gap / threshold, 5.0)) + 1, int(room))
        if size > 0:
            push(ps, e, k, a, IOC, SELL, limit, size, 0, -1)


@kernel
def background_flow(params, state, pp, ps, e, t):
    """Write this step's background orders for every market of env ``e``."""
    for k in range(params.market_kind.shape[0]):
        tick = params.tick_size[k]
        mark = state.mark_price[e, k]
        bid = best_price(state, e, k, BID)
        ask = best_price(state, e, k, ASK)
        # Noise: market orders, and limit orders near the touch refreshed periodically.
        a = flow_account(pp, k, NOISE)
        for _ in range(min(poisson(ps.streams, e, pp.noise_rate[k]), MAX_ARRIVALS)):
            side = BUY if uniform(ps.streams, e) < 0.5 else SELL
            push(
                ps,
                e,
                k,
                a,
                MARKET,
                side,
                0,
                _size(ps, e, pp.noise_lots[k], pp.size_alpha[k]),
                0,
                -1,
            )
        if pp.limit_rate[k] > 0 and t % pp.limit_refresh[k] == 0:
            push(ps, e, k, a, CANCEL_ALL, 0, 0, 0, 0, -1)
        # Limit traders keep further from a mark that jumps more than usual.
        excess_vol = math.sqrt(ps.mark_vol[e, k]) / pp.base_volatility[k] - 1.0
        offset = pp.limit_offset[k] * (1.0 + pp.limit_vol_scaling[k] * max(excess_vol, 0.0))
        for _ in range(min(poisson(ps.streams, e, pp.limit_rate[k]), MAX_ARRIVALS)):
            side = BUY if uniform(ps.streams, e) < 0.5 else SELL
            distance = offset * (0.2 + exponential(ps.streams, e))
            if side == BUY:
                price = math.floor(mark * (1.0 - distance) / tick)
            else:
                price = math.ceil(mark * (1.0 + distance) / tick)
            lots = _size(ps, e, pp.limit_lots[k], pp.size_alpha[k])
            push(ps, e, k, a, LIMIT, side, price, lots, 0, -1)
        # Momentum: follow the recent trend of the mark.
        trend = ps.trend[e, k]
        if abs(trend) > pp.momentum_gap[k] and uniform(ps.streams, e) < pp.momentum_rate[k]:
            side = BUY if trend > 0 else SELL
            lots = _size(ps, e, pp.momentum_lots[k], pp.size_alpha[k])
            push(ps, e, k, flow_account(pp, k, MOMENTUM), MARKET, side, 0, lots, 0, -1)
        if bid < 0 and ask < 0:
            continue
        index = state.index_price[e, k]
        # Gap of the book to the index: the side a trader would hit.
        if ask >= 0 and ask * tick < index:
            gap = ask * tick / index - 1.0
        elif bid >= 0 and bid * tick > index:
            gap = bid * tick / index - 1.0
        else:
            gap = 0.0
        if pp.anchor_lots[k] > 0:
            _gap_trade(
                params,
                state,
                ps,
                e,
                k,
                flow_account(pp, k, ANCHOR),
                gap,
                pp.anchor_gap[k],
                pp.anchor_lots[k],
                pp.anchor_capacity[k],
                pp.flow_holdings[k],
                index,
            )
        if pp.arb_lots[k] > 0:
            blocked = 0 <= pp.arbitrage_blocked_from <= t
            capacity = pp.blocked_capacity[k] if blocked else pp.arb_capacity[k]
            _gap_trade(
                params,
                state,
                ps,
                e,
                k,
                flow_account(pp, k, ARBITRAGE),
                gap,
                pp.arb_gap[k],
                pp.arb_lots[k],
                capacity,
                pp.flow_holdings[k],
                index,
            )
