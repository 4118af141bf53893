"""The fused population step against its pure-Python twin (``tests/naive_population.py``).

Two copies of a small ``oct10`` market, built alike, are stepped side by side:
one by the jitted population step, one by the twin's decisions applied through
the jitted exchange. After every step each array of the exchange state and of
the population state must be equal, bit for bit.
"""

import math
from collections import Counter

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from naive_population import population_step
from test_population import step as fused_step

from mmgym.core.codes import (
    CANCEL,
    CANCEL_ALL,
    IOC,
    LIMIT,
    MARKET,
    POST_ONLY,
    S_ADL_COUNT,
    S_LIQ_COUNT_SHORT,
)
from mmgym.scenario import build, load_scenario

STEPS = 200


def small_oct10(
    seed, shock, long_share, obliged, slippage, fair_weight, requote_bps, pricing, envs=1, **more
):
    """About 150 accounts in the oct10 venue; the shock comes early and fast. ``envs``
    envs are seeded ``seed``, ``seed + 1``, ..."""
    shocks = [
        {"market": m, "start": 30, "duration": 90, "size": shock * beta, "rebound": 0.4,
         "rebound_duration": 60}
        for m, beta in (("BTCUSDT", 1.0), ("ALTUSDT", 1.2))
    ]  # fmt: skip
    scenario = load_scenario(
        "oct10",
        steps=STEPS,
        mm_obligations=obliged,
        collateral_pricing=pricing,
        **{
            "population.shocks": shocks,
            "population.arbitrage_blocked_from": 60,
            "population.leveraged.count": 120,
            "population.leveraged.long_share": long_share,
            "population.leveraged.holding_period": 400.0,
            "population.leveraged.turnover_slippage": slippage,
            "population.makers.firms": 2,
            "population.makers.fair_index_weight": fair_weight,
            "population.makers.requote_bps": requote_bps,
            "population.makers.calm_steps": 20,
            "population.loopers.count": 12,
            "population.loopers.unwind_trigger": 0.02,
            **more,
        },
    )
    seeds = [seed + i for i in range(envs)]
    return build(scenario, seeds), build(scenario, seeds)


def differences(a, b):
    return [
        name
        for name in a._fields
        if isinstance(getattr(a, name), np.ndarray)
        and not np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True)
    ]


def role(pp, a):
    """Which agent an account belongs to (the layout of ``PopParams``)."""
    if a >= pp.flow_start:
        return ("noise", "anchor", "momentum", "arbitrage")[(a - pp.flow_start) % 4]
    for name, start, n in (
        ("firm", pp.firm_start, pp.n_firms),
        ("leveraged", pp.lev_start, pp.n_lev),
        ("looper", pp.loop_start, pp.n_loop),
    ):
        if start <= a < start + n:
            return name
    return "other"


def run_side_by_side(setup, outside=None):
    """Step both copies, comparing every array (the twin steps each env in turn);
    count env 0's orders by (role, kind), the firms' withdrawals and returns,
    short liquidations and ADL. ``outside(t)`` gives each step's external rows
    (int64[1, R, 8]), applied before the population's in both copies."""
    (ex, pp, ps), (twin_ex, twin_pp, twin_ps) = setup
    orders, moves = Counter(), Counter()
    for t in range(STEPS):
        away = ps.away[0].copy()
        external = None if outside is None else outside(t)
        fused_step(ex, pp, ps, external=external)
        if external is None:
            for e in range(ex.n_envs):
                population_step(twin_ex.params, twin_ex.state, twin_pp, twin_ps, e)
        else:
            results = np.zeros((1, external.shape[1], 3), np.int64)
            population_step(twin_ex.params, twin_ex.state, twin_pp, twin_ps, 0, external, results)
        diff = differences(ex.state, twin_ex.state) + differences(ps, twin_ps)
        assert not diff, f"step {t}: {diff} differ"
        for a, kind in ps.buffer[0, : ps.n_buffer[0], 2:4].tolist():
            orders[role(pp, a), kind] += 1
        moves["left"] += int(np.sum(ps.away[0] > away))
        moves["returned"] += int(np.sum(ps.away[0] < away))
        moves["short_liquidations"] += int(ex.state.market_stats[0, :, S_LIQ_COUNT_SHORT].sum())
        moves["adl"] += int(ex.state.market_stats[0, :, S_ADL_COUNT].sum())
    return orders, moves


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32),
    shock=st.one_of(st.floats(-0.2, -0.03), st.floats(0.03, 0.2)),  # crash or squeeze
    long_share=st.floats(0.3, 0.9),
    obliged=st.booleans(),
    slippage=st.sampled_from([0.002, math.inf]),
    fair_weight=st.sampled_from([0.0, 0.5, 1.0]),
    requote_bps=st.sampled_from([0.0, 2.0]),
    pricing=st.sampled_from(["internal_book", "conversion"]),
    unified=st.booleans(),
    at_mark=st.booleans(),
    duty_notional=st.sampled_from([20000.0, 400000.0]),
    position_limit=st.sampled_from([math.inf, 50000.0]),
)
# Obliged firms whose duty size binds, quoting notional at a falling mark.
@example(3, -0.2, 0.8, True, 0.002, 0.0, 0.0, "internal_book", True, True, 400000.0, math.inf)
# A short squeeze into a crowd of shorts: short stops, liquidations and ADL.
@example(5, 0.2, 0.3, False, 0.002, 0.5, 2.0, "internal_book", True, True, 20000.0, math.inf)
# A position limit that caps the traders' turnovers and refuses the firms' larger quotes.
@example(7, -0.1, 0.7, False, 0.002, 0.5, 2.0, "internal_book", True, True, 20000.0, 50000.0)
def test_population_step_matches_its_twin(
    seed,
    shock,
    long_share,
    obliged,
    slippage,
    fair_weight,
    requote_bps,
    pricing,
    unified,
    at_mark,
    duty_notional,
    position_limit,
):
    more = {
        "position_limits": position_limit,
        "population.makers.unified": unified,
        "population.makers.quotes_at_mark": at_mark,
        "population.makers.limits_at_mark": at_mark,
        "population.obligations.min_notional": duty_notional,
    }
    setup = small_oct10(
        seed, shock, long_share, obliged, slippage, fair_weight, requote_bps, pricing, **more
    )
    run_side_by_side(setup)


def test_the_side_by_side_run_exercises_every_decision():
    """A 10% crash: firms leave and shed inventory, and one returns; stops fire,
    positions turn over, loopers unwind, every background role trades."""
    setup = small_oct10(7, -0.1, 0.87, False, 0.002, 0.0, 0.0, "internal_book")
    orders, moves = run_side_by_side(setup)
    assert moves["left"] >= 2 and moves["returned"] >= 1
    expected = [
        ("firm", POST_ONLY), ("firm", CANCEL), ("firm", IOC),
        ("leveraged", IOC), ("leveraged", MARKET), ("looper", MARKET),
        ("noise", MARKET), ("noise", LIMIT), ("noise", CANCEL_ALL),
        ("anchor", IOC), ("momentum", MARKET), ("arbitrage", IOC),
    ]  # fmt: skip
    assert [o for o in expected if orders[o] == 0] == []


def test_the_side_by_side_run_exercises_a_short_squeeze():
    """A 15% squeeze into a crowd of shorts with a small fund: shorts are liquidated,
    and the fund's limit reached, longs deleveraged."""
    small_fund = {"exchange.insurance_fund": 1000.0}
    setup = small_oct10(5, 0.15, 0.2, False, 0.002, 0.0, 0.0, "internal_book", **small_fund)
    _, moves = run_side_by_side(setup)
    assert moves["short_liquidations"] > 0 and moves["adl"] > 0


def test_several_envs_in_one_call_match_the_twin_env_by_env():
    """The fused step loops over envs in one call: each env keeps to its own rows
    of every array (three seeds, three different crashes)."""
    setup = small_oct10(13, -0.12, 0.87, False, 0.002, 0.5, 2.0, "internal_book", envs=3)
    run_side_by_side(setup)
    ex = setup[0][0]
    assert not np.array_equal(ex.state.cash[0], ex.state.cash[1])
    assert not np.array_equal(ex.state.cash[1], ex.state.cash[2])


def test_external_orders_go_first_in_both_steps():
    """An agent's orders (here random limit, market and cancel-all rows of a
    well-funded account) enter the step before the population's: the twin
    applies them as the fused step does, and the states stay equal."""
    setup = small_oct10(11, -0.1, 0.87, False, 0.002, 0.0, 0.0, "internal_book")
    pp = setup[0][1]
    trader = pp.flow_start + 4 * 0 + 2  # the major's momentum account: 1e9 USDT, few orders
    rng = np.random.default_rng(11)
    sent = []

    def outside(t):
        rows = np.full((1, 4, 8), -1, np.int64)  # rows of env -1 are skipped
        sent.append(int(rng.integers(0, 5)))
        for r in range(sent[-1]):
            kind = int(rng.choice([LIMIT, MARKET, CANCEL_ALL]))
            side = int(rng.choice([1, -1]))
            price = int(round(122_000 * (1 - side * rng.uniform(0.0, 0.01)) / 0.1))
            rows[0, r] = [0, 0, trader, kind, side, price, int(rng.integers(1, 2000)), 0]
        return rows

    orders, _ = run_side_by_side(setup, outside)
    ex, _, ps = setup[0]
    assert ps.n_orders[0] == sum(orders.values()) + sum(sent)  # every external row applied
    assert sum(sent) > 300 and ex.state.pos[0, trader, 0] != 0


def test_population_twin_uses_no_population_kernel():
    """naive_population.py decides everything itself: it borrows only the exchange's
    kernels (matching, margin, prices), never the population's."""
    import naive_population
    from test_engine_vs_naive import imported_modules

    imported = imported_modules(naive_population)
    assert not any(name.startswith("mmgym.population") for name in imported), imported
    assert all(name.split(".")[0] in {"__future__", "math", "numpy", "mmgym"} for name in imported)
