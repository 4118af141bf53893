"""Leveraged traders' stop-losses and turnover, the collateral loopers' risk-off unwinding."""

from __future__ import annotations

import math

from .._jit import inline_kernel, kernel
from ..core.codes import BUY, IOC, MARKET, SELL
from ..core.margin import equity
from ..core.orders import band_ticks
from .orders import push
from .rng import poisson, uniform

# Turnovers drawn beyond this many in one step are dropped (the buffer holds
# two rows each); at the rates of the configs a step draws about one.
TURNOVERS_PER_STEP = 32
REOPEN_MARGIN_USE = 0.9  # share of equity x leverage a reopened position uses


@kernel
def stop_orders(params, state, pp, ps, e):
    """Close a trader's position with a market order once the mark crosses its stop.

    Only the armed stops are visited (``stop_list``); a stop that fires or
    finds its position gone is dropped from the list, which keeps its order.
    """
    kept = 0
    for j in range(ps.n_stops[e]):
        i = ps.stop_list[e, j]
        stop = ps.stop_price[e, i]
        a = pp.lev_start + i
        k = ps.lev_market[e, i]
        p = state.pos[e, a, k]
        mark = state.mark_price[e, k]
        if p == 0 or stop == 0.0:
            ps.stop_price[e, i] = 0.0  # already liquidated, or disarmed by a turnover
        elif (p > 0 and mark <= stop) or (p < 0 and mark >= stop):
            push(ps, e, k, a, MARKET, SELL if p > 0 else BUY, 0, abs(p), 0, -1)
            ps.stop_price[e, i] = 0.0
        else:
            ps.stop_list[e, kept] = i
            kept += 1
    ps.n_stops[e] = kept


@kernel
def looper_orders(params, state, pp, ps, e):
    """Once risk-off starts, loopers sell part of their collateral to repay debt."""
    if pp.n_loop == 0:
        return
    if state.index_price[e, 0] > pp.index_start[0] * (1.0 - pp.unwind_trigger):
        return
    k = pp.loop_market
    for i in range(pp.n_loop):
        a = pp.loop_start + i
        held = state.pos[e, a, k] - state.open_sell[e, a, k]
        if held <= 0 or state.cash[e, a] >= 0.0:
            continue  # nothing left to sell, or no debt left
        lots = max(int(held * pp.unwind_rate), 1)
        push(ps, e, k, a, MARKET, SELL, 0, lots, 0, -1)


@inline_kernel
def reopen_lots(params, state, e, a, k):
    """Lots of a new position whose initial margin is ``REOPEN_MARGIN_USE`` of equity.

    At the account's leverage, or at a bracket's lower maximum for a size in
    that bracket: the largest position the margin opens in any bracket, and
    no larger than the market's position limit allows at the mark.
    """
    margin = REOPEN_MARGIN_USE * equity(params, state, e, a)
    unit = state.mark_price[e, k] * params.lot_size[k]
    floors = params.bracket_floor[k]
    best = 0
    for t in range(floors.shape[0]):
        if floors[t] == math.inf:
            break
        leverage = min(state.leverage[e, a], params.bracket_max_leverage[k, t])
        lots = int(margin * leverage / unit)
        if t + 1 < floors.shape[0] and floors[t + 1] < math.inf:
            lots = min(lots, math.ceil(floors[t + 1] / unit) - 1)  # stay below the next floor
        if lots * unit >= floors[t]:
            best = max(best, lots)
    limit = params.position_limit[k]
    if limit < math.inf:
        # The engine refuses an order past the limit, so it would reopen nothing; its
        # own test of the limit settles a quotient that rounded up.
        best = min(best, int(limit / unit))
        while best > 0 and best * params.lot_size[k] * state.mark_price[e, k] > limit:
            best -= 1
    return best


@inline_kernel
def _turnover_order(params, state, pp, ps, e, k, a, side, lots):
    """A turnover's order: a market order, or an IOC no further than ``turnover_slippage``
    from the mark (inside the price band), whose unfilled rest is dropped."""
    if pp.turnover_slippage == math.inf:
        push(ps, e, k, a, MARKET, side, 0, lots, 0, -1)
        return
    lo, hi = band_ticks(params, state, e, k)
    mark_ticks = state.mark_price[e, k] / params.tick_size[k]
    if side == BUY:
        limit = min(math.ceil(mark_ticks * (1.0 + pp.turnover_slippage)), hi)
    else:
        limit = max(math.floor(mark_ticks * (1.0 - pp.turnover_slippage)), lo)
    push(ps, e, k, a, IOC, side, limit, lots, 0, -1)


@inline_kernel
def turn_over(params, state, pp, ps, e, i, side):
    """Trader ``i`` closes its position (if any) and opens ``side`` with a fresh stop.

    Both orders are market orders, applied in this order within the step;
    the stop is set on the next step, at the new entry price.
    """
    a = pp.lev_start + i
    k = ps.lev_market[e, i]
    p = state.pos[e, a, k]
    if p != 0:
        _turnover_order(params, state, pp, ps, e, k, a, SELL if p > 0 else BUY, abs(p))
    lots = reopen_lots(params, state, e, a, k)
    if lots > 0:
        _turnover_order(params, state, pp, ps, e, k, a, side, lots)
        if ps.stop_gap[e, i] > 0.0:
            ps.rearm_list[e, ps.n_rearm[e]] = i
            ps.n_rearm[e] += 1
    ps.stop_price[e, i] = 0.0  # the old stop (if armed) is dropped by ``stop_orders``
    ps.turned_at[e, i] = state.step[e]


@kernel
def turnover_orders(params, state, pp, ps, e):
    """Set the stops of last step's reopened positions, then draw this step's turnovers.

    Runs before ``stop_orders``, which drops the stops a turnover disarmed.
    Each step draws a Poisson number of turnovers (mean ``n_lev *
    turnover_rate``) and gives each to a uniformly drawn trader; hedged
    traders, traders being liquidated and traders already turned over this
    step let theirs pass.
    """
    for j in range(ps.n_rearm[e]):
        i = ps.rearm_list[e, j]
        a = pp.lev_start + i
        k = ps.lev_market[e, i]
        p = state.pos[e, a, k]
        if p != 0 and not state.in_liquidation[e, a]:
            direction = 1.0 if p > 0 else -1.0
            ps.stop_price[e, i] = state.entry[e, a, k] * (1.0 - direction * ps.stop_gap[e, i])
            ps.stop_list[e, ps.n_stops[e]] = i
            ps.n_stops[e] += 1
    ps.n_rearm[e] = 0
    if pp.turnover_rate == 0.0 or pp.n_lev == 0:
        return  # no draws: runs without turnover keep their random streams
    n = min(poisson(ps.streams, e, pp.n_lev * pp.turnover_rate), TURNOVERS_PER_STEP)
    for _ in range(n):
        i = min(int(uniform(ps.streams, e) * pp.n_lev), pp.n_lev - 1)
        side = BUY if uniform(ps.streams, e) < pp.long_share else SELL
        a = pp.lev_start + i
        if ps.hedged[e, i] or state.in_liquidation[e, a] or ps.turned_at[e, i] == state.step[e]:
            continue
        turn_over(params, state, pp, ps, e, i, side)
