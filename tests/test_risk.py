"""Tests for the user-facing risk calculator (mmgym.risk)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mmgym import risk
from mmgym.core.brackets import (
    BTCUSDT_BRACKETS,
    SMALL_ALT_BRACKETS,
    maintenance_amounts,
    tier_of,
)
from mmgym.risk import (
    adl_quantile,
    adl_rank,
    bankruptcy_price,
    initial_margin,
    liquidation_price,
    maintenance_margin,
)


def excess_at(side, qty, entry, wallet, price, brackets=None, other_mm=0.0, other_upnl=0.0):
    """Equity minus maintenance margin of the account when the mark is ``price``."""
    equity = wallet + other_upnl + side * qty * (price - entry)
    return equity - maintenance_margin(qty * price, brackets) - other_mm


# --------------------------------------------------------------------------- examples


def test_module_doctest():
    result = doctest.testmod(risk)
    assert result.attempted > 0 and result.failed == 0


def test_worked_example_isolated_long():
    # MECHANICS.md section 2: (84000 - 8400) / 0.996 = 75,903.61
    lp = liquidation_price(side=1, qty=1, entry_price=84_000, wallet_balance=8_400)
    assert round(lp, 2) == 75_903.61


def test_short_example_by_hand():
    # Short 2 BTC at 50,000 with 10,000 margin (10x); tier 1: MMR 0.4%, cum 0.
    # LP = (2*50000 + 10000) / (2 * 1.004) = 110000 / 2.008 = 54,780.876...
    # LP*Q = 109,561.75 < 300,000 so tier 1 is consistent.
    lp = liquidation_price(side=-1, qty=2, entry_price=50_000, wallet_balance=10_000)
    assert lp == pytest.approx(110_000 / 2.008, rel=1e-12)
    assert round(lp, 2) == 54_780.88
    # BP = 50000 + 10000/2 = 55,000, beyond the LP.
    assert bankruptcy_price(-1, 2, 50_000, 10_000) == 55_000.0


def test_cross_terms_enter_closed_form():
    # Long 1 @ 84,000, WB 8,400, other MM 100, other uPnL -500:
    # LP = (84000 - 8400 - 0 + 100 + 500) / 0.996 = 76200 / 0.996
    lp = liquidation_price(1, 1, 84_000, 8_400, other_mm=100, other_upnl=-500)
    assert lp == pytest.approx(76_200 / 0.996, rel=1e-12)


@pytest.mark.parametrize(
    ("side", "qty", "wallet", "tier", "expected"),
    [
        # Long 100 BTC @ 84,000, 10x: tier 4 (MMR 1%, cum 12,000):
        # LP = (8.4M - 840k - 12k) / (100 * 0.99) = 76,242.42; LP*Q = 7.62M in 3M-12M.
        (1, 100, 840_000, 3, 7_548_000 / 99),
        # Short 1000 BTC @ 84,000, 10x: tier 6 (MMR 2.5%, cum 482,000):
        # LP = (84M + 8.4M + 482k) / (1000 * 1.025) = 90,616.59; LP*Q = 90.6M in 70M-100M.
        (-1, 1000, 8_400_000, 5, 92_882_000 / 1025),
    ],
)
def test_tier_switching(side, qty, wallet, tier, expected):
    lp = liquidation_price(side, qty, 84_000, wallet)
    assert tier_of(lp * qty, BTCUSDT_BRACKETS) == tier
    assert lp == pytest.approx(expected, rel=1e-12)
    equity = wallet + side * qty * (lp - 84_000)
    assert equity == pytest.approx(maintenance_margin(qty * lp), rel=1e-6)


def test_cum_column_matches_reference_table():
    cum = maintenance_amounts(BTCUSDT_BRACKETS)
    expected = [0, 300, 1_500, 12_000, 132_000, 482_000, 2_982_000, 14_482_000]
    np.testing.assert_allclose(cum, expected, rtol=1e-12, atol=1e-6)


@pytest.mark.parametrize("k", range(1, len(BTCUSDT_BRACKETS)))
def test_maintenance_margin_continuous_at_tier_boundaries(k):
    floor = BTCUSDT_BRACKETS[k].floor
    below, at = maintenance_margin(floor * (1 - 1e-12)), maintenance_margin(floor)
    assert below == pytest.approx(at, rel=1e-9)
    # Just below the floor is still priced with the previous tier's rate.
    cum = maintenance_amounts(BTCUSDT_BRACKETS)
    prev = BTCUSDT_BRACKETS[k - 1]
    assert below == pytest.approx(floor * (1 - 1e-12) * prev.mmr - cum[k - 1], rel=1e-12)


def test_maintenance_margin_and_initial_margin_values():
    assert maintenance_margin(0) == 0.0
    assert maintenance_margin(84_000) == pytest.approx(336.0)
    assert maintenance_margin(1_000_000) == pytest.approx(1_000_000 * 0.0065 - 1_500)
    assert maintenance_margin(10_000, brackets=[(0, 50, 0.01)]) == pytest.approx(100.0)
    assert initial_margin(84_000, 10) == 8_400.0
    assert initial_margin(84_000, 1) == 84_000.0


@pytest.mark.parametrize(
    ("notional", "leverage", "expected"),
    [
        (4_000, 20, 200.0),  # 50x bracket: the chosen 20x applies
        (20_000, 50, 1_000.0),  # 20x bracket (5k-25k)
        (200_000, 10, 40_000.0),  # 5x bracket (100k-250k)
        (2_000_000, 3, 2_000_000.0),  # 1x bracket (above 1M)
    ],
)
def test_initial_margin_uses_the_bracket_maximum_leverage(notional, leverage, expected):
    assert initial_margin(notional, leverage, brackets=SMALL_ALT_BRACKETS) == expected


def test_long_that_cannot_be_liquidated_returns_zero():
    # 1x long: margin covers the whole notional, equity at price 0 is 0 = MM(0).
    assert liquidation_price(1, 1, 84_000, 84_000) == 0.0
    assert liquidation_price(1, 1, 84_000, 100_000) == 0.0
    assert bankruptcy_price(1, 1, 84_000, 100_000) == 0.0


def test_short_below_maintenance_everywhere_returns_zero():
    # Cross losses elsewhere exceed the short's whole notional: liquidatable at any price.
    assert liquidation_price(-1, 1, 84_000, 1_000, other_upnl=-200_000) == 0.0


@pytest.mark.parametrize("side", [1, -1])
@pytest.mark.parametrize("other_upnl", [0.0, 1_234.5, -2_000.0])
def test_bankruptcy_is_liquidation_with_zero_mmr(side, other_upnl):
    tiny = [(0.0, 100.0, 1e-12)]
    lp = liquidation_price(side, 3, 84_000, 20_000, brackets=tiny, other_upnl=other_upnl)
    bp = bankruptcy_price(side, 3, 84_000, 20_000, other_upnl=other_upnl)
    assert lp == pytest.approx(bp, rel=1e-9)
    assert bp == pytest.approx(84_000 - side * (20_000 + other_upnl) / 3, rel=1e-12)


# --------------------------------------------------------------------------- properties

sides = st.sampled_from([1, -1])
qtys = st.floats(1e-3, 3_000)
prices = st.floats(10, 200_000)


@settings(max_examples=300, deadline=None)
@given(
    side=sides,
    qty=qtys,
    entry=prices,
    leverage=st.floats(1.0, 150.0),
    other_mm=st.floats(0, 1e6),
    other_upnl=st.floats(-1e6, 1e6),
)
def test_equity_equals_maintenance_at_liquidation_price(
    side, qty, entry, leverage, other_mm, other_upnl
):
    wallet = qty * entry / leverage
    args = (side, qty, entry, wallet)
    lp = liquidation_price(*args, other_mm=other_mm, other_upnl=other_upnl)
    excess = excess_at(*args, lp, other_mm=other_mm, other_upnl=other_upnl)
    scale = wallet + abs(other_upnl) + other_mm + qty * entry
    if lp > 0:
        mm = maintenance_margin(qty * lp) + other_mm
        assert math.isclose(excess + mm, mm, rel_tol=1e-6, abs_tol=1e-9 * scale)
    else:
        # Long: never liquidated; short: already liquidatable at every price.
        assert side * excess >= -1e-9 * scale


@settings(max_examples=300, deadline=None)
@given(side=sides, qty=qtys, entry=prices, leverage=st.floats(1.0, 150.0))
def test_liquidation_price_between_bankruptcy_and_entry(side, qty, entry, leverage):
    wallet = qty * entry / leverage
    # A healthy position: above maintenance at entry (leverage within the tier's limit).
    assume(wallet > maintenance_margin(qty * entry) * (1 + 1e-9))
    lp = liquidation_price(side, qty, entry, wallet)
    bp = bankruptcy_price(side, qty, entry, wallet)
    tol = 1e-9 * entry
    if side == 1:
        assert bp - tol <= lp < entry
    else:
        assert entry < lp <= bp + tol


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(["qty", "entry_price"]),
    bad=st.one_of(st.floats(max_value=0.0), st.sampled_from([math.nan, math.inf, "x", None])),
)
def test_bad_positive_inputs_name_argument(name, bad):
    kwargs = {"side": 1, "qty": 1.0, "entry_price": 84_000.0, "wallet_balance": 8_400.0}
    kwargs[name] = bad
    for func in (liquidation_price, bankruptcy_price):
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            func(**kwargs)


@pytest.mark.parametrize(
    ("func", "kwargs", "name"),
    [
        (liquidation_price, {"side": 0}, "side"),
        (liquidation_price, {"side": 2}, "side"),
        (liquidation_price, {"side": True}, "side"),
        (liquidation_price, {"side": "long"}, "side"),
        (bankruptcy_price, {"side": -2}, "side"),
        (liquidation_price, {"wallet_balance": math.nan}, "wallet_balance"),
        (bankruptcy_price, {"wallet_balance": -math.inf}, "wallet_balance"),
        (liquidation_price, {"other_mm": -1.0}, "other_mm"),
        (liquidation_price, {"other_upnl": math.inf}, "other_upnl"),
        (liquidation_price, {"brackets": [(1.0, 10.0, 0.01)]}, "brackets"),
        (liquidation_price, {"brackets": []}, "brackets"),
    ],
)
def test_bad_inputs_raise_naming_argument(func, kwargs, name):
    base = {"side": 1, "qty": 1.0, "entry_price": 84_000.0, "wallet_balance": 8_400.0}
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        func(**{**base, **kwargs})


def test_bad_margin_inputs():
    with pytest.raises(ValueError, match=r"\bnotional\b.*>= 0"):
        maintenance_margin(-1.0)
    with pytest.raises(ValueError, match=r"\bleverage\b.*>= 1"):
        initial_margin(100.0, 0.5)
    with pytest.raises(ValueError, match=r"\bnotional\b"):
        initial_margin(math.nan, 10)
    with pytest.raises(ValueError, match=r"\bbrackets\b"):
        initial_margin(100.0, 10, brackets=[(0, 0.5, 0.01)])


# --------------------------------------------------------------------------- ADL


@pytest.mark.parametrize(
    ("formula", "side", "qty", "entry", "mark", "wallet", "expected"),
    [
        # Long 1 @ 100, mark 110, WB 20: uPnL 10, equity 30, notional 110.
        # pnl% 0.1, eff. leverage 110/30 -> 0.1 * 110/30
        ("bitmex", 1, 1, 100, 110, 20, 0.1 * 110 / 30),
        # pnl% 10/20 = 0.5; MM = 110 * 0.4% = 0.44; ratio 0.44/30
        ("binance", 1, 1, 100, 110, 20, 0.5 * 0.44 / 30),
        # (110/100) * (110/30)
        ("hyperliquid", 1, 1, 100, 110, 20, 1.1 * 110 / 30),
        # Losing long, mark 90: pnl% -0.1, equity 10, leverage 90/10 = 9 -> -0.1/9
        ("bitmex", 1, 1, 100, 90, 20, -0.1 / 9),
        ("binance", 1, 1, 100, 90, 20, 0.0),
        # Short 2 @ 100, mark 80, WB 50: uPnL 40, equity 90, notional 160.
        ("bitmex", -1, 2, 100, 80, 50, 0.2 * 160 / 90),
        # pnl% 40/50 = 0.8; MM = 160 * 0.4% = 0.64
        ("binance", -1, 2, 100, 80, 50, 0.8 * 0.64 / 90),
        # (100/80) * (160/90)
        ("hyperliquid", -1, 2, 100, 80, 50, 1.25 * 160 / 90),
    ],
)
def test_adl_rank_hand_values(formula, side, qty, entry, mark, wallet, expected):
    assert adl_rank(formula, side, qty, entry, mark, wallet) == pytest.approx(expected, rel=1e-12)


def test_adl_rank_overrides():
    # binance with an explicit MM of 3: 0.5 * 3/30
    assert adl_rank("binance", 1, 1, 100, 110, 20, maintenance_margin=3) == pytest.approx(0.05)
    # hyperliquid with an explicit account value of 55: 1.1 * 110/55
    assert adl_rank("hyperliquid", 1, 1, 100, 110, 20, account_value=55) == pytest.approx(2.2)


def test_adl_rank_non_positive_equity():
    # Long 1 @ 100, mark 50, WB 10: equity -40.
    assert adl_rank("bitmex", 1, 1, 100, 50, 10) == 0.0
    assert adl_rank("binance", 1, 1, 100, 50, 10) == 0.0
    assert adl_rank("hyperliquid", 1, 1, 100, 50, 10) == math.inf
    # Profitable but cross losses make equity <= 0 (wallet already negative).
    assert adl_rank("bitmex", 1, 1, 100, 110, -20) == math.inf


@pytest.mark.parametrize("formula", ["bitmex", "binance", "hyperliquid"])
@pytest.mark.parametrize("side", [1, -1])
def test_more_profit_or_leverage_ranks_higher(formula, side):
    # Positions are ranked at one moment, so compare at the same mark.
    mark = 100.0
    entry, better_entry = mark / (1 + side * 0.05), mark / (1 + side * 0.10)
    # The hyperliquid default account value includes the profit, which lowers
    # notional/account_value as profit grows; hold it fixed to isolate the PnL term.
    extra = {"account_value": 250.0} if formula == "hyperliquid" else {}
    base = adl_rank(formula, side, 10, entry, mark, 200, **extra)
    assert adl_rank(formula, side, 10, better_entry, mark, 200, **extra) > base
    # Less margin behind the same position means more leverage.
    base = adl_rank(formula, side, 10, entry, mark, 200)
    assert adl_rank(formula, side, 10, entry, mark, 100) > base


def test_adl_rank_bad_inputs():
    with pytest.raises(ValueError, match="bitmex, binance, hyperliquid"):
        adl_rank("bybit", 1, 1, 100, 110, 20)
    with pytest.raises(ValueError, match=r"\bmark_price\b"):
        adl_rank("bitmex", 1, 1, 100, 0, 20)
    with pytest.raises(ValueError, match=r"\bside\b"):
        adl_rank("bitmex", 0, 1, 100, 110, 20)
    with pytest.raises(ValueError, match=r"\bmaintenance_margin\b"):
        adl_rank("binance", 1, 1, 100, 110, 20, maintenance_margin=-1)
    with pytest.raises(ValueError, match=r"\baccount_value\b"):
        adl_rank("hyperliquid", 1, 1, 100, 110, 20, account_value=math.nan)
    # Every argument given is checked, whichever formula reads it.
    with pytest.raises(ValueError, match=r"\bmaintenance_margin\b"):
        adl_rank("bitmex", 1, 1, 100, 110, 20, maintenance_margin=-5)
    with pytest.raises(ValueError, match=r"\baccount_value\b"):
        adl_rank("bitmex", 1, 1, 100, 110, 20, account_value="abc")
    with pytest.raises(ValueError, match=r"\bbrackets\b"):
        adl_rank("binance", 1, 1, 100, 110, 20, maintenance_margin=1, brackets=[(0, 10, 5.0)])


def test_numbers_only_not_booleans_or_text():
    with pytest.raises(ValueError, match=r"\bnotional\b"):
        maintenance_margin("1e3")
    with pytest.raises(ValueError, match=r"\bqty\b"):
        liquidation_price(1, True, 84_000.0, 8_400.0)
    with pytest.raises(ValueError, match=r"\bleverage\b"):
        initial_margin(100.0, "10")
    with pytest.raises(ValueError, match="ranks must be numbers"):
        adl_quantile([1.0, "2"])
    with pytest.raises(ValueError, match="overflows"):
        liquidation_price(1, 1e308, 1e308, 1.0)


def test_adl_quantile_ten_distinct_ranks():
    ranks = np.random.default_rng(0).permutation(np.linspace(-1, 5, 10))
    lights = adl_quantile(ranks)
    assert lights.dtype.kind == "i"
    assert np.bincount(lights, minlength=5).tolist() == [2, 2, 2, 2, 2]
    assert lights[np.argmax(ranks)] == 4 and lights[np.argmin(ranks)] == 0
    # Order-preserving: a higher rank never shows fewer lights.
    order = np.argsort(ranks)
    assert np.all(np.diff(lights[order]) >= 0)


def test_adl_quantile_ties_and_edges():
    # Tied ranks are all first in line; a lone position is first in line.
    assert adl_quantile([3.0, 3.0, 3.0]).tolist() == [4, 4, 4]
    assert adl_quantile([1.0, 2.0, 2.0, 2.0, 2.0]).tolist() == [0, 4, 4, 4, 4]
    assert adl_quantile([7.0]).tolist() == [4]
    assert adl_quantile([]).tolist() == []
    assert adl_quantile([0.0, math.inf]).tolist() == [2, 4]
    assert adl_quantile([1.0, 2.0, 3.0, 4.0]).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="NaN"):
        adl_quantile([1.0, math.nan])
    with pytest.raises(ValueError, match="one-dimensional"):
        adl_quantile([[1.0, 2.0]])
