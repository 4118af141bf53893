"""Leveraged traders' stop-losses and the collateral loopers' risk-off unwinding."""

from __future__ import annotations

from .._jit import kernel
from ..core.codes import BUY, MARKET, SELL
from .orders import push


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
        if p == 0:
            ps.stop_price[e, i] = 0.0  # already liquidated
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
