"""The numba engine against the pure-Python reference exchange in ``naive.py``.

Random configurations, accounts, order streams and index paths (with sharp
moves, so that liquidations, fund takeovers and auto-deleveraging happen) are
fed to both; after every step the results, books, accounts, prices, fund,
statistics and fill log must agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive import FUND, NaiveBookFull, NaiveExchange

from mmgym.core import BookFullError, Exchange, ExchangeConfig, MarketConfig
from mmgym.core.codes import (
    ACCEPTED,
    ADL_FORMULA_NAMES,
    ASK,
    BID,
    BUY,
    CANCEL,
    CANCEL_ALL,
    ENV_STAT_NAMES,
    IOC,
    LIMIT,
    MARKET,
    MARKET_STAT_NAMES,
    ORDER_COLUMNS,
    PERP,
    POST_ONLY,
    REJECT_HALTED,
    REJECT_MARGIN,
    REJECT_REDUCE_ONLY,
    S_ADL_COUNT,
    S_LIQ_COUNT_LONG,
    S_LIQ_COUNT_SHORT,
    S_TAKEOVER_NOTIONAL,
    SELL,
)

RTOL = 1e-9
ATOL = 1e-6

# --------------------------------------------------------------------------- scenarios

SMALL_BRACKETS = (
    (0.0, 100.0, 0.005),
    (300.0, 50.0, 0.01),
    (1000.0, 20.0, 0.025),
    (3000.0, 10.0, 0.05),
)
ONE_TIER = ((0.0, 50.0, 0.02),)
HIGH_MMR = ((0.0, 20.0, 0.05), (500.0, 10.0, 0.1))
FEES = ((0.0, 0.0), (0.0002, 0.0005), (-0.0001, 0.0003), (0.001, 0.001))
ORDER_KINDS = (LIMIT, LIMIT, LIMIT, LIMIT, POST_ONLY, IOC, MARKET, MARKET, CANCEL, CANCEL_ALL)


class OrderSpec(NamedTuple):
    """An order relative to the state it meets: turned into an int row at run time."""

    market: int
    account: int
    kind: int
    side: int
    anchor: int  # 0: mark, 1: index clipped to the band, 2: best opposite (or mark)
    units: int  # price offset in units of 0.25% of the anchor (at least one tick)
    qty: int  # lots; -p: p% of what the account's equity buys at its leverage
    ref: int  # cancels: which known order id (or a random id)


@dataclass
class Scenario:
    config: ExchangeConfig
    index0: list
    deposits: list  # (account, cash, leverage, kind, {market: lots})
    steps: list = field(default_factory=list)  # (index factors, [OrderSpec])


@st.composite
def market_configs(draw, name, kind):
    maker_fee, taker_fee = draw(st.sampled_from(FEES))
    return MarketConfig(
        name,
        kind=kind,
        tick_size=draw(st.sampled_from([0.01, 0.1, 0.5])),
        lot_size=draw(st.sampled_from([0.1, 1.0, 0.01])),
        price_band=draw(st.sampled_from([0.05, 0.1, 0.25, 0.02])),
        maker_fee=maker_fee,
        taker_fee=taker_fee,
        liquidation_fee=draw(st.sampled_from([0.0125, 0.0, 0.05])),
        brackets=draw(
            st.sampled_from([SMALL_BRACKETS, ONE_TIER, HIGH_MMR, "small_alt", "btcusdt"])
        ),
        collateral_ratio=draw(st.sampled_from([0.9, 0.5, 1.0])),
        collateral_pricing=draw(st.sampled_from(["internal_book", "conversion", 0.5])),
        liquidation_cap=draw(st.sampled_from([math.inf, math.inf, 300.0, 30.0])),
        fund_unwind_cap=draw(st.sampled_from([math.inf, 0.0, 200.0])),
        position_limit=draw(st.sampled_from([math.inf] * 4 + [300.0, 3000.0])),
        circuit_breaker=draw(st.sampled_from([0.0] * 5 + [0.05, 0.2])),
    )


@st.composite
def order_specs(draw, n_markets, n_accounts):
    return OrderSpec(
        market=draw(st.integers(0, n_markets - 1)),
        account=draw(st.integers(1, n_accounts)),
        kind=draw(st.sampled_from(ORDER_KINDS)),
        side=draw(st.sampled_from([BUY, SELL])),
        anchor=draw(st.sampled_from([0, 0, 1, 2])),
        units=draw(st.integers(-6, 6)),
        # Large shares of buying power open the leveraged positions liquidations need.
        qty=draw(
            st.one_of(
                st.integers(1, 20),
                st.integers(1, 300),
                st.integers(-100, -10),
                st.integers(-100, -60),
            )
        ),
        ref=draw(st.integers(0, 10**6)),
    )


INDEX_MOVES = st.one_of(
    st.just(1.0),
    st.sampled_from([0.995, 1.005, 0.98, 1.02]),
    st.sampled_from([0.6, 0.8, 0.9, 1.1, 1.25, 1.6]),
    st.floats(0.5, 2.0),
)


@st.composite
def scenarios(draw, max_steps=12, max_orders=8):
    n_markets = draw(st.integers(1, 3))
    spot = draw(st.booleans())  # sometimes one market is spot
    spot_at = draw(st.integers(0, n_markets - 1))
    kinds = ["perp"] * n_markets
    if spot:
        kinds[spot_at] = "spot"
    markets = tuple(draw(market_configs(f"M{k}", kind)) for k, kind in enumerate(kinds))
    n_accounts = draw(st.integers(2, 5))
    tiny_book = draw(st.integers(0, 5)) == 0
    borrow_mmr, borrow_imr = draw(st.sampled_from([(0.05, 0.1), (0.0, 0.0), (0.1, 0.3)]))
    liquidation_level = draw(st.sampled_from([1.05, 1.0, 1.5]))
    config = ExchangeConfig(
        markets=markets,
        n_accounts=n_accounts,
        book_capacity=draw(st.integers(2, 6)) if tiny_book else 64,
        max_levels=draw(st.integers(1, 3)) if tiny_book else 32,
        basis_window=draw(st.sampled_from([1, 3, 5])),
        fund_takeover_limit=draw(st.sampled_from([1.0, 0.0, 0.5, 10.0])),
        unified_liquidation_level=liquidation_level,
        unified_reduce_only_level=liquidation_level + draw(st.sampled_from([0.15, 0.0, 1.0])),
        borrow_mmr=borrow_mmr,
        borrow_imr=borrow_imr,
        adl_formula=draw(st.sampled_from(ADL_FORMULA_NAMES)),
        adl_refresh_steps=draw(st.sampled_from([1, 2, 5])),
        fill_log_capacity=draw(st.sampled_from([4096, 7])),
        insurance_fund=draw(st.sampled_from([1e6, 0.0, 10.0, 1000.0])),
        breaker_window=draw(st.sampled_from([300, 1, 3])),
        breaker_halt=draw(st.sampled_from([300, 1, 2, 4])),
    ).validated()
    index0 = [draw(st.sampled_from([100.0, 20.0, 250.0])) for _ in range(n_markets)]
    deposits = []
    for a in range(1, n_accounts + 1):
        holdings = {}
        if spot and draw(st.integers(0, 2)):
            holdings[spot_at] = draw(st.integers(1, 500))
        deposits.append(
            (
                a,
                draw(st.sampled_from([5000.0, 100.0, 20.0, 500.0, 0.0, 50000.0])),
                draw(st.sampled_from([20.0, 1.0, 2.0, 10.0, 50.0, 100.0])),
                draw(
                    st.sampled_from(["cross", "unified"] if spot else ["cross"] * 3 + ["unified"])
                ),
                holdings,
            )
        )
    n_steps = draw(st.integers(1, max_steps))
    steps = [
        (
            [draw(INDEX_MOVES) for _ in range(n_markets)],
            draw(st.lists(order_specs(n_markets, n_accounts), max_size=max_orders)),
        )
        for _ in range(n_steps)
    ]
    if draw(st.booleans()):
        # Open with a maker's ladder in every market taken by the other accounts,
        # so that most examples start with positions at risk.
        maker = draw(st.integers(1, n_accounts))
        depth = draw(st.integers(1, 50))
        opening = [
            OrderSpec(k, maker, LIMIT, side, 0, -side * i, depth, 0)
            for k in range(n_markets)
            for i in range(1, 5)
            for side in (BUY, SELL)
        ]
        for a in range(1, n_accounts + 1):
            if a != maker:
                k = draw(st.integers(0, n_markets - 1))
                side = draw(st.sampled_from([BUY, SELL]))
                qty = draw(st.integers(-100, -50))
                opening.append(OrderSpec(k, a, MARKET, side, 0, 0, qty, 0))
        steps[0] = (steps[0][0], opening + steps[0][1])
    return Scenario(config, index0, deposits, steps)


def buying_power(params, k, margin, leverage):
    """Largest notional of market ``k`` that ``margin`` opens at ``leverage`` or its bracket's."""
    floors, caps = params.bracket_floor[k], params.bracket_max_leverage[k]
    best = 0.0
    for t in range(floors.shape[0]):
        if not math.isfinite(floors[t]):
            break
        top = floors[t + 1] if t + 1 < floors.shape[0] else math.inf
        reach = min(margin * min(leverage, caps[t]), top)
        if reach >= floors[t]:
            best = max(best, reach)
    return best


def spec_row(ex: Exchange, spec: OrderSpec, known: list, e: int = 0) -> list:
    """The order row of ``spec`` in env ``e`` given its state and the ids seen so far.

    Reads the engine's state only (so the conservation tests can use it alone);
    in the comparison the naive state is identical anyway.
    """
    s, p = ex.state, ex.params
    k, a = spec.market, spec.account
    if spec.kind == CANCEL:
        live = [
            (int(s.order_id[e, j, o]), j, int(s.order_owner[e, j, o]))
            for j in range(s.order_id.shape[1])
            for o in np.flatnonzero(s.order_id[e, j])
        ]
        if live and spec.ref % 4 in (1, 2):  # a live order, cancelled by its owner
            oid, k, a = live[spec.ref % len(live)]
            return [e, k, a, CANCEL, 0, 0, 0, oid]
        if known and spec.ref % 4 == 3:  # an id seen before, maybe dead, maybe not ours
            return [e, k, a, CANCEL, 0, 0, 0, known[spec.ref % len(known)][0]]
        return [e, k, a, CANCEL, 0, 0, 0, spec.ref + 1]
    tick, lot = float(p.tick_size[k]), float(p.lot_size[k])
    index, mark = float(s.index_price[e, k]), float(s.mark_price[e, k])
    if spec.anchor == 1:  # follow the index, within the band
        band = float(p.price_band[k])
        anchor = min(max(index, mark * (1 - band)), mark * (1 + band))
    elif spec.anchor == 2:  # the best opposite price
        slot = ASK if spec.side == BUY else BID
        n = s.n_levels[e, k, slot]
        anchor = float(s.level_price[e, k, slot, n - 1]) * tick if n else mark
    else:
        anchor = mark
    unit = max(1, round(anchor * 0.0025 / tick))
    price = max(1, round(anchor / tick) + spec.units * unit)
    qty = spec.qty
    if qty < 0:  # a share of the account's buying power (roughly: equity at mark)
        perp = p.market_kind == PERP
        equity = s.cash[e, a] + (s.pos[e, a, perp] * p.lot_size[perp] * s.mark_price[e, perp]).sum()
        notional = buying_power(p, k, -qty / 100 * max(equity, 0.0), float(s.leverage[e, a]))
        qty = min(max(math.floor(notional / (lot * mark)), 1), 10**6)
    return [e, k, a, spec.kind, spec.side, price, qty, 0]


# --------------------------------------------------------------------------- comparison


def _close(name, engine, naive):
    engine = np.asarray(engine, dtype=np.float64)
    naive = np.asarray(naive, dtype=np.float64).reshape(engine.shape)
    ok = np.isclose(engine, naive, rtol=RTOL, atol=ATOL, equal_nan=True)
    assert ok.all(), f"{name}: engine {engine[~ok]} != naive {naive[~ok]} at {np.argwhere(~ok)}"


def _equal(name, engine, naive):
    engine = np.asarray(engine)
    naive = np.asarray(naive, dtype=engine.dtype).reshape(engine.shape)
    assert np.array_equal(engine, naive), f"{name}: engine {engine.tolist()} != {naive.tolist()}"


def engine_levels(state, k, slot):
    """Levels best first as (price, qty, [(order id, qty, owner), ...])."""
    out = []
    for i in range(state.n_levels[0, k, slot] - 1, -1, -1):
        orders = []
        o = state.level_head[0, k, slot, i]
        while o >= 0:
            orders.append(
                (int(state.order_id[0, k, o]), int(state.order_qty[0, k, o]),
                 int(state.order_owner[0, k, o]))
            )  # fmt: skip
            o = state.order_next[0, k, o]
        out.append((int(state.level_price[0, k, slot, i]), int(state.level_qty[0, k, slot, i]),
                    orders))  # fmt: skip
    return out


def naive_levels(book, side):
    return [
        (lv.price, lv.qty, [(o.oid, o.qty, o.owner) for o in lv.queue])
        for lv in book.levels_best_first(side)
    ]


def assert_same_state(ex: Exchange, nv: NaiveExchange, where: str = ""):
    s = ex.state
    for k, m in enumerate(nv.markets):
        for slot, side, name in ((BID, BUY, "bids"), (ASK, SELL, "asks")):
            levels = naive_levels(m.book, side)
            assert engine_levels(s, k, slot) == levels, f"{where} book {k} {name}"
            book = ex.book(k)[name]
            assert len(book) == len(levels), f"{where} book({k})"
            coins = [(p * m.tick, q * m.lot) for p, q, _ in levels]
            _close(f"{where} book({k}) {name}", book, coins)
        free = s.free_slots[0, k, : s.n_free[0, k]].tolist()
        assert free == m.book.free, f"{where} free slots of book {k}"
    accs = nv.accounts
    for name in ("cash", "reserved_quote", "fees_paid", "realised_pnl", "leverage"):
        _close(f"{where} {name}", getattr(s, name)[0], [getattr(acc, name) for acc in accs])
    _close(f"{where} entry", s.entry[0], [acc.entry for acc in accs])
    for name in ("pos", "open_buy", "open_sell", "adl_quantile"):
        _equal(f"{where} {name}", getattr(s, name)[0], [getattr(acc, name) for acc in accs])
    _equal(f"{where} in_liquidation", s.in_liquidation[0], [acc.in_liquidation for acc in accs])
    _equal(f"{where} account_kind", s.account_kind[0], [acc.kind for acc in accs])
    mk = nv.markets
    for name, attr in (
        ("index_price", "index"),
        ("mark_price", "mark"),
        ("last_price", "last"),
        ("collateral_price", "collateral"),
        ("liq_budget", "liq_budget"),
        ("unwind_budget", "unwind_budget"),
        ("breaker_reference", "breaker_reference"),
    ):
        _close(f"{where} {name}", getattr(s, name)[0], [getattr(m, attr) for m in mk])
    _close(f"{where} basis_ring", s.basis_ring[0], [m.ring for m in mk])
    _equal(f"{where} open_interest", s.open_interest[0], [m.open_interest for m in mk])
    _equal(f"{where} halted_until", s.halted_until[0], [m.halted_until for m in mk])
    _close(f"{where} fees_collected", s.fees_collected[0], nv.fees_collected)
    _close(f"{where} socialised_loss", s.socialised_loss[0], nv.socialised_loss)
    _close(f"{where} fund_payout", s.fund_payout[0], nv.fund_payout)
    _equal(f"{where} step", s.step[0], nv.step_no)
    _equal(f"{where} next_order_seq", s.next_order_seq[0], nv.seq)
    _equal(f"{where} n_fills", s.n_fills[0], len(nv.fill_log))
    _close(f"{where} market_stats", s.market_stats[0], [m.stats for m in mk])
    _close(f"{where} env_stats", s.env_stats[0], nv.env_stats)
    stats = ex.market_stats()
    for k, m in enumerate(mk):
        row = stats[nv.config.markets[k].name]
        _close(f"{where} market_stats()[{k}]", [row[n] for n in MARKET_STAT_NAMES], m.stats)
    env = ex.env_stats()
    _close(f"{where} env_stats()", [env[n] for n in ENV_STAT_NAMES], nv.env_stats)
    fills = nv.fills()
    _equal(f"{where} fills", ex.fills(), np.array(fills, np.int64).reshape(len(fills), 8))


# --------------------------------------------------------------------------- runner


class Counts(dict):
    """How often each interesting event happened (summed over steps and markets)."""

    def add(self, key, n=1):
        self[key] = self.get(key, 0) + n


def make_pair(config, index0, deposits):
    ex, nv = Exchange(config, 1), NaiveExchange(config)
    ex.open(index0)
    nv.open(index0)
    for a, cash, leverage, kind, holdings in deposits:
        coins = {k: lots * config.markets[k].lot_size for k, lots in holdings.items()}
        ex.deposit(a, cash, leverage=leverage, kind=kind, holdings=coins)
        nv.deposit(a, cash, leverage=leverage, kind=kind, holdings=holdings)
    return ex, nv


def step_both(ex, nv, rows, index, counts, where):
    """One step of both exchanges, then compare everything; returns the naive results.

    When an order finds its book full both must raise (after the whole step); the
    engine's results are lost then, so only the states are compared.
    """
    batch = np.array(rows, np.int64).reshape(len(rows), ORDER_COLUMNS)
    engine_full = naive_full = False
    try:
        engine_results = ex.step(batch, index)
    except BookFullError:
        engine_full = True
    try:
        naive_results = nv.step(rows, index)
    except NaiveBookFull as err:
        naive_full = True
        naive_results = err.results
    assert engine_full == naive_full, f"{where}: BookFullError engine {engine_full}"
    if engine_full:
        counts.add("book_full")
    else:
        _equal(f"{where} results", engine_results, naive_results)
    assert_same_state(ex, nv, where)
    for m in nv.markets:
        counts.add("liquidations", m.stats[S_LIQ_COUNT_LONG] + m.stats[S_LIQ_COUNT_SHORT])
        counts.add("takeovers", m.stats[S_TAKEOVER_NOTIONAL] > 0)
        counts.add("adl", m.stats[S_ADL_COUNT])
        counts.add("collateral_sales", (not m.perp) and m.stats[S_LIQ_COUNT_LONG] > 0)
    return naive_results


def run_scenario(sc: Scenario, counts: Counts | None = None) -> Counts:
    counts = Counts() if counts is None else counts
    ex, nv = make_pair(sc.config, sc.index0, sc.deposits)
    assert_same_state(ex, nv, "after deposits")
    index = list(sc.index0)
    known = []  # (order id, market, owner) of every order that rested
    fills_before = 0
    for t, (moves, specs) in enumerate(sc.steps):
        index = [min(max(p * f, 0.01), 1e7) for p, f in zip(index, moves, strict=True)]
        rows = [spec_row(ex, spec, known) for spec in specs]
        results = step_both(ex, nv, rows, index, counts, f"step {t}")
        for row, res in zip(rows, results, strict=True):
            if res[1] > 0:
                known.append((res[1], row[1], row[2]))
        counts.add("fills", len(nv.fill_log) - fills_before)
        fills_before = len(nv.fill_log)
    return counts


# --------------------------------------------------------------------------- tests


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_engine_matches_naive(sc):
    run_scenario(sc)


def test_random_streams_exercise_liquidation_paths():
    """The comparison is not vacuous: derandomized examples liquidate and fill books."""
    counts = Counts()

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(scenarios(max_steps=20))
    def sweep(sc):
        run_scenario(sc, counts)

    sweep()
    # Takeovers and ADL are asserted by the forced crashes below: since orders pay
    # their open loss, random streams seldom open a position bankrupt enough to reach
    # them, and how many do depends on the examples drawn.
    for key in ("liquidations", "book_full", "fills"):
        assert counts.get(key, 0) > 0, counts


def _order(k, a, kind, side, price_ticks, qty, ref=0):
    return [0, k, a, kind, side, price_ticks, qty, ref]


def forced_cascade(formula):
    """Hand-made crash: book walk, fund takeover up to its limit, ADL, unified collateral sale.

    Returns ``(config, index0, deposits, steps)`` with steps ``(index, rows)``.
    """
    perp = MarketConfig(
        "PERP", tick_size=0.01, lot_size=1.0, price_band=0.5, brackets=SMALL_BRACKETS
    )
    spot = MarketConfig(
        "SPOT", kind="spot", tick_size=0.01, lot_size=1.0, price_band=0.5, collateral_ratio=0.9
    )
    config = ExchangeConfig(
        markets=(perp, spot),
        n_accounts=7,
        basis_window=1,
        insurance_fund=300.0,
        fund_takeover_limit=1.0,
        adl_formula=formula,
        adl_refresh_steps=1,
    )
    deposits = [
        (1, 1e6, 5.0, "cross", {}),  # market maker
        (2, 100.0, 20.0, "cross", {}),  # long 10 @ 100
        (3, 250.0, 20.0, "cross", {}),  # long 20 @ 100
        (4, 2000.0, 5.0, "cross", {}),  # short 30 @ 100
        (5, 50000.0, 5.0, "cross", {}),  # short 20 @ 100
        (6, 0.0, 20.0, "unified", {1: 3}),  # long 10 @ 100 on spot collateral
        (7, 1e6, 1.0, "cross", {1: 1000}),  # sets the last price
    ]
    p = 10_000  # 100.00 in ticks
    steps = [
        (
            [100.0, 100.0],
            [
                _order(0, 4, LIMIT, SELL, p, 30),
                _order(0, 5, LIMIT, SELL, p, 20),
                _order(0, 2, MARKET, BUY, 0, 10),
                _order(0, 3, MARKET, BUY, 0, 20),
                _order(0, 6, MARKET, BUY, 0, 10),
                _order(0, 1, LIMIT, BUY, p - 10, 5),
                _order(0, 1, LIMIT, SELL, p + 10, 5),
                _order(1, 1, LIMIT, BUY, p - 10, 5),
                _order(1, 1, LIMIT, SELL, p + 10, 5),
            ],
        ),
        (
            [75.0, 75.0],
            [
                _order(0, 1, CANCEL_ALL, 0, 0, 0),
                _order(1, 1, CANCEL_ALL, 0, 0, 0),
                _order(0, 1, LIMIT, BUY, 7490, 2),
                _order(0, 1, LIMIT, SELL, 7510, 2),
                _order(0, 7, LIMIT, SELL, 7500, 1),
                _order(0, 1, LIMIT, BUY, 7500, 1),
                _order(1, 1, LIMIT, BUY, 7400, 3),
                _order(1, 1, LIMIT, SELL, 7510, 2),
                _order(1, 7, LIMIT, SELL, 7500, 1),
                _order(1, 1, LIMIT, BUY, 7500, 1),
            ],
        ),
        ([75.0, 75.0], [_order(1, 1, LIMIT, BUY, 7400, 50)]),
        ([75.0, 75.0], []),
    ]
    return config, [100.0, 100.0], deposits, steps


@pytest.mark.parametrize("formula", ADL_FORMULA_NAMES)
def test_forced_cascade_matches_naive(formula):
    config, index0, deposits, steps = forced_cascade(formula)
    ex, nv = make_pair(config, index0, deposits)
    counts = Counts()
    for t, (index, rows) in enumerate(steps):
        step_both(ex, nv, rows, index, counts, f"step {t}")
    assert nv.accounts[2].pos[0] == 0 and nv.accounts[3].pos[0] == 0
    assert counts.get("liquidations", 0) >= 3, counts
    assert counts.get("takeovers", 0) > 0, counts
    assert counts.get("adl", 0) > 0, counts
    assert counts.get("collateral_sales", 0) > 0, counts
    assert nv.accounts[FUND].pos[0] > 0


def adl_only_config(formula, n_accounts, **market):
    """One fee-free perpetual whose fund takes nothing over: every shortfall goes to ADL."""
    perp = MarketConfig(
        "PERP",
        tick_size=0.01,
        lot_size=1.0,
        price_band=0.5,
        maker_fee=0.0,
        taker_fee=0.0,
        brackets=SMALL_BRACKETS,
        **market,
    )
    return ExchangeConfig(
        markets=(perp,),
        n_accounts=n_accounts,
        basis_window=1,
        fund_takeover_limit=0.0,
        adl_formula=formula,
        adl_refresh_steps=1,
    )


def forced_partial_and_tie(formula):
    """A partial cut to the lower bracket that heals the account; ADL ties go to the lower id."""
    config = adl_only_config(formula, n_accounts=6, liquidation_fee=0.0)
    deposits = [
        (1, 1e6, 5.0, "cross", {}),  # market maker
        (2, 120.0, 20.0, "cross", {}),  # long 20 @ 99.99: tier 2, partial cut of 10
        (3, 160.0, 20.0, "cross", {}),  # long 30 @ 99.99: bankrupt, all to ADL
        (4, 5000.0, 5.0, "cross", {}),  # short 25 @ 99.99
        (5, 5000.0, 5.0, "cross", {}),  # short 25 @ 99.99, identical to account 4
        (6, 1e6, 1.0, "cross", {}),  # sets the last price
    ]
    # 99.99, not 100: 30 lots at 100 would reach the 10x bracket, which 160 USDT
    # cannot margin; at 99.99 they stay in the 20x one.
    steps = [
        (
            [99.99],
            [
                _order(0, 4, LIMIT, SELL, 9_999, 25),
                _order(0, 5, LIMIT, SELL, 9_999, 25),
                _order(0, 2, MARKET, BUY, 0, 20),
                _order(0, 3, MARKET, BUY, 0, 30),
            ],
        ),
        (
            [95.0],
            [
                _order(0, 1, LIMIT, BUY, 9490, 10),
                _order(0, 1, LIMIT, SELL, 9510, 5),
                _order(0, 1, LIMIT, BUY, 9500, 1),
                _order(0, 6, IOC, SELL, 9500, 1),
            ],
        ),
        ([95.0], []),
    ]
    return config, [99.99], deposits, steps


@pytest.mark.parametrize("formula", ADL_FORMULA_NAMES)
def test_partial_liquidation_and_adl_tie_match_naive(formula):
    config, index0, deposits, steps = forced_partial_and_tie(formula)
    ex, nv = make_pair(config, index0, deposits)
    counts = Counts()
    for t, (index, rows) in enumerate(steps):
        step_both(ex, nv, rows, index, counts, f"step {t}")
        if t == 0:
            assert [acc.pos[0] for acc in nv.accounts] == [0, 0, 20, 30, -25, -25, 0]
    positions = [acc.pos[0] for acc in nv.accounts]
    # Account 2 sold 10 to the maker and is healthy again; account 3's 30 lots were
    # auto-deleveraged against the tied shorts, account 4 (lower id) first.
    assert positions == [0, 11, 10, 0, 0, -20, -1], positions
    assert nv.accounts[2].in_liquidation == 0
    assert counts.get("adl", 0) == 2


ADL_SHORTS = {  # account: (cash, lots, entry in ticks); chosen so the formulas disagree
    2: (2000.0, 10, 10_165),
    3: (500.0, 15, 10_340),
    4: (500.0, 30, 10_110),
    5: (100.0, 2, 10_425),
    6: (300.0, 20, 10_175),
    7: (300.0, 20, 10_415),
}
# Positions of accounts 2..8 after the bankrupt long's 30 lots are auto-deleveraged.
ADL_OUTCOME = {
    # PnL% * leverage at mark 80: 7 (0.474) > 6 (0.465) > 4 (0.442) > ...
    "bitmex": [-10, -15, -30, -2, -10, 0, 0],
    "binance": [-10, -15, 0, -2, -20, -20, 0],
    "hyperliquid": [-10, -15, -20, -2, 0, -20, 0],
}


def forced_adl_ranking(formula, shorts=ADL_SHORTS, long_lots=30):
    """Profitable shorts of different sizes, entries and wallets; a bankrupt long is
    auto-deleveraged against some of them in the order the formula ranks them."""
    config = adl_only_config(formula, n_accounts=9)
    # The long: 30 lots at 100 are in the 10x bracket, so 310 USDT at 10x.
    deposits = [(1, 1e6, 5.0, "cross", {}), (8, 310.0, 10.0, "cross", {})]
    deposits += [(9, 1e6, 1.0, "cross", {})]
    deposits += [(a, cash, 20.0, "cross", {}) for a, (cash, _, _) in shorts.items()]
    # Each short sells into the maker's bid at its entry, highest first.
    by_price = sorted(shorts.items(), key=lambda item: -item[1][2])
    opening = [_order(0, 1, LIMIT, BUY, price, lots) for _, (_, lots, price) in by_price]
    opening += [_order(0, a, IOC, SELL, price, lots) for a, (_, lots, price) in by_price]
    opening += [_order(0, 1, LIMIT, SELL, 10_000, 200), _order(0, 8, MARKET, BUY, 0, long_lots)]
    crash = [
        _order(0, 1, CANCEL_ALL, 0, 0, 0),
        _order(0, 1, LIMIT, BUY, 8000, 1),
        _order(0, 9, IOC, SELL, 8000, 1),
    ]
    steps = [([100.0], opening), ([80.0], crash), ([80.0], [])]
    return config, [100.0], deposits, steps


@pytest.mark.parametrize("formula", ADL_FORMULA_NAMES)
def test_adl_ranking_matches_naive(formula):
    """Each formula picks different victims; engine and naive agree on all of them."""
    config, index0, deposits, steps = forced_adl_ranking(formula)
    ex, nv = make_pair(config, index0, deposits)
    counts = Counts()
    for t, (index, rows) in enumerate(steps):
        step_both(ex, nv, rows, index, counts, f"step {t}")
        if t == 0:
            opened = [acc.pos[0] for acc in nv.accounts]
            assert opened == [0, 67, -10, -15, -30, -2, -20, -20, 30, 0]
    assert [acc.pos[0] for acc in nv.accounts[2:9]] == ADL_OUTCOME[formula]
    assert counts.get("adl", 0) >= 1


def forced_halt(formula, halt_perp=True):
    """A 25% crash trips the circuit breakers (the spot one, and the perp one if
    ``halt_perp``): liquidation flow into a halted market waits for the reopen."""
    common = dict(tick_size=0.01, lot_size=1.0, price_band=0.5)
    perp = MarketConfig(
        "PERP", brackets=SMALL_BRACKETS, circuit_breaker=0.1 if halt_perp else 0.0, **common
    )
    spot = MarketConfig("SPOT", kind="spot", collateral_ratio=0.9, circuit_breaker=0.1, **common)
    config = ExchangeConfig(
        markets=(perp, spot),
        n_accounts=4,
        basis_window=1,
        adl_formula=formula,
        breaker_window=300,
        breaker_halt=2,
    )
    deposits = [
        (1, 1e6, 5.0, "cross", {1: 1000}),  # market maker
        (2, 100.0, 20.0, "cross", {}),  # long 10 @ 100
        (3, 0.0, 20.0, "unified", {1: 3}),  # long 10 @ 100 on spot collateral
        (4, 1e6, 1.0, "cross", {1: 1000}),  # sets the last price
    ]
    quotes = [
        _order(0, 1, CANCEL_ALL, 0, 0, 0),
        _order(1, 1, CANCEL_ALL, 0, 0, 0),
        _order(0, 1, LIMIT, BUY, 7490, 2),
        _order(0, 1, LIMIT, SELL, 7510, 2),
        _order(1, 1, LIMIT, BUY, 7400, 5),
        _order(1, 1, LIMIT, SELL, 7510, 5),
    ]
    steps = [
        (
            [100.0, 100.0],
            [
                _order(0, 1, LIMIT, SELL, 10_000, 20),
                _order(0, 2, MARKET, BUY, 0, 10),
                _order(0, 3, MARKET, BUY, 0, 10),
            ],
        ),
        (
            [75.0, 75.0],
            quotes[:4]
            + [_order(0, 4, LIMIT, SELL, 7500, 1), _order(0, 1, IOC, BUY, 7500, 1)]
            + [_order(1, 4, LIMIT, SELL, 7500, 1), _order(1, 1, IOC, BUY, 7500, 1)],
        ),
        ([75.0, 75.0], quotes),  # halted: the cancels pass, the orders are rejected
        ([75.0, 75.0], quotes),  # trading resumes; so do the liquidations
        ([75.0, 75.0], []),
    ]
    return config, [100.0, 100.0], deposits, steps


@pytest.mark.parametrize("formula", ADL_FORMULA_NAMES)
def test_circuit_breaker_halt_matches_naive(formula):
    config, index0, deposits, steps = forced_halt(formula)
    ex, nv = make_pair(config, index0, deposits)
    counts = Counts()
    history = []
    for t, (index, rows) in enumerate(steps):
        results = step_both(ex, nv, rows, index, counts, f"step {t}")
        in_liquidation = [acc.in_liquidation for acc in nv.accounts]
        history.append(
            ([acc.pos[0] for acc in nv.accounts], in_liquidation, results, counts.copy())
        )
    assert [m.halted_until for m in nv.markets] == [3, 3]
    for t in (1, 2):  # halted: both accounts wait in liquidation with their positions
        positions, in_liquidation, results, seen = history[t]
        assert positions[2:4] == [10, 10] and in_liquidation[2:4] == [1, 1]
        assert seen.get("liquidations", 0) == 0
    assert [r[0] for r in history[2][2]] == [ACCEPTED] * 2 + [REJECT_HALTED] * 4
    positions, in_liquidation, results, seen = history[3]
    assert [r[0] for r in results] == [ACCEPTED] * 6
    assert positions[2:4] == [0, 0] and seen.get("liquidations", 0) >= 2
    assert seen.get("collateral_sales", 0) >= 1


def test_halted_spot_market_delays_collateral_sale():
    """Only the spot market halts: perps are liquidated at once, the collateral sale waits."""
    config, index0, deposits, steps = forced_halt("binance", halt_perp=False)
    ex, nv = make_pair(config, index0, deposits)
    counts = Counts()
    unified = nv.accounts[3]
    for t, (index, rows) in enumerate(steps):
        results = step_both(ex, nv, rows, index, counts, f"step {t}")
        if t in (1, 2):  # perps closed, debt left, spot halted: still in liquidation
            assert unified.pos == [0, 3] and unified.in_liquidation == 1
            assert counts.get("collateral_sales", 0) == 0
        if t == 2:
            assert [r[0] for r in results] == [ACCEPTED] * 4 + [REJECT_HALTED] * 2
    assert [m.halted_until for m in nv.markets] == [0, 3]
    assert unified.pos[1] < 3 and counts.get("collateral_sales", 0) >= 1


def test_bracket_caps_the_leverage_an_order_is_margined_at():
    """Exposure is margined at the bracket's maximum leverage where the account's is higher.

    SMALL_BRACKETS: 100x below 300 USDT, 50x to 1,000, 20x to 3,000, 10x above.
    A 100x account with 60 USDT buys 2 lots at 100 (200 USDT at 100x: 2 of
    margin), 3 more (500 USDT at 50x: 10), not 40 more (4,500 USDT at 10x asks
    450, though 100x would ask 45), then 5 more (1,000 USDT at 20x: 50).
    """
    free = dict(tick_size=0.01, lot_size=1.0, maker_fee=0.0, taker_fee=0.0)
    config = ExchangeConfig(
        markets=(MarketConfig("PERP", brackets=SMALL_BRACKETS, **free),),
        n_accounts=2,
        basis_window=1,
    )
    ex, nv = make_pair(config, [100.0], [(1, 1e6, 5.0, "cross", {}), (2, 60.0, 100.0, "cross", {})])
    counts = Counts()
    step_both(ex, nv, [_order(0, 1, LIMIT, SELL, 10_000, 100)], [100.0], counts, "quote")
    buys = [_order(0, 2, MARKET, BUY, 0, lots) for lots in (2, 3, 40, 5)]
    results = step_both(ex, nv, buys, [100.0], counts, "buys")
    assert [r[0] for r in results] == [ACCEPTED, ACCEPTED, REJECT_MARGIN, ACCEPTED]
    assert nv.accounts[2].pos[0] == 10


def test_bankruptcy_price_below_one_tick_matches_naive():
    """A cross account whose equity exceeds a position's notional: the takeover is at one tick.

    Three 2x markets at MMR 50%: a cross account long 2 A, 1 B and 1 C at 100
    with 230 has equity 150 at marks of 80, under its maintenance margin of 160.
    """
    free = dict(maker_fee=0.0, taker_fee=0.0, liquidation_fee=0.0, fund_unwind_cap=0.0)
    half = dict(tick_size=0.01, lot_size=1.0, price_band=0.5, brackets=((0.0, 2.0, 0.5),))
    markets = tuple(MarketConfig(name, **half, **free) for name in ("A", "B", "C"))
    config = ExchangeConfig(markets=markets, n_accounts=3, basis_window=1, insurance_fund=1000.0)
    deposits = [(a, cash, 2.0, "cross", {}) for a, cash in ((1, 1e6), (2, 230.0), (3, 1e6))]
    ex, nv = make_pair(config, [100.0] * 3, deposits)
    counts = Counts()
    opening = []
    for k, lots in enumerate((2, 1, 1)):
        opening += [_order(k, 3, LIMIT, SELL, 10_000, lots), _order(k, 2, MARKET, BUY, 0, lots)]
    step_both(ex, nv, opening, [100.0] * 3, counts, "open")
    assert ex.state.pos[0, 2].tolist() == [2, 1, 1]

    # A has the largest margin: its IOC (BP 80 - 150 / 2 = 5) sells one lot to the
    # only bid, at 70, leaving equity 140. For the last lot the other positions are
    # worth 60 more than nothing, so no price zeroes the equity: -60 floors at one
    # tick, the fund takes the lot at 0.01 and the account keeps 60.01. B (BP 19.99)
    # then sells into the bid at 79.90, and with 59.91 against C's margin of 40 the
    # account is healthy again.
    quotes = [_order(0, 1, LIMIT, BUY, 7_000, 1), _order(0, 1, LIMIT, SELL, 8_010, 5)]
    for k in (1, 2):
        quotes += [_order(k, 1, LIMIT, BUY, 7_990, 5), _order(k, 1, LIMIT, SELL, 8_010, 5)]
    step_both(ex, nv, quotes, [80.0] * 3, counts, "fall")
    assert [s["mark"] for s in ex.market_stats().values()] == pytest.approx([80.0] * 3)
    assert ex.state.pos[0, 2].tolist() == [0, 0, 1]
    assert ex.state.pos[0, FUND].tolist() == [1, 0, 0]
    assert ex.state.entry[0, FUND, 0] == pytest.approx(0.01)
    assert ex.market_stats()["A"]["takeover_notional"] == pytest.approx(0.01)
    assert ex.state.cash[0, 2] + 80.0 == pytest.approx(59.91)
    assert ex.state.in_liquidation[0, 2] == 0
    inv = ex.invariants()
    assert inv["position_imbalance"] == 0 and inv["cash_drift"] < 1e-9


@pytest.mark.parametrize("reduce_only_level", [1.2, 1.05])
def test_unified_account_below_reduce_only_level_may_only_reduce(reduce_only_level):
    """Between 105% and 120% uniMMR a unified account may only reduce (MECHANICS.md section 6).

    Long 50 lots at 100 on 100 coins worth 1 each; at a mark of 99.15 its equity
    is 57.5 against 49.575 of maintenance margin, a uniMMR of 1.16: buying the
    perp or the coin is refused, selling either is not. With the reduce-only
    level at the liquidation level (no band) the same buys are accepted.
    """
    free = dict(tick_size=0.01, lot_size=1.0, maker_fee=0.0, taker_fee=0.0)
    config = ExchangeConfig(
        markets=(
            MarketConfig("PERP", brackets=((0.0, 100.0, 0.01),), **free),
            MarketConfig("COIN", kind="spot", collateral_ratio=1.0, **free),
        ),
        n_accounts=2,
        basis_window=1,
        unified_reduce_only_level=reduce_only_level,
    )
    deposits = [(1, 1e6, 5.0, "cross", {1: 1000}), (2, 0.0, 100.0, "unified", {1: 100})]
    ex, nv = make_pair(config, [100.0, 1.0], deposits)
    counts = Counts()
    opening = [_order(0, 1, LIMIT, SELL, 10_000, 50), _order(0, 2, MARKET, BUY, 0, 50)]
    step_both(ex, nv, opening, [100.0, 1.0], counts, "open")
    quotes = [
        _order(0, 1, LIMIT, BUY, 9_910, 10),
        _order(0, 1, LIMIT, SELL, 9_920, 10),
        _order(1, 1, LIMIT, BUY, 98, 10),
        _order(1, 1, LIMIT, SELL, 102, 10),
    ]
    step_both(ex, nv, quotes, [99.15, 1.0], counts, "fall")
    unified = nv.accounts[2]
    uni_mmr = nv.equity(unified) / nv.maintenance_margin(unified)
    assert nv.unified_level <= uni_mmr < 1.2
    orders = [
        _order(0, 2, LIMIT, BUY, 9_900, 1),
        _order(0, 2, LIMIT, SELL, 9_930, 1),
        _order(1, 2, LIMIT, BUY, 99, 1),
        _order(1, 2, LIMIT, SELL, 101, 1),
    ]
    results = step_both(ex, nv, orders, [99.15, 1.0], counts, "orders")
    refused = REJECT_REDUCE_ONLY if reduce_only_level > uni_mmr else ACCEPTED
    assert [r[0] for r in results] == [refused, ACCEPTED, refused, ACCEPTED]


def test_collateral_is_sold_pro_rata_and_only_to_repay_the_debt():
    """A unified account whose collateral is worth more than its debt keeps the rest.

    Long 100 lots at 100 on 40 + 20 coins (worth 6,000, counted 5,400), the perp
    crashes to 46: the perp is sold at about 45.9, leaving about 5,400 of debt,
    which is repaid by selling each coin by its share of the collateral's value
    (2/3 and 1/3), about 37 and 19 coins, not all of them.
    """
    common = dict(tick_size=0.01, lot_size=1.0, price_band=0.6)
    spot = dict(kind="spot", collateral_ratio=0.9, **common)
    config = ExchangeConfig(
        markets=(
            MarketConfig("PERP", brackets=SMALL_BRACKETS, **common),
            MarketConfig("COINA", **spot),
            MarketConfig("COINB", **spot),
        ),
        n_accounts=4,
        basis_window=1,
    )
    deposits = [
        (1, 1e6, 5.0, "cross", {1: 1000, 2: 1000}),  # market maker
        (2, 0.0, 20.0, "unified", {1: 40, 2: 20}),  # the borrower
        (3, 1e6, 5.0, "cross", {}),  # sells it the perp
        (4, 1e6, 1.0, "cross", {}),  # sets the last price
    ]
    steps = [
        (
            [100.0, 100.0, 100.0],
            [_order(0, 3, LIMIT, SELL, 10_000, 100), _order(0, 2, MARKET, BUY, 0, 100)]
            + [_order(k, 1, LIMIT, BUY, 9_990, 200) for k in (1, 2)]
            + [_order(k, 1, LIMIT, SELL, 10_010, 200) for k in (1, 2)],
        ),
        (
            [46.0, 100.0, 100.0],
            [
                _order(0, 1, LIMIT, BUY, 4_590, 200),
                _order(0, 1, LIMIT, SELL, 4_610, 200),
                _order(0, 4, LIMIT, SELL, 4_600, 1),
                _order(0, 1, IOC, BUY, 4_600, 1),
            ],
        ),
        ([46.0, 100.0, 100.0], []),
        ([46.0, 100.0, 100.0], []),
    ]
    ex, nv = make_pair(config, [100.0, 100.0, 100.0], deposits)
    counts = Counts()
    for t, (index, rows) in enumerate(steps):
        step_both(ex, nv, rows, index, counts, f"step {t}")
    borrower = nv.accounts[2]
    assert borrower.pos[0] == 0 and counts.get("collateral_sales", 0) >= 1
    sold_a, sold_b = 40 - borrower.pos[1], 20 - borrower.pos[2]
    assert 0 < sold_a < 40 and 0 < sold_b < 20  # only what repays the debt
    assert abs(sold_a - 2 * sold_b) <= 2, (sold_a, sold_b)  # by value: A is two thirds


def test_the_fund_does_not_unwind_into_a_halted_market():
    """The fund takes a long over at 90.5, sheds one lot a step (its unwind cap) into a
    deep bid, stops while a 25% fall has the market halted, and resumes after."""
    perp = MarketConfig(
        "PERP",
        tick_size=0.01,
        lot_size=1.0,
        price_band=0.5,
        brackets=SMALL_BRACKETS,
        circuit_breaker=0.1,
        fund_unwind_cap=100.0,
    )
    config = ExchangeConfig(
        markets=(perp,),
        n_accounts=3,
        basis_window=1,
        insurance_fund=1e4,
        fund_takeover_limit=1.0,
        breaker_window=300,
        breaker_halt=2,
    )
    deposits = [
        (1, 1e6, 5.0, "cross", {}),  # bids deep, at 60
        (2, 100.0, 20.0, "cross", {}),  # long 10 @ 100
        (3, 1e6, 5.0, "cross", {}),  # sells it
    ]
    opening = [
        _order(0, 3, LIMIT, SELL, 10_000, 10),
        _order(0, 2, MARKET, BUY, 0, 10),
        _order(0, 1, LIMIT, BUY, 6_000, 20),
        _order(0, 1, LIMIT, SELL, 10_010, 5),
    ]
    ex, nv = make_pair(config, [100.0], deposits)
    counts = Counts()
    held = []
    for t, index in enumerate([100.0, 90.5, 75.0, 75.0, 75.0]):
        step_both(ex, nv, opening if t == 0 else [], [index], counts, f"step {t}")
        held.append(nv.accounts[FUND].pos[0])
    assert nv.markets[0].halted_until == 4
    assert held[1] > 0 and counts.get("takeovers", 0) == 1
    assert held[2] == held[3] == held[1]  # halted: the fund waits
    assert held[4] < held[3]


@pytest.mark.parametrize("window", [1, 2, 3])
def test_circuit_breaker_trips_on_a_window_boundary(window):
    """A 25% crash at step 2 trips a 10% breaker even when step 2 starts a new window.

    Regression: the engine used to re-anchor the reference at a window boundary before
    comparing, so such a move (every move, with ``breaker_window=1``) went unnoticed.
    """
    perp = MarketConfig("P", tick_size=0.01, lot_size=1.0, price_band=0.5, circuit_breaker=0.1)
    config = ExchangeConfig(
        markets=(perp,), n_accounts=2, basis_window=1, breaker_window=window, breaker_halt=5
    )
    ex, nv = make_pair(config, [100.0], [(1, 1e6, 1.0, "cross", {}), (2, 1e6, 1.0, "cross", {})])
    for t, price in enumerate((100.0, 100.0, 75.0)):  # a one-lot trade sets last and mark
        ticks = round(price * 100)
        rows = [_order(0, 1, LIMIT, BUY, ticks, 1), _order(0, 2, IOC, SELL, ticks, 1)]
        step_both(ex, nv, rows, [price], Counts(), f"step {t}")
    assert ex.state.mark_price[0, 0] == 75.0
    assert ex.state.halted_until[0, 0] == 2 + 5


def imported_modules(module) -> set:
    """Names of the modules a module's source imports (relative ones with their dots)."""
    import ast

    with open(module.__file__) as fh:
        tree = ast.parse(fh.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    return imported


def test_naive_is_independent_of_engine_kernels():
    """naive.py imports only the standard library, the integer codes and the config."""
    import naive

    imported = imported_modules(naive)
    assert imported <= {"__future__", "math", "mmgym.core.codes", "mmgym.core.config"}, imported
