"""Building an exchange and its population from a scenario, for one or many envs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..core import Exchange
from ..core.brackets import tier_of
from ..core.codes import CROSS, UNIFIED
from ..core.margin import equity_and_mm
from ..core.state import forget_cushions
from .makers import STRESS_SIGNALS
from .params import PopParams, PopState
from .rng import seed_streams
from .traders import TURNOVERS_PER_STEP

ROLES_PER_MARKET = 4  # noise, anchor, momentum, arbitrage
FLOW_LEVERAGE = 10.0
FLOW_CASH = 1e9  # background traders are limited by their capacities, not by cash


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which accounts play which role."""

    n_firms: int
    n_desks: int
    n_lev: int
    n_loop: int
    n_markets: int
    n_agents: int = 0  # learning agents' accounts, after everyone else

    @property
    def firm_start(self):
        return 1

    @property
    def desk_start(self):
        return self.firm_start + self.n_firms

    @property
    def lev_start(self):
        return self.desk_start + self.n_desks

    @property
    def loop_start(self):
        return self.lev_start + self.n_lev

    @property
    def flow_start(self):
        return self.loop_start + self.n_loop

    @property
    def agent_start(self):
        return self.flow_start + ROLES_PER_MARKET * self.n_markets

    @property
    def n_accounts(self):
        return self.agent_start + self.n_agents - 1


def layout_of(scenario, n_agents: int = 0) -> Layout:
    """Account ranges of the scenario's roles, with ``n_agents`` learning makers last."""
    pop = scenario.population
    lev = pop.leveraged
    return Layout(
        pop.makers.firms,
        lev.desks if lev.count else 0,
        lev.count,
        pop.loopers.count,
        scenario.exchange.n_markets,
        n_agents,
    )


def _lots(notional, price, lot):
    return notional / (price * lot)


def build_params(scenario) -> PopParams:
    """Population parameters of a scenario."""
    pop = scenario.population
    exchange = scenario.exchange
    markets = exchange.markets
    names = [m.name for m in markets]
    layout = layout_of(scenario)
    start = np.array([pop.index[m.name].start for m in markets])
    lot = np.array([m.lot_size for m in markets])
    flows = [pop.flow.get(name) for name in names]

    def flow(attr, convert=None):
        out = np.zeros(len(markets))
        for k, f in enumerate(flows):
            if f is not None:
                value = getattr(f, attr)
                out[k] = convert(value, k) if convert else value
        return out

    def lots(value, k):
        return _lots(value, start[k], lot[k])

    def bps(value, _k):
        return value * 1e-4

    makers = pop.makers
    quoting = [makers.quoting.get(name) for name in names]

    def quote(attr, convert=None):
        out = np.zeros(len(markets))
        for k, q in enumerate(quoting):
            if q is not None:
                value = getattr(q, attr)
                out[k] = convert(value, k) if convert else value
        return out

    firms = makers.firms
    spread = np.linspace(-1.0, 1.0, firms) if firms > 1 else np.zeros(firms)
    factor = 1.0 + makers.heterogeneity * spread
    base_vol = np.array(
        [makers.base_volatility.get(n, max(pop.index[n].volatility, 1e-5)) for n in names]
    )
    level_notional = quote("level_notional")
    shocks = pop.shocks
    shock_field = lambda attr, dtype=float: np.array(  # noqa: E731
        [getattr(s, attr) for s in shocks], dtype=dtype
    )
    obligations = pop.obligations
    loop_market = names.index(pop.loopers.market) if pop.loopers.count else 0
    return PopParams(
        firm_start=layout.firm_start,
        n_firms=firms,
        lev_start=layout.lev_start,
        n_lev=layout.n_lev,
        loop_start=layout.loop_start,
        n_loop=layout.n_loop,
        flow_start=layout.flow_start,
        index_volatility=np.array([pop.index[n].volatility for n in names]),
        index_beta=np.array([pop.index[n].beta for n in names]),
        index_vol_of_vol=np.array([pop.index[n].vol_of_vol for n in names]),
        index_reversion=np.array([pop.index[n].reversion for n in names]),
        shock_market=np.array([names.index(s.market) for s in shocks], dtype=np.int64),
        shock_start=shock_field("start", np.int64),
        shock_duration=shock_field("duration", np.int64),
        shock_size=shock_field("size"),
        shock_rebound=shock_field("rebound"),
        shock_rebound_duration=shock_field("rebound_duration", np.int64),
        noise_rate=flow("noise_rate"),
        noise_lots=flow("noise_notional", lots),
        size_alpha=np.where(flow("size_alpha") > 0, flow("size_alpha"), 2.0),
        limit_rate=flow("limit_rate"),
        limit_lots=flow("limit_notional", lots),
        limit_offset=flow("limit_offset_bps", bps),
        limit_refresh=np.maximum(flow("limit_refresh"), 1).astype(np.int64),
        limit_vol_scaling=flow("limit_vol_scaling"),
        anchor_gap=flow("anchor_bps", bps),
        anchor_lots=flow("anchor_notional", lots),
        anchor_capacity=flow("anchor_capacity", lots),
        momentum_rate=flow("momentum_rate"),
        momentum_gap=flow("momentum_bps", bps),
        momentum_lots=flow("momentum_notional", lots),
        arb_gap=flow("arb_bps", bps),
        arb_lots=flow("arb_notional", lots),
        arb_capacity=flow("arb_capacity", lots),
        blocked_capacity=flow("blocked_capacity", lots),
        flow_holdings=_flow_holdings(scenario, start, lot).astype(np.float64),
        arbitrage_blocked_from=pop.arbitrage_blocked_from,
        quoted=np.array([q is not None for q in quoting]),
        half_spread=quote("half_spread_bps", bps),
        level_step=quote("level_step_bps", bps),
        levels=quote("levels").astype(np.int64),
        level_lots=quote("level_notional", lots),
        inventory_limit=np.where(level_notional > 0, quote("inventory_limit", lots), 1.0),
        inventory_base=_maker_holdings(scenario, start, lot).astype(np.float64),
        base_volatility=base_vol,
        liquidation_reference=np.maximum(firms * quote("levels") * level_notional, 1.0),
        widen_volatility=makers.widen_volatility,
        widen_liquidations=makers.widen_liquidations,
        max_widening=makers.max_widening,
        skew=makers.skew,
        volatility_alpha=1.0 - 0.5 ** (1.0 / makers.volatility_halflife),
        loss_alpha=1.0 - 0.5 ** (1.0 / makers.loss_halflife),
        flatten_rate=makers.flatten_rate,
        requote=makers.requote_bps * 1e-4,
        fair_index_weight=makers.fair_index_weight,
        quotes_at_mark=makers.quotes_at_mark,
        limits_at_mark=makers.limits_at_mark,
        threshold_loss=makers.loss * factor,
        threshold_inventory=makers.inventory * factor,
        threshold_volatility=makers.volatility * factor,
        threshold_liquidations=makers.liquidations * factor,
        margin_floor=makers.margin_floor / factor,
        return_level=makers.return_level,
        calm_steps=makers.calm_steps,
        ramp_steps=makers.ramp_steps,
        obliged=obligations.enabled,
        obligation_half_spread=obligations.max_spread_bps * 1e-4 / 2.0,
        obligation_lots=np.array(
            [_lots(obligations.min_notional, start[k], lot[k]) for k in range(len(markets))]
        ),
        obligation_multiplier=obligations.stress_multiplier,
        turnover_rate=scenario.dt / pop.leveraged.holding_period if layout.n_lev else 0.0,
        long_share=pop.leveraged.long_share,
        turnover_slippage=pop.leveraged.turnover_slippage,
        loop_market=loop_market,
        unwind_trigger=pop.loopers.unwind_trigger,
        unwind_rate=pop.loopers.unwind_rate,
        index_start=start,
    )


def _maker_holdings(scenario, start, lot) -> np.ndarray:
    """Lots of collateral each maker firm holds at the start, per market."""
    makers = scenario.population.makers
    out = np.zeros(len(start), dtype=np.int64)
    if makers.firms and makers.unified and makers.collateral_share > 0:
        k = [m.name for m in scenario.exchange.markets].index(makers.collateral_market)
        out[k] = int(_lots(makers.capital * makers.collateral_share, start[k], lot[k]))
    return out


def _flow_holdings(scenario, start, lot) -> np.ndarray:
    """Lots each background role holds at the start, per market: on a spot
    market, the arbitrageur's capacity in coins, so that it can sell a premium
    as well as buy a discount."""
    out = np.zeros(len(start), dtype=np.int64)
    for k, market in enumerate(scenario.exchange.markets):
        flow = scenario.population.flow.get(market.name)
        if market.kind == "spot" and flow is not None:
            out[k] = int(_lots(flow.arb_capacity, start[k], lot[k]))
    return out


def _pareto_notional(rng, median, alpha, n):
    scale = median / 2.0 ** (1.0 / alpha)
    return np.minimum(scale * (1.0 - rng.random(n)) ** (-1.0 / alpha), 100.0 * median)


def populate(ex: Exchange, scenario, generators) -> PopState:
    """Fill every env of ``ex`` with the scenario's accounts and positions; return PopState.

    Leveraged traders open their positions against the basis desks at entry
    prices scattered around the start index; cash moves as in a trade, so the
    totals that conservation checks use are the deposits alone.
    """
    pop = scenario.population
    markets = scenario.exchange.markets
    names = [m.name for m in markets]
    layout = layout_of(scenario)
    start = np.array([pop.index[n].start for n in names])
    lot = np.array([m.lot_size for m in markets])
    s = ex.state
    n_envs, n_markets = s.cash.shape[0], len(markets)
    max_levels = max([q.levels for q in pop.makers.quoting.values()] or [1])
    traders = {
        "stop_price": np.zeros((n_envs, layout.n_lev)),
        "lev_market": np.zeros((n_envs, layout.n_lev), dtype=np.int64),
        "stop_gap": np.zeros((n_envs, layout.n_lev)),
        "hedged": np.zeros((n_envs, layout.n_lev), dtype=np.bool_),
    }
    maker_holdings = _maker_holdings(scenario, start, lot)
    flow_holdings = _flow_holdings(scenario, start, lot)
    for e, rng in enumerate(generators):
        deposits = np.zeros(s.cash.shape[1])
        holdings = np.zeros((s.cash.shape[1], n_markets))
        # Maker firms.
        for f in range(layout.n_firms):
            a = layout.firm_start + f
            held_value = float((maker_holdings * lot * start).sum())
            deposits[a] = pop.makers.capital - held_value
            holdings[a] = maker_holdings
            s.account_kind[e, a] = UNIFIED if pop.makers.unified else CROSS
            s.leverage[e, a] = 10.0
        # Background traders: spot roles start with inventory to sell.
        for k in range(n_markets):
            for role in range(ROLES_PER_MARKET):
                a = layout.flow_start + ROLES_PER_MARKET * k + role
                deposits[a] = FLOW_CASH
                s.leverage[e, a] = FLOW_LEVERAGE
                holdings[a, k] = flow_holdings[k]
        # Leveraged traders against the desks.
        if layout.n_lev:
            _open_leveraged(s, e, rng, scenario, layout, start, lot, deposits, holdings, traders)
        # Loopers: collateral bought on USDT debt.
        if layout.n_loop:
            k = names.index(pop.loopers.market)
            loop_lots = int(_lots(pop.loopers.equity * pop.loopers.loop, start[k], lot[k]))
            for i in range(layout.n_loop):
                a = layout.loop_start + i
                deposits[a] = pop.loopers.equity - loop_lots * lot[k] * start[k]
                holdings[a, k] = loop_lots
                s.account_kind[e, a] = UNIFIED
        s.cash[e] += deposits
        s.pos[e] += holdings.astype(np.int64)
        ex.deposited_cash[e] += deposits.sum()
        ex.deposited_holdings[e] += holdings.sum(axis=0)
    perp = np.array([m.kind == "perp" for m in markets])
    s.open_interest[:] = np.where(perp, np.maximum(s.pos, 0).sum(axis=1), 0)
    forget_cushions(s)
    return _initial_pop_state(ex, scenario, generators, traders, max_levels)


def _open_leveraged(s, e, rng, scenario, layout, start, lot, deposits, holdings, traders):
    lev = scenario.population.leveraged
    names = [m.name for m in scenario.exchange.markets]
    n = layout.n_lev
    perp_names = list(lev.weights)
    weights = np.array([lev.weights[p] for p in perp_names], dtype=float)
    market = np.array([names.index(p) for p in perp_names])[
        rng.choice(len(perp_names), size=n, p=weights / weights.sum())
    ]
    side = np.where(rng.random(n) < lev.long_share, 1, -1)
    leverage = np.exp(rng.uniform(np.log(lev.leverage_min), np.log(lev.leverage_max), n))
    median = np.array([lev.median_notional[names[k]] for k in market])
    notional = _pareto_notional(rng, median, lev.size_alpha, n)
    # Entries scatter around the start, never by more than a third of the way to
    # liquidation: nobody opens a position that is already being liquidated.
    spread = np.minimum(lev.entry_dispersion, 0.33 / leverage)
    entry_scale = np.exp(np.clip(rng.normal(0.0, 1.0, n), -1.0, 1.0) * spread)
    hedged = rng.random(n) < lev.hedged_share if lev.hedged_share > 0 else np.zeros(n, bool)
    unified = rng.random(n) < lev.unified_share if lev.unified_share > 0 else np.zeros(n, bool)
    with_stop = rng.random(n) < lev.stop_loss_share
    stop_gap = lev.stop_distance * rng.uniform(0.5, 1.5, n)
    desks = layout.desk_start + np.arange(n) % layout.n_desks
    hedge_k = names.index(lev.hedge_market) if lev.hedged_share > 0 else 0
    hedge_legs = [(0, 1), (hedge_k, -1)]  # long the first perp, short the hedge market
    # Nobody runs more leverage than the bracket of their size allows, in each
    # leg: a hedge's alt leg sits in a much stricter bracket than its major leg.
    for i in range(n):
        for k, _ in hedge_legs if hedged[i] else [(int(market[i]), 0)]:
            brackets = scenario.exchange.markets[k].brackets
            allowed = brackets[tier_of(notional[i], brackets)].max_leverage
            leverage[i] = min(leverage[i], 0.8 * allowed)
    for i in range(n):
        a = layout.lev_start + i
        legs = [(int(market[i]), int(side[i]))]
        if hedged[i]:
            legs = hedge_legs
        margin = 0.0
        for k, sgn in legs:
            price = round(start[k] * entry_scale[i] / scenario.exchange.markets[k].tick_size)
            price *= scenario.exchange.markets[k].tick_size
            lots = max(int(round(notional[i] / (price * lot[k]))), 1)
            limit = scenario.exchange.markets[k].position_limit
            if limit < math.inf:  # the position limit switch caps what traders open with
                lots = min(lots, int(limit / (start[k] * lot[k])))  # one lot at least
            value = lots * lot[k] * price
            _trade(s, e, a, int(desks[i]), k, sgn * lots, price, value)
            margin += value / leverage[i]
        if unified[i]:
            k = names.index(lev.collateral_market)
            coll_lots = int(_lots(margin * lev.collateral_share, start[k], lot[k]))
            holdings[a, k] += coll_lots
            margin -= coll_lots * lot[k] * start[k]
            s.account_kind[e, a] = UNIFIED
        deposits[a] += margin
        s.leverage[e, a] = leverage[i]
        traders["lev_market"][e, i] = legs[0][0]
        traders["hedged"][e, i] = hedged[i]
        if with_stop[i] and not hedged[i]:
            traders["stop_gap"][e, i] = stop_gap[i]
            traders["stop_price"][e, i] = (
                start[legs[0][0]] * entry_scale[i] * (1.0 - legs[0][1] * stop_gap[i])
            )
    # Desks hold the other side at modest leverage.
    for d in range(layout.n_desks):
        a = layout.desk_start + d
        notional_held = float(np.abs(s.pos[e, a]).astype(float) @ (lot * start))
        deposits[a] += notional_held / lev.desk_leverage * 1.5 + 1.0
        s.leverage[e, a] = lev.desk_leverage


def _trade(s, e, buyer_side_account, desk, k, signed_lots, price, value):
    """Open ``signed_lots`` for the trader against ``desk`` at ``price`` (cash moves)."""
    a = buyer_side_account
    for acct, lots in ((a, signed_lots), (desk, -signed_lots)):
        old = s.pos[e, acct, k]
        new = old + lots
        if old == 0 or (old > 0) == (lots > 0):
            s.entry[e, acct, k] = (abs(old) * s.entry[e, acct, k] + abs(lots) * price) / abs(new)
        elif new == 0:
            s.entry[e, acct, k] = 0.0
        elif (new > 0) != (old > 0):
            s.entry[e, acct, k] = price  # flipped: the rest opened here, as the engine books it
        s.pos[e, acct, k] = new
        s.cash[e, acct] -= math.copysign(value, lots)


def _initial_pop_state(ex, scenario, generators, traders, max_levels) -> PopState:
    s = ex.state
    pop = scenario.population
    n_envs, n_markets = s.cash.shape[0], scenario.exchange.n_markets
    names = [m.name for m in scenario.exchange.markets]
    firms = pop.makers.firms
    start = np.array([pop.index[n].start for n in names])
    base_vol = np.array(
        [pop.makers.base_volatility.get(n, max(pop.index[n].volatility, 1e-5)) for n in names]
    )
    buffer_rows = (
        firms * n_markets * 4 * max_levels
        + traders["stop_price"].shape[1]
        + 2 * TURNOVERS_PER_STEP
        + pop.loopers.count
        + n_markets * (2 * 64 + 8)
    )
    peak = np.array(
        [[equity_and_mm(ex.params, s, e, 1 + f)[0] for f in range(firms)] for e in range(n_envs)]
    ).reshape(n_envs, firms)
    stop_price = traders["stop_price"]
    n_lev = stop_price.shape[1]
    armed = stop_price > 0.0
    # Armed traders first, in trader order (a stable sort keeps that order).
    stop_list = np.argsort(~armed, axis=1, kind="stable").astype(np.int64)
    return PopState(
        streams=seed_streams(generators),
        # Python's log, as the kernels use: numpy 1.x's vectorised log can differ in the last bit.
        log_index=np.tile([math.log(s) for s in start], (n_envs, 1)),
        shock_log=np.zeros((n_envs, n_markets)),
        vol_state=np.zeros((n_envs, n_markets)),
        away=np.zeros((n_envs, firms), np.int64),
        calm=np.zeros((n_envs, firms), np.int64),
        ramp=np.ones((n_envs, firms)),
        peak_equity=peak,
        stress_parts=np.zeros((n_envs, firms, len(STRESS_SIGNALS))),
        maker_orders=np.zeros((n_envs, firms, n_markets, 2, max_levels), np.int64),
        maker_target=np.zeros((n_envs, firms, n_markets, 2, max_levels), np.int64),
        maker_size=np.zeros((n_envs, firms, n_markets), np.int64),
        prev_index=np.tile(start, (n_envs, 1)),
        prev_mark=np.tile(start, (n_envs, 1)),
        vol_signal=np.tile(base_vol**2, (n_envs, 1)),
        liq_signal=np.zeros((n_envs, n_markets)),
        trend=np.zeros((n_envs, n_markets)),
        mark_vol=np.tile(base_vol**2, (n_envs, 1)),
        stop_price=stop_price,
        lev_market=traders["lev_market"],
        stop_list=stop_list,
        n_stops=armed.sum(axis=1),
        stop_gap=traders["stop_gap"],
        hedged=traders["hedged"],
        turned_at=np.full((n_envs, n_lev), -1, np.int64),
        rearm_list=np.zeros((n_envs, n_lev), np.int64),
        n_rearm=np.zeros(n_envs, np.int64),
        quoting_share=np.ones(n_envs),
        buffer=np.zeros((n_envs, buffer_rows, 8), np.int64),
        buffer_results=np.zeros((n_envs, buffer_rows, 3), np.int64),
        buffer_tag=np.full((n_envs, buffer_rows), -1, np.int64),
        n_buffer=np.zeros(n_envs, np.int64),
        n_orders=np.zeros(n_envs, np.int64),
        book_full=np.zeros((n_envs, n_markets), np.int64),
    )


def make_exchange(scenario, n_envs: int, n_agents: int = 0) -> Exchange:
    """An empty exchange sized for the scenario's population (and ``n_agents`` more
    accounts), markets open at the index."""
    layout = layout_of(scenario, n_agents)
    config = dataclasses.replace(scenario.exchange, n_accounts=layout.n_accounts)
    ex = Exchange(config, n_envs)
    start = [scenario.population.index[m.name].start for m in config.markets]
    ex.open(start)
    return ex
