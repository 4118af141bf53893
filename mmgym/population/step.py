"""The fused step of an exchange with its population, and a whole-episode runner.

Per env and step: the exogenous index moves; maker firms update their stress;
orders are gathered in a fixed order (external orders, e.g. an RL agent's,
then maker cancels and quotes, background flow, leveraged traders' turnover,
stop-losses, loopers) and applied one by one; the exchange marks, liquidates
and records statistics; the signals the agents read next step are updated.
"""

from __future__ import annotations

import math

from .._jit import inline_kernel, kernel
from ..core.codes import (
    O_ENV,
    O_MARKET,
    R_STATUS,
    REJECT_BOOK_FULL,
    S_LIQ_NOTIONAL_LONG,
    S_LIQ_NOTIONAL_SHORT,
)
from ..core.orders import process_order
from ..core.step import begin_step, end_step
from .flow import background_flow
from .index import advance_index
from .makers import maker_orders, record_maker_orders, update_stress
from .traders import looper_orders, stop_orders, turnover_orders


@kernel
def update_signals(params, state, pp, ps, e):
    """Realised volatility of the index, trend of the mark, liquidation flow, as EWMAs.

    Makers measure volatility on the index (the wider market): the prices of a
    book they have left jump between stray orders and would keep them away for
    ever. Momentum traders follow this venue's own mark.
    """
    alpha = pp.volatility_alpha
    for k in range(params.market_kind.shape[0]):
        index = state.index_price[e, k]
        r = math.log(index / ps.prev_index[e, k])
        ps.prev_index[e, k] = index
        ps.vol_signal[e, k] += alpha * (r * r - ps.vol_signal[e, k])
        mark = state.mark_price[e, k]
        r = math.log(mark / ps.prev_mark[e, k])
        ps.prev_mark[e, k] = mark
        ps.trend[e, k] += alpha * (r - ps.trend[e, k])
        ps.mark_vol[e, k] += alpha * (r * r - ps.mark_vol[e, k])
        liq = state.market_stats[e, k, S_LIQ_NOTIONAL_LONG]
        liq += state.market_stats[e, k, S_LIQ_NOTIONAL_SHORT]
        ps.liq_signal[e, k] += alpha * (liq - ps.liq_signal[e, k])


@inline_kernel
def _apply(params, state, ps, e, rows, r, results):
    # A book too small for the scenario's orders is counted, to be raised outside.
    process_order(params, state, rows, r, results)
    if results[r, R_STATUS] == REJECT_BOOK_FULL:
        ps.book_full[e, rows[r, O_MARKET]] += 1


@kernel
def population_step(params, state, pp, ps, e, external, external_results, index):
    """One step of env ``e``.

    ``external[e]`` holds orders from outside the population (an RL agent's),
    applied first; rows whose env column is not ``e`` are skipped. Their
    results go to ``external_results[e]``.
    """
    t = state.step[e]
    advance_index(pp, ps, e, t, index)
    begin_step(params, state, e, index)
    rows = external[e]
    results = external_results[e]
    for r in range(rows.shape[0]):
        if rows[r, O_ENV] == e:
            _apply(params, state, ps, e, rows, r, results)
            ps.n_orders[e] += 1
    update_stress(params, state, pp, ps, e)
    ps.n_buffer[e] = 0
    maker_orders(params, state, pp, ps, e)
    background_flow(params, state, pp, ps, e, t)
    turnover_orders(params, state, pp, ps, e)
    stop_orders(params, state, pp, ps, e)
    looper_orders(params, state, pp, ps, e)
    rows = ps.buffer[e]
    results = ps.buffer_results[e]
    for r in range(ps.n_buffer[e]):
        _apply(params, state, ps, e, rows, r, results)
    ps.n_orders[e] += ps.n_buffer[e]
    record_maker_orders(pp, ps, e)
    end_step(params, state, e)
    update_signals(params, state, pp, ps, e)


@kernel
def audit(state, e, totals):
    """Write each market's sum of positions (or spot holdings) into ``totals``;
    return cash + fees - socialised loss."""
    for k in range(totals.shape[0]):
        total = 0
        for a in range(state.cash.shape[1]):
            total += state.pos[e, a, k]
        totals[k] = total
    cash = state.fees_collected[e] - state.socialised_loss[e]
    for a in range(state.cash.shape[1]):
        cash += state.cash[e, a]
    return cash


@kernel
def run_episode(params, state, pp, ps, n_steps, external, external_results, index, logs):
    """Run ``n_steps`` steps of every env, logging each step into ``logs`` (see runner).

    ``external`` (int64[E, R, 8]) rows are applied at every step (see ``population_step``).
    """
    for t in range(n_steps):
        for e in range(state.cash.shape[0]):
            population_step(params, state, pp, ps, e, external, external_results, index)
            for k in range(state.market_stats.shape[1]):
                for i in range(state.market_stats.shape[2]):
                    logs.market[e, t, k, i] = state.market_stats[e, k, i]
            for i in range(state.env_stats.shape[1]):
                logs.env[e, t, i] = state.env_stats[e, i]
            logs.quoting[e, t] = ps.quoting_share[e]
            for f in range(ps.stress_parts.shape[1]):
                logs.maker_away[e, t, f] = ps.away[e, f]
                for i in range(ps.stress_parts.shape[2]):
                    logs.maker_stress[e, t, f, i] = ps.stress_parts[e, f, i]
            logs.cash[e, t] = audit(state, e, logs.totals[e, t])
