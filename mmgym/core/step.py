"""The fused exchange step: orders, marking, liquidation, fund, ADL lights, statistics."""

from __future__ import annotations

from .._jit import kernel
from .adl import refresh_quantiles
from .codes import E_FUND_UTILISATION
from .liquidation import fund_utilisation, run_liquidations, unwind_fund
from .orders import process_order
from .prices import update_breakers, update_prices
from .stats import record_stats, reset_flow_stats


@kernel
def begin_step(params, state, e, index):
    """Take the step's index prices and reset the per-step budgets and flow statistics."""
    for k in range(params.market_kind.shape[0]):
        state.index_price[e, k] = index[k]
        state.liq_budget[e, k] = params.liquidation_cap[k]
        state.unwind_budget[e, k] = params.fund_unwind_cap[k]
    reset_flow_stats(state, e)


@kernel
def end_step(params, state, e):
    """Mark to market, liquidate, unwind the fund, refresh ADL lights, record statistics."""
    update_prices(params, state, e)
    update_breakers(params, state, e)
    run_liquidations(params, state, e)
    # Measured before the fund unwinds, when takeovers and ADL have just happened.
    state.env_stats[e, E_FUND_UTILISATION] = fund_utilisation(params, state, e)
    unwind_fund(params, state, e)
    if state.step[e] % params.adl_refresh_steps == 0:
        refresh_quantiles(params, state, e)
    record_stats(params, state, e)
    state.step[e] += 1


@kernel
def advance(params, state, orders, results, index):
    """One step of every env: ``index[e, k]`` prices, then the ``orders`` rows in order.

    Orders are checked against the marks of the previous step; new marks are
    computed after all orders, and liquidations run at those marks.
    """
    n_envs = state.cash.shape[0]
    for e in range(n_envs):
        begin_step(params, state, e, index[e])
    for r in range(orders.shape[0]):
        process_order(params, state, orders, r, results)
    for e in range(n_envs):
        end_step(params, state, e)
