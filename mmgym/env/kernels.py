"""Jitted part of the RL environments: actions to orders, stepping, observations, accounting.

One call steps every env of a batch (E envs, G learning agents per env, M
quoted markets per agent). Layouts of the observation and of the accounting
arrays are the integer constants below; ``observation.py`` documents them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._jit import inline_kernel, kernel
from ..core.book import best_price, find_order
from ..core.codes import (
    ASK,
    BID,
    BUY,
    CANCEL,
    E_INSURANCE_FUND,
    IOC,
    O_ENV,
    PERP,
    POST_ONLY,
    R_ORDER_ID,
    R_STATUS,
    S_ADL_COUNT,
    S_ADL_NOTIONAL,
    S_DEPTH,
    S_DEPTH_ASK,
    S_DEPTH_BID,
    S_LIQ_COUNT_LONG,
    S_LIQ_COUNT_SHORT,
    S_LIQ_NOTIONAL_LONG,
    S_LIQ_NOTIONAL_SHORT,
    S_VOLUME,
    SELL,
)
from ..core.margin import equity_and_mm
from ..core.orders import band_ticks
from ..population.orders import set_row
from ..population.step import population_step

# Action columns per quoted market.
A_BID_OFFSET, A_ASK_OFFSET, A_BID_SIZE, A_ASK_SIZE, A_FLATTEN = range(5)

# Observation columns per quoted market, then the account-wide ones.
(
    OB_RETURN,
    OB_TREND,
    OB_VOLATILITY,
    OB_SPREAD,
    OB_IMBALANCE,
    OB_DEPTH,
    OB_BASIS,
    OB_INVENTORY,
    OB_LIQUIDATIONS,
    OB_ADL,
    OB_BID_LIVE,
    OB_ASK_LIVE,
) = range(12)
N_MARKET_OBS = 12
(
    OB_PNL,
    OB_UPNL,
    OB_MARGIN,
    OB_COLLATERAL,
    OB_FUND,
    OB_STRESS,
    OB_TIME_SIN,
    OB_TIME_COS,
    OB_ELAPSED,
) = range(9)
N_ACCOUNT_OBS = 9

# Per-agent accounting of the last env step.
(
    AC_EQUITY,
    AC_PNL,
    AC_FEES,
    AC_INVENTORY,
    AC_QUOTED,
    AC_BID_NOTIONAL,
    AC_ASK_NOTIONAL,
    AC_SPREAD_BPS,
    AC_MARGIN,
    AC_LIQUIDATED,
    AC_FLATTENED,
) = range(11)
N_ACCOUNTING = 11

# Per-env market accounting of the last env step (flows summed over its engine steps).
(
    EV_LIQ_LONG,
    EV_LIQ_SHORT,
    EV_LIQ_COUNT,
    EV_ADL_COUNT,
    EV_ADL_NOTIONAL,
    EV_VOLUME,
    EV_FUND,
    EV_FUND_DRAWDOWN,
    EV_SOCIALISED,
    EV_STRESS,
    EV_DEPTH,
    EV_MID,
    EV_MM_QUOTING,
) = range(13)
N_ENV_ACCOUNTING = 13

SPREAD_CAP = 10.0  # spread observation (in percent) when a side of the book is empty
RATIO_CAP = 10.0  # cap of depth and margin ratios in the observation
OBS_LIMIT = 1e4  # every observation column is clipped to [-OBS_LIMIT, OBS_LIMIT]


class AgentParams(NamedTuple):
    """Constants of the learning agents (see ``env/batch.py``)."""

    account: np.ndarray  # int64[G], account of each agent
    market: np.ndarray  # int64[M], quoted markets
    min_offset: float  # fraction of fair price at action -1
    max_offset: float  # fraction of fair price at action +1
    max_notional: np.ndarray  # float64[M], quote size (USDT at the fair price) at action +1
    min_size: float  # size fraction below which a side is not quoted
    flatten: bool  # the action has a flatten column per market
    sigma: np.ndarray  # float64[M], usual per-engine-step volatility
    liq_reference: np.ndarray  # float64[M], usual quoted notional (scale of liquidations)
    capital: float
    fund_reference: float
    stress_volatility: float  # stress when index volatility / usual exceeds this
    stress_liquidations: float  # or liquidation flow / usual exceeds this
    stress_move: float  # or the mid is this far (log) from its recent average
    average_alpha: float  # EWMA weight of one env step in that average
    substeps: int  # engine steps per env step
    horizon: int  # env steps per episode
    trend_alpha: float
    start_clock: float  # clock of engine step 0, seconds after midnight
    engine_dt: float


class AgentState(NamedTuple):
    """What changes for the agents; every array has a leading env axis."""

    quote_id: np.ndarray  # int64[E, G, M, 2], resting quote ids (0 = none)
    quote_lots: np.ndarray  # int64[E, G, M, 2], size the quote was sent with
    quote_price: np.ndarray  # int64[E, G, M, 2], its price in ticks
    present: np.ndarray  # int64[E, G, M, 2], side resting after the agent's orders
    prev_mid: np.ndarray  # float64[E, M]
    average_mid: np.ndarray  # float64[E, M], EWMA of the mid (stress by price move)
    last_return: np.ndarray  # float64[E, M], normalised log return of the last step
    trend: np.ndarray  # float64[E, M]
    volatility: np.ndarray  # float64[E, M], EWMA of squared normalised returns
    depth_reference: np.ndarray  # float64[E, M], 1% depth when the episode began
    start_pos: np.ndarray  # int64[E, G, M], holding when the episode began (inventory's zero)
    start_equity: np.ndarray  # float64[E, G]
    last_equity: np.ndarray  # float64[E, G]
    last_fees: np.ndarray  # float64[E, G]
    collateral_reference: np.ndarray  # float64[E, G], collateral value at the start
    last_fund: np.ndarray  # float64[E]
    last_socialised: np.ndarray  # float64[E]
    elapsed: np.ndarray  # int64[E], env steps since reset
    out: np.ndarray  # int64[E, G], 1 once the agent was liquidated or bankrupt this episode
    orders: np.ndarray  # int64[E, G * M * 5, 8], scratch order rows
    results: np.ndarray  # int64[E, G * M * 5, 3]
    obs: np.ndarray  # float32[E, G, D]
    accounting: np.ndarray  # float64[E, G, N_ACCOUNTING]
    env_accounting: np.ndarray  # float64[E, N_ENV_ACCOUNTING]
    liq_flow: np.ndarray  # float64[E, K], each market's liquidation notional over the env step


@inline_kernel
def fair_price(params, state, e, k):
    """Mid of the book, or the mark when a side is empty."""
    bid = best_price(state, e, k, BID)
    ask = best_price(state, e, k, ASK)
    if bid > 0 and ask > 0:
        return 0.5 * (bid + ask) * params.tick_size[k]
    return state.mark_price[e, k]


@inline_kernel
def _best_of_others(state, ag, e, g, m, k, slot):
    """Best price (ticks) of a book side leaving out agent ``g``'s own quote, or -1."""
    n = state.n_levels[e, k, slot]
    if n == 0:
        return -1
    price = state.level_price[e, k, slot, n - 1]
    o = find_order(state, e, k, ag.quote_id[e, g, m, slot])
    alone = o >= 0 and state.order_qty[e, k, o] == state.level_qty[e, k, slot, n - 1]
    if alone and state.order_price[e, k, o] == price:
        return state.level_price[e, k, slot, n - 2] if n >= 2 else -1
    return price


@inline_kernel
def quote_reference(params, state, ag, e, g, m, k):
    """Mid of the other traders' best quotes, or the mark when a side has none.

    The agent's own quote is left out: quoting around a mid it sets itself
    would let it walk the price of a one-sided book step by step.
    """
    bid = _best_of_others(state, ag, e, g, m, k, BID)
    ask = _best_of_others(state, ag, e, g, m, k, ASK)
    if bid > 0 and ask > 0:
        return 0.5 * (bid + ask) * params.tick_size[k]
    return state.mark_price[e, k]


@inline_kernel
def mtm_equity(params, state, e, a):
    """Cash plus perpetuals at the mark plus spot holdings at the venue's collateral price."""
    eq = state.cash[e, a]
    for k in range(params.market_kind.shape[0]):
        p = state.pos[e, a, k]
        if p != 0:
            price = state.mark_price[e, k]
            if params.market_kind[k] != PERP:
                price = state.collateral_price[e, k]
            eq += p * params.lot_size[k] * price
    return eq


@inline_kernel
def collateral_value(params, state, e, a):
    """Account ``a``'s spot holdings at their collateral prices (USDT, no haircut)."""
    value = 0.0
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] != PERP and state.pos[e, a, k] > 0:
            value += state.pos[e, a, k] * params.lot_size[k] * state.collateral_price[e, k]
    return value


@kernel
def write_orders(params, state, ap, ag, e, actions):
    """Turn env ``e``'s actions (float64[G, A], already in [-1, 1]) into order rows.

    Rows per (agent, market): cancel bid, cancel ask, flatten, new bid, new
    ask; rows not needed are disabled (env column -1). A quote that still
    rests untouched at the wanted price and size is left alone (keeping its
    queue place), unless this step's flatten trades against its side:
    self-trade prevention would cancel it, so it is replaced after the
    flatten instead. Sizes are USDT at the fair price, converted to lots.
    Flatten trades the intensity's share of the inventory (holding minus the
    starting one) back with an IOC at the price band's edge. An agent that is
    out (liquidated or bankrupt this episode) only cancels.
    """
    n_markets = ap.market.shape[0]
    width = 5 if ap.flatten else 4
    for g in range(ap.account.shape[0]):
        a = ap.account[g]
        ag.accounting[e, g, AC_FLATTENED] = 0.0
        for m in range(n_markets):
            k = ap.market[m]
            base = (g * n_markets + m) * 5
            for j in range(5):
                ag.orders[e, base + j, O_ENV] = -1
            u = actions[g, m * width : (m + 1) * width]
            fair = quote_reference(params, state, ag, e, g, m, k)
            tick = params.tick_size[k]
            flatten_lots = 0
            excess = state.pos[e, a, k] - ag.start_pos[e, g, m]
            if ap.flatten and not ag.out[e, g]:
                flatten_lots = int(max(u[A_FLATTEN], 0.0) * abs(excess))
            # The quote a flatten would meet: the bid for a sell, the ask for a buy.
            crossed = (0 if excess > 0 else 1) if flatten_lots > 0 else -1
            span = ap.max_offset - ap.min_offset
            for s in range(2):
                offset = ap.min_offset + 0.5 * (u[A_BID_OFFSET + s] + 1.0) * span
                fraction = 0.5 * (u[A_BID_SIZE + s] + 1.0)
                lots = 0
                if fraction >= ap.min_size and not ag.out[e, g]:
                    lots = int(fraction * ap.max_notional[m] / (fair * params.lot_size[k]))
                # Strictly away from fair: a fair price on a tick would otherwise put
                # both quotes on it, and the post-only ask would meet the agent's bid.
                if s == 0:
                    price = math.floor(fair * (1.0 - offset) / tick)
                    price = max(min(price, math.ceil(fair / tick) - 1), 1)
                else:
                    price = math.ceil(fair * (1.0 + offset) / tick)
                    price = max(price, math.floor(fair / tick) + 1)
                ag.present[e, g, m, s] = 0
                oid = ag.quote_id[e, g, m, s]
                o = find_order(state, e, k, oid)
                if o >= 0:
                    keep = (
                        lots > 0
                        and s != crossed
                        and state.order_price[e, k, o] == price
                        and state.order_qty[e, k, o] == ag.quote_lots[e, g, m, s]
                        and ag.quote_lots[e, g, m, s] == lots
                    )
                    if keep:
                        ag.present[e, g, m, s] = 1
                        continue
                    set_row(ag.orders[e, base + s], e, k, a, CANCEL, 0, 0, 0, oid)
                ag.quote_id[e, g, m, s] = 0
                if lots > 0:
                    side = BUY if s == 0 else SELL
                    set_row(ag.orders[e, base + 3 + s], e, k, a, POST_ONLY, side, price, lots, 0)
                    ag.quote_lots[e, g, m, s] = lots
                    ag.quote_price[e, g, m, s] = price
            if flatten_lots > 0:
                lots = flatten_lots
                if excess > 0 and params.market_kind[k] != PERP:
                    # A spot sell needs coins no resting ask holds: a kept ask still
                    # holds its lots (a replaced one was cancelled in an earlier row).
                    held = ag.quote_lots[e, g, m, 1] * ag.present[e, g, m, 1]
                    lots = min(lots, state.pos[e, a, k] - held)
                if lots > 0:
                    lo, hi = band_ticks(params, state, e, k)
                    if excess > 0:
                        set_row(ag.orders[e, base + 2], e, k, a, IOC, SELL, lo, lots, 0)
                    else:
                        set_row(ag.orders[e, base + 2], e, k, a, IOC, BUY, hi, lots, 0)
                    ag.accounting[e, g, AC_FLATTENED] += lots * params.lot_size[k] * fair


@kernel
def record_quotes(ap, ag, e):
    """Store the ids of the quotes that rest after the agents' orders ran."""
    n_markets = ap.market.shape[0]
    for g in range(ap.account.shape[0]):
        for m in range(n_markets):
            base = (g * n_markets + m) * 5
            for s in range(2):
                r = base + 3 + s
                if ag.orders[e, r, O_ENV] != e:
                    continue
                oid = ag.results[e, r, R_ORDER_ID]
                if ag.results[e, r, R_STATUS] == 0 and oid != 0:
                    ag.quote_id[e, g, m, s] = oid
                    ag.present[e, g, m, s] = 1


@inline_kernel
def _stressed(ap, ag, pp, ps, e):
    for m in range(ap.market.shape[0]):
        k = ap.market[m]
        if math.sqrt(ps.vol_signal[e, k]) / pp.base_volatility[k] >= ap.stress_volatility:
            return True
        if ps.liq_signal[e, k] / pp.liquidation_reference[k] >= ap.stress_liquidations:
            return True
        if abs(math.log(ag.prev_mid[e, m] / ag.average_mid[e, m])) >= ap.stress_move:
            return True
    return False


@kernel
def update_market_signals(params, state, ap, ag, e):
    """Once per env step: returns, trend, volatility and average of each quoted market's mid."""
    for m in range(ap.market.shape[0]):
        mid = fair_price(params, state, e, ap.market[m])
        r = math.log(mid / ag.prev_mid[e, m]) / (ap.sigma[m] * math.sqrt(ap.substeps))
        ag.last_return[e, m] = r
        ag.prev_mid[e, m] = mid
        ag.trend[e, m] += ap.trend_alpha * (r - ag.trend[e, m])
        ag.volatility[e, m] += ap.trend_alpha * (r * r - ag.volatility[e, m])
        ag.average_mid[e, m] += ap.average_alpha * (mid - ag.average_mid[e, m])


@kernel
def observe(params, state, pp, ps, ap, ag, e):
    """Write the observation and the per-agent accounting of env ``e``."""
    n_markets = ap.market.shape[0]
    stressed = _stressed(ap, ag, pp, ps, e)
    ev = ag.env_accounting[e]
    ev[EV_STRESS] = 1.0 if stressed else 0.0
    ev[EV_FUND] = state.env_stats[e, E_INSURANCE_FUND]
    ev[EV_MM_QUOTING] = ps.quoting_share[e]
    k0 = ap.market[0]
    ev[EV_DEPTH] = state.market_stats[e, k0, S_DEPTH]
    ev[EV_MID] = fair_price(params, state, e, k0)
    clock = ap.start_clock + state.step[e] * ap.engine_dt
    angle = 2.0 * math.pi * clock / 86400.0
    for g in range(ap.account.shape[0]):
        a = ap.account[g]
        obs = ag.obs[e, g]
        acc = ag.accounting[e, g]
        upnl = 0.0
        inventory = 0.0
        bid_notional = math.inf
        ask_notional = math.inf
        spread_bps = 0.0
        quoted = 1.0
        for m in range(n_markets):
            k = ap.market[m]
            mid = ag.prev_mid[e, m]
            row = m * N_MARKET_OBS
            obs[row + OB_RETURN] = ag.last_return[e, m]
            obs[row + OB_TREND] = ag.trend[e, m]
            obs[row + OB_VOLATILITY] = math.sqrt(ag.volatility[e, m])
            bid = best_price(state, e, k, BID)
            ask = best_price(state, e, k, ASK)
            spread = SPREAD_CAP
            if bid > 0 and ask > 0:
                spread = min(100.0 * (ask - bid) / (0.5 * (ask + bid)), SPREAD_CAP)
            obs[row + OB_SPREAD] = spread
            depth_bid = state.market_stats[e, k, S_DEPTH_BID]
            depth_ask = state.market_stats[e, k, S_DEPTH_ASK]
            total = depth_bid + depth_ask
            obs[row + OB_IMBALANCE] = (depth_bid - depth_ask) / total if total > 0 else 0.0
            depth = state.market_stats[e, k, S_DEPTH] / ag.depth_reference[e, m]
            obs[row + OB_DEPTH] = min(depth, RATIO_CAP)
            mark = state.mark_price[e, k]
            obs[row + OB_BASIS] = 100.0 * (mark - state.index_price[e, k]) / state.index_price[e, k]
            lots = state.pos[e, a, k] * params.lot_size[k]
            # On a spot book the holding the agent brought is collateral, not inventory.
            held = lots - ag.start_pos[e, g, m] * params.lot_size[k]
            obs[row + OB_INVENTORY] = held * mark / ap.capital
            inventory += abs(held) * mark
            if params.market_kind[k] == PERP:
                upnl += lots * (mark - state.entry[e, a, k])
            obs[row + OB_LIQUIDATIONS] = math.log1p(ag.liq_flow[e, k] / ap.liq_reference[m])
            obs[row + OB_ADL] = state.adl_quantile[e, a, k] / 4.0
            # Presence as posted this step, and the quotes' spread and sizes.
            obs[row + OB_BID_LIVE] = ag.present[e, g, m, 0]
            obs[row + OB_ASK_LIVE] = ag.present[e, g, m, 1]
            if ag.present[e, g, m, 0] and ag.present[e, g, m, 1]:
                lot_value = params.lot_size[k] * mid
                bid_notional = min(bid_notional, ag.quote_lots[e, g, m, 0] * lot_value)
                ask_notional = min(ask_notional, ag.quote_lots[e, g, m, 1] * lot_value)
                width = ag.quote_price[e, g, m, 1] - ag.quote_price[e, g, m, 0]
                spread_bps = max(spread_bps, 1e4 * width * params.tick_size[k] / mid)
            else:
                quoted = 0.0
                if not ag.present[e, g, m, 0]:
                    bid_notional = 0.0
                if not ag.present[e, g, m, 1]:
                    ask_notional = 0.0
        eq = mtm_equity(params, state, e, a)
        margin_eq, mm = equity_and_mm(params, state, e, a)
        margin = RATIO_CAP if margin_eq <= 0.0 else min(mm / margin_eq, RATIO_CAP)
        collateral = 1.0
        if ag.collateral_reference[e, g] > 0.0:
            collateral = collateral_value(params, state, e, a) / ag.collateral_reference[e, g]
        base = n_markets * N_MARKET_OBS
        obs[base + OB_PNL] = (eq - ag.start_equity[e, g]) / ap.capital
        obs[base + OB_UPNL] = upnl / ap.capital
        obs[base + OB_MARGIN] = margin
        obs[base + OB_COLLATERAL] = collateral
        obs[base + OB_FUND] = ev[EV_FUND] / ap.fund_reference
        obs[base + OB_STRESS] = 1.0 if stressed else 0.0
        obs[base + OB_TIME_SIN] = math.sin(angle)
        obs[base + OB_TIME_COS] = math.cos(angle)
        obs[base + OB_ELAPSED] = ag.elapsed[e] / ap.horizon
        for i in range(obs.shape[0]):
            obs[i] = min(max(obs[i], -OBS_LIMIT), OBS_LIMIT)
        acc[AC_EQUITY] = eq
        acc[AC_PNL] = eq - ag.last_equity[e, g]
        ag.last_equity[e, g] = eq
        acc[AC_FEES] = state.fees_paid[e, a] - ag.last_fees[e, g]
        ag.last_fees[e, g] = state.fees_paid[e, a]
        acc[AC_INVENTORY] = inventory
        acc[AC_QUOTED] = quoted
        acc[AC_BID_NOTIONAL] = bid_notional if quoted else 0.0
        acc[AC_ASK_NOTIONAL] = ask_notional if quoted else 0.0
        acc[AC_SPREAD_BPS] = spread_bps if quoted else math.inf
        acc[AC_MARGIN] = margin
        if state.in_liquidation[e, a] or eq <= 0.0:
            ag.out[e, g] = 1  # stays out (and unable to trade) for the rest of the episode
        acc[AC_LIQUIDATED] = float(ag.out[e, g])


@inline_kernel
def _clear_flows(ag, e):
    ev = ag.env_accounting[e]
    for i in range(EV_FUND):  # the market flows
        ev[i] = 0.0
    ev[EV_FUND_DRAWDOWN] = 0.0
    ev[EV_SOCIALISED] = 0.0
    for k in range(ag.liq_flow.shape[1]):
        ag.liq_flow[e, k] = 0.0


@inline_kernel
def _add_flows(params, state, ag, e):
    ev = ag.env_accounting[e]
    for k in range(params.market_kind.shape[0]):
        stats = state.market_stats[e, k]
        ev[EV_LIQ_LONG] += stats[S_LIQ_NOTIONAL_LONG]
        ev[EV_LIQ_SHORT] += stats[S_LIQ_NOTIONAL_SHORT]
        ag.liq_flow[e, k] += stats[S_LIQ_NOTIONAL_LONG] + stats[S_LIQ_NOTIONAL_SHORT]
        ev[EV_LIQ_COUNT] += stats[S_LIQ_COUNT_LONG] + stats[S_LIQ_COUNT_SHORT]
        ev[EV_ADL_COUNT] += stats[S_ADL_COUNT]
        ev[EV_ADL_NOTIONAL] += stats[S_ADL_NOTIONAL]
        ev[EV_VOLUME] += stats[S_VOLUME]
    fund = state.env_stats[e, E_INSURANCE_FUND]
    ev[EV_FUND_DRAWDOWN] += max(ag.last_fund[e] - fund, 0.0)
    ag.last_fund[e] = fund
    ev[EV_SOCIALISED] += state.socialised_loss[e] - ag.last_socialised[e]
    ag.last_socialised[e] = state.socialised_loss[e]


@kernel
def env_step(params, state, pp, ps, ap, ag, actions, active, index):
    """One env step of every active env: the agents' orders, ``substeps`` engine steps."""
    for e in range(state.cash.shape[0]):
        if not active[e]:
            continue
        write_orders(params, state, ap, ag, e, actions[e])
        _clear_flows(ag, e)
        population_step(params, state, pp, ps, e, ag.orders, ag.results, index)
        record_quotes(ap, ag, e)
        _add_flows(params, state, ag, e)
        for r in range(ag.orders.shape[1]):
            ag.orders[e, r, O_ENV] = -1
        for _ in range(ap.substeps - 1):
            population_step(params, state, pp, ps, e, ag.orders, ag.results, index)
            _add_flows(params, state, ag, e)
        ag.elapsed[e] += 1
        update_market_signals(params, state, ap, ag, e)
        observe(params, state, pp, ps, ap, ag, e)


@kernel
def env_warmup(params, state, pp, ps, ap, ag, e, n_steps, index):
    """Run the population alone for ``n_steps`` (the book fills), then set the references."""
    for r in range(ag.orders.shape[1]):
        ag.orders[e, r, O_ENV] = -1
    for _ in range(n_steps):
        population_step(params, state, pp, ps, e, ag.orders, ag.results, index)
    _clear_flows(ag, e)
    for k in range(ag.liq_flow.shape[1]):  # the first observation sees the last engine step's
        stats = state.market_stats[e, k]
        ag.liq_flow[e, k] = stats[S_LIQ_NOTIONAL_LONG] + stats[S_LIQ_NOTIONAL_SHORT]
    ag.last_fund[e] = state.env_stats[e, E_INSURANCE_FUND]
    ag.last_socialised[e] = state.socialised_loss[e]
    ag.elapsed[e] = 0
    for m in range(ap.market.shape[0]):
        k = ap.market[m]
        ag.prev_mid[e, m] = fair_price(params, state, e, k)
        ag.average_mid[e, m] = ag.prev_mid[e, m]
        ag.last_return[e, m] = 0.0
        ag.trend[e, m] = 0.0
        ag.volatility[e, m] = 1.0
        ag.depth_reference[e, m] = max(state.market_stats[e, k, S_DEPTH], 1.0)
    for g in range(ap.account.shape[0]):
        a = ap.account[g]
        eq = mtm_equity(params, state, e, a)
        ag.start_equity[e, g] = eq
        ag.out[e, g] = 0
        ag.last_equity[e, g] = eq
        ag.last_fees[e, g] = state.fees_paid[e, a]
        ag.collateral_reference[e, g] = collateral_value(params, state, e, a)
        for m in range(ap.market.shape[0]):
            ag.start_pos[e, g, m] = state.pos[e, a, ap.market[m]]
            for s in range(2):
                ag.quote_id[e, g, m, s] = 0
                ag.present[e, g, m, s] = 0
    observe(params, state, pp, ps, ap, ag, e)
