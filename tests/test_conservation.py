"""Conservation laws of the engine on random streams, crashes included.

After every step: perpetual positions sum to zero, spot holdings keep their
deposited total, and cash plus fees collected minus socialised loss equals
what was deposited (the fund's initial balance included). Streams run in a
batch of two envs with different paths; env 0 must also be bit-identical to
the same stream run alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine_vs_naive import (
    Counts,
    Scenario,
    forced_adl_ranking,
    forced_cascade,
    forced_halt,
    forced_partial_and_tie,
    order_specs,
    scenarios,
    spec_row,
)

from mmgym.core import BookFullError, Exchange
from mmgym.core.codes import (
    ADL_FORMULA_NAMES,
    ORDER_COLUMNS,
    PERP,
    S_ADL_COUNT,
    S_LIQ_COUNT_LONG,
    S_LIQ_COUNT_SHORT,
    S_TAKEOVER_NOTIONAL,
)


def assert_conserved(ex: Exchange, where: str) -> None:
    inv = ex.invariants()
    deposits = float(ex.deposited_cash.max())
    assert inv["position_imbalance"] == 0, f"{where}: {inv}"
    assert inv["holdings_drift"] == 0, f"{where}: {inv}"
    assert inv["cash_drift"] < 1e-6 * (1.0 + deposits), f"{where}: {inv}"


def open_exchange(sc: Scenario, n_envs: int) -> Exchange:
    ex = Exchange(sc.config, n_envs)
    ex.open(sc.index0)
    for a, cash, leverage, kind, holdings in sc.deposits:
        coins = {k: lots * sc.config.markets[k].lot_size for k, lots in holdings.items()}
        ex.deposit(a, cash, leverage=leverage, kind=kind, holdings=coins)
    return ex


def _step(ex, rows, index):
    """Step; returns the results, or None if the step raised BookFullError."""
    batch = np.array(rows, np.int64).reshape(len(rows), ORDER_COLUMNS)
    # A read-only index, as ``Exchange`` passes a list for one env: numba types
    # read-only and writable arrays apart, and each would compile ``advance`` anew.
    index = np.array(index, np.float64)
    index.setflags(write=False)
    try:
        return ex.step(batch, index)
    except BookFullError:
        return None


def _record(ex, counts):
    stats = ex.state.market_stats
    counts.add(
        "liquidations", int((stats[..., S_LIQ_COUNT_LONG] + stats[..., S_LIQ_COUNT_SHORT]).sum())
    )
    counts.add("takeovers", int((stats[..., S_TAKEOVER_NOTIONAL] > 0).sum()))
    counts.add("adl", int(stats[..., S_ADL_COUNT].sum()))
    counts.add("socialised", int((ex.state.socialised_loss > 0).sum()))
    spot = ex.params.market_kind != PERP
    counts.add("collateral_sales", int(stats[:, spot, S_LIQ_COUNT_LONG].sum()))


def run_conservation(sc: Scenario, counts: Counts | None = None) -> Counts:
    """Env 0 runs ``sc``; env 1 the mirrored path (index moves inverted, orders reversed)."""
    counts = Counts() if counts is None else counts
    batched, alone = open_exchange(sc, 2), open_exchange(sc, 1)
    assert_conserved(batched, "after deposits")
    index = np.array([sc.index0, sc.index0], dtype=float)
    known = ([], [])
    for t, (moves, specs) in enumerate(sc.steps):
        index[0] = np.clip(index[0] * moves, 0.01, 1e7)
        index[1] = np.clip(index[1] / np.array(moves), 0.01, 1e7)
        rows0 = [spec_row(batched, spec, known[0], 0) for spec in specs]
        rows1 = [spec_row(batched, spec, known[1], 1) for spec in reversed(specs)]
        rows = [row for pair in zip(rows0, rows1, strict=True) for row in pair]
        results = _step(batched, rows, index)
        results0 = _step(alone, rows0, index[:1])
        where = f"step {t}"
        assert_conserved(batched, where)
        assert_conserved(alone, where)
        for name, arr in alone.state._asdict().items():
            if name.startswith(("match_", "rank_scratch")):
                continue  # scratch space
            same = np.array_equal(getattr(batched.state, name)[:1], arr, equal_nan=True)
            assert same, f"{where}: env 0 of the batch differs from the lone env in {name}"
        if results is not None:
            assert np.array_equal(results[0::2], results0), where
        for e, (rows_e, res) in enumerate(((rows0, results0), (rows1, results))):
            if res is not None:
                res_e = res if e == 0 else res[1::2]
                known[e].extend(
                    (int(r[1]), row[1], row[2])
                    for row, r in zip(rows_e, res_e, strict=True)
                    if r[1]
                )
        _record(batched, counts)
    return counts


SETTINGS = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@settings(max_examples=250, **SETTINGS)
@given(scenarios(max_steps=25, max_orders=12))
def test_random_streams_conserve(sc):
    run_conservation(sc)


def test_conservation_streams_include_liquidations():
    counts = Counts()

    @settings(max_examples=60, derandomize=True, database=None, **SETTINGS)
    @given(scenarios(max_steps=25, max_orders=12))
    def sweep(sc):
        run_conservation(sc, counts)

    sweep()
    # Takeovers and ADL are rare in random streams now that brackets cap leverage and
    # orders pay their open loss; the forced crashes below conserve through them.
    assert counts.get("liquidations", 0) > 0, counts


@pytest.mark.parametrize("formula", ADL_FORMULA_NAMES)
@pytest.mark.parametrize(
    "build", [forced_cascade, forced_partial_and_tie, forced_adl_ranking, forced_halt]
)
def test_forced_crashes_conserve(build, formula):
    config, index0, deposits, steps = build(formula)
    ex = open_exchange(Scenario(config, index0, deposits), 1)
    counts = Counts()
    for t, (index, rows) in enumerate(steps):
        ex.step(np.array(rows, np.int64), index)
        assert_conserved(ex, f"step {t}")
        _record(ex, counts)
    assert counts.get("liquidations", 0) > 0, counts
    assert counts.get("adl", 0) > 0 or build is forced_halt, counts
    assert counts.get("takeovers", 0) > 0 or build is not forced_cascade, counts


def test_forced_crashes_with_random_orders_conserve():
    """The hand-made crash with random orders and index moves mixed into its steps:
    the loss paths (takeovers, ADL, collateral sales, socialised losses) are reached
    with other traffic in the books, and every step conserves."""
    counts = Counts()

    @settings(max_examples=40, derandomize=True, database=None, **SETTINGS)
    @given(
        formula=st.sampled_from(ADL_FORMULA_NAMES),
        extra=st.lists(st.lists(order_specs(2, 7), max_size=6), min_size=5, max_size=5),
        jitter=st.lists(st.floats(0.97, 1.03), min_size=5, max_size=5),
    )
    def sweep(formula, extra, jitter):
        config, index0, deposits, steps = forced_cascade(formula)
        ex = open_exchange(Scenario(config, index0, deposits), 1)
        for t, (index, rows) in enumerate(steps):
            if 0 < t <= len(extra):  # after the positions are opened
                rows = rows + [spec_row(ex, spec, [], 0) for spec in extra[t - 1]]
                index = [x * jitter[t - 1] for x in index]
            _step(ex, rows, index)
            assert_conserved(ex, f"{formula} step {t}")
            _record(ex, counts)

    sweep()
    for path in ("liquidations", "takeovers", "adl", "collateral_sales", "socialised"):
        assert counts.get(path, 0) > 0, (path, counts)
