"""The margin screen: a skipped account is one a full check would find safe.

The cushion is checked against the pure-Python margin of ``naive.py`` at the
worst prices the screen allows, and whole runs with the screen on and off
must be identical bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import NaiveExchange

from mmgym.core import Exchange, ExchangeConfig, MarketConfig
from mmgym.core.codes import CROSS, UNIFIED
from mmgym.core.margin import is_liquidatable
from mmgym.core.screen import margin_cushion
from mmgym.scenario import run

MARKETS = (
    MarketConfig("BTCUSDT", tick_size=0.1, lot_size=0.001),
    MarketConfig("ALTUSDT", tick_size=0.0001, lot_size=1.0, brackets="small_alt"),
    MarketConfig("USDEUSDT", kind="spot", tick_size=0.0001, lot_size=1.0, collateral_ratio=0.9),
)


def exchange(screen: float) -> Exchange:
    return Exchange(ExchangeConfig(markets=MARKETS, n_accounts=1, margin_screen=screen))


def set_prices(ex: Exchange, prices) -> None:
    ex.state.mark_price[0] = prices
    ex.state.collateral_price[0] = prices


def naive_liquidatable(ex: Exchange, prices) -> bool:
    """The pure-Python verdict for account 1 of ``ex`` at ``prices``."""
    naive = NaiveExchange(ex.config)
    s = ex.state
    acc = naive.accounts[1]
    acc.cash = float(s.cash[0, 1])
    acc.pos = [int(p) for p in s.pos[0, 1]]
    acc.entry = [float(x) for x in s.entry[0, 1]]
    acc.kind = int(s.account_kind[0, 1])
    for m, price in zip(naive.markets, prices, strict=True):
        m.mark = m.collateral = float(price)
    return naive.is_liquidatable(acc)


def test_cushion_of_a_ten_times_long_by_hand():
    ex = exchange(0.01)
    s = ex.state
    reference = np.array([100_000.0, 1.0, 1.0])
    s.screen_reference[0] = reference
    set_prices(ex, reference)
    # 10,000 USDT of margin under 1 BTC bought at 100,000: cash is net of the purchase.
    s.cash[0, 1] = 10_000.0 - 100_000.0
    s.pos[0, 1, 0] = 1000
    s.entry[0, 1, 0] = 100_000.0
    mmr = ex.params.bracket_mmr[0, 0]  # 1 BTC (and 1.01 BTC) is in the first tier
    surplus = 10_000.0 - 100_000.0 * mmr
    size = 90_000.0 + 100_000.0 * mmr + 1.0 + 200_000.0
    expected = (surplus - 1e-9 * size) / (100_000.0 * (1.0 + mmr))
    cushion = margin_cushion(ex.params, s, 0, 1)
    assert cushion == pytest.approx(expected, rel=1e-12)
    # The exact fall that liquidates it: 10,000 - 100,000 d = 100,000 (1 - d) mmr.
    fall = (10_000.0 - 100_000.0 * mmr) / (100_000.0 * (1.0 - mmr))
    assert 0.09 < cushion < fall


def test_cushions_are_forgotten_when_margin_changes():
    ex = exchange(0.01)
    ex.open([100_000.0, 1.0, 1.0])
    ex.deposit(1, 1_000_000.0)
    ex.step()
    assert ex.state.cushion[0, 1] == np.inf  # no position: no price can liquidate it
    ex.deposit(1, 1.0)
    assert ex.state.cushion[0, 1] == -1.0


@pytest.mark.parametrize("tier", range(6))
def test_cushion_of_a_short_is_exact_within_a_tier(tier):
    """A short's surplus falls at exactly the bound's rate while its notional stays in a tier."""
    ex = exchange(0.05)
    s, p = ex.state, ex.params
    low, high = p.bracket_floor[0, tier], p.bracket_floor[0, tier + 1]
    notional = low + 0.2 * (high - low)  # still in the tier 5% higher
    reference = np.array([100_000.0, 1.0, 1.0])
    s.screen_reference[0] = reference
    set_prices(ex, reference)
    s.pos[0, 1, 0] = -round(notional / (100_000.0 * p.lot_size[0]))
    s.entry[0, 1, 0] = 100_000.0
    mm = notional * p.bracket_mmr[0, tier] - p.bracket_cum[0, tier]
    s.cash[0, 1] = notional + mm + 0.02 * notional
    cushion = margin_cushion(p, s, 0, 1)
    assert 0.015 < cushion < 0.02
    assert not naive_liquidatable(ex, reference * [1.0 + cushion * (1.0 - 1e-9), 1.0, 1.0])
    assert naive_liquidatable(ex, reference * [1.0 + cushion * 1.001, 1.0, 1.0])


accounts = st.fixed_dictionaries(
    {
        "unified": st.booleans(),
        "lots": st.tuples(
            st.one_of(st.just(0), st.integers(-50_000, 50_000)),
            st.one_of(st.just(0), st.integers(-500_000, 500_000)),
            st.one_of(st.just(0), st.integers(0, 10**6)),
        ),
        "entry_moves": st.tuples(st.floats(0.95, 1.05), st.floats(0.95, 1.05)),
        "deposit_share": st.one_of(st.floats(0.0, 0.1), st.floats(0.0, 1.0)),
        "reference": st.tuples(
            st.floats(1_000.0, 200_000.0), st.floats(0.01, 10.0), st.floats(0.5, 1.05)
        ),
        "now": st.tuples(*[st.floats(-1.0, 1.0)] * 3),
        "later": st.tuples(*[st.floats(-1.0, 1.0)] * 3),
        "worst": st.booleans(),
        "screen": st.sampled_from([0.001, 0.01, 0.05, 0.3]),
    }
)


@settings(max_examples=400, deadline=None)
@given(accounts)
def test_a_skipped_account_survives_every_price_the_screen_allows(draw):
    ex = exchange(draw["screen"])
    s, screen = ex.state, draw["screen"]
    reference = np.array(draw["reference"])
    lots = np.array(draw["lots"], np.int64)
    # Against the account: perps against their side, collateral down.
    against = -np.sign(np.append(lots[:2], 1)).astype(float)
    if draw["worst"]:
        # Now on the account's side of the reference and later against it, so
        # the move from now to later is as long as the screen allows.
        now = reference * (1.0 - screen * against * np.abs(draw["now"]))
    else:
        now = reference * (1.0 + screen * np.array(draw["now"]))
    s.screen_reference[0] = reference
    set_prices(ex, now)
    lot = ex.params.lot_size
    entry = reference[:2] * np.array(draw["entry_moves"])
    s.pos[0, 1] = lots if draw["unified"] else np.append(lots[:2], 0)
    s.entry[0, 1, :2] = np.where(lots[:2] != 0, entry, 0.0)
    s.account_kind[0, 1] = UNIFIED if draw["unified"] else CROSS
    notional = float(np.abs(lots[:2] * lot[:2] * entry).sum())
    s.cash[0, 1] = -float((lots[:2] * lot[:2] * entry).sum()) + draw["deposit_share"] * notional
    cushion = margin_cushion(ex.params, s, 0, 1)
    if cushion <= 0.0:
        return  # not screened: the scan checks it every step
    # Any prices whose largest move from the reference is below the cushion (and the screen).
    move = min(cushion, screen) * (1.0 - 1e-9)
    direction = against if draw["worst"] else np.array(draw["later"])
    later = reference * (1.0 + move * direction)
    assert not naive_liquidatable(ex, later)
    set_prices(ex, later)
    assert not is_liquidatable(ex.params, s, 0, 1)


@pytest.mark.parametrize("name, seed", [("calm", 0), ("oct10", 0)])
def test_screened_runs_equal_full_scans(name, seed):
    screened = run(name, seed)
    full = run(name, seed, **{"exchange.margin_screen": 0.0})
    assert screened.timeline.keys() == full.timeline.keys()
    for key, value in screened.timeline.items():
        if isinstance(value, dict):
            for market, series in value.items():
                assert np.array_equal(series, full.timeline[key][market], equal_nan=True), key
        else:
            assert np.array_equal(value, full.timeline[key], equal_nan=True), key


def test_counting_liquidatable_accounts_matches_the_reference():
    from mmgym.bench import margin_exchange
    from mmgym.core.margin import count_liquidatable

    ex = margin_exchange(300, seed=4)
    naive = NaiveExchange(ex.config)
    s = ex.state
    for k, m in enumerate(naive.markets):
        m.mark, m.collateral = float(s.mark_price[0, k]), float(s.collateral_price[0, k])
    expected = 0
    for a in range(1, 301):
        acc = naive.accounts[a]
        acc.cash, acc.kind = float(s.cash[0, a]), int(s.account_kind[0, a])
        acc.pos = [int(p) for p in s.pos[0, a]]
        acc.entry = [float(x) for x in s.entry[0, a]]
        expected += naive.is_liquidatable(acc)
    assert 0 < expected < 300  # random accounts on both sides of their margin
    assert count_liquidatable(ex.params, ex.state, 0) == expected
