"""The thin alt's depth figures against hand-computed cases."""

import math

import numpy as np
import pytest

from mmgym.scenario import load_scenario
from mmgym.scenario.criteria import oct10_criteria
from mmgym.scenario.summary import depth_figures, stylised_facts, summarise


def test_depth_reads_minute_means_at_one_second_steps():
    # Minute 0 full; minute 1 full but for one empty second; minute 2 thin;
    # minutes 3 and 4 refill.
    depth = np.concatenate(
        [
            np.full(60, 100.0),
            [0.0],
            np.full(59, 100.0),
            np.full(60, 10.0),
            np.full(60, 50.0),
            np.full(60, 90.0),
        ]
    )
    out = depth_figures(depth, depth_pre=100.0, start=60, major_low_step=130, dt=1.0)
    assert out["alt_depth_drop"] == pytest.approx(0.9)  # minute 2's mean, 10
    assert out["alt_depth_drop_1s"] == 1.0  # the empty second
    assert out["depth_low_minute"] == 2.0
    # From minute 2 (the low's): 10, 50, then 90 >= 80 two minutes on.
    assert out["depth_recovery_minutes"] == 2.0


def test_depth_steps_longer_than_a_minute_are_read_as_they_are():
    depth = np.array([100.0, 100.0, 5.0, 90.0])
    out = depth_figures(depth, depth_pre=100.0, start=1, major_low_step=2, dt=120.0)
    assert out["alt_depth_drop"] == pytest.approx(0.95)
    assert out["alt_depth_drop_1s"] == pytest.approx(0.95)
    assert out["depth_low_minute"] == 4.0
    assert out["depth_recovery_minutes"] == 2.0


def test_depth_that_never_recovers_or_never_existed():
    depth = np.concatenate([np.full(60, 100.0), np.full(120, 70.0)])
    out = depth_figures(depth, depth_pre=100.0, start=60, major_low_step=60, dt=1.0)
    assert out["depth_recovery_minutes"] == math.inf
    empty = depth_figures(np.zeros(120), depth_pre=0.0, start=60, major_low_step=60, dt=1.0)
    assert math.isnan(empty["alt_depth_drop"]) and math.isnan(empty["alt_depth_drop_1s"])


def test_depth_of_a_run_shorter_than_a_minute_is_one_partial_minute():
    depth = np.array([100.0, 40.0, 70.0, 90.0])
    out = depth_figures(depth, depth_pre=100.0, start=1, major_low_step=1, dt=1.0)
    assert out["alt_depth_drop"] == pytest.approx(0.25)  # the mean of all four steps, 75
    assert out["alt_depth_drop_1s"] == pytest.approx(0.6)
    assert out["depth_recovery_minutes"] == math.inf


def _timeline(steps):
    """A hand-made oct10-shaped timeline: every summary figure is known in advance."""
    markets = ("BTCUSDT", "ALTUSDT", "USDEUSDT")
    t = {key: {m: np.zeros(steps) for m in markets} for key in PER_MARKET}
    ramp = lambda a, b, lo, hi: np.interp(np.arange(steps), [a, b], [lo, hi])  # noqa: E731
    # The shock starts at step 3000; the major's low is 12% at step 3960 (minute 66).
    t["last"]["BTCUSDT"] = np.where(np.arange(steps) <= 3960, ramp(3000, 3960, 100.0, 88.0), 95.0)
    t["last"]["ALTUSDT"] = np.where(np.arange(steps) == 4100, 0.9, 2.0)  # -55% wick
    t["last"]["USDEUSDT"] = np.where(np.arange(steps) >= 6000, 0.6, 1.0)  # its book -40%
    # Alt depth: 1M before, 50k from minute 66 to 85, 900k from minute 86.
    depth = np.full(steps, 1e6)
    depth[3960:5160] = 5e4
    depth[5160:] = 9e5
    t["depth_1pct"]["ALTUSDT"] = depth
    t["depth_1pct"]["BTCUSDT"] = np.full(steps, 5e7)
    # Perp liquidations: shorts 1e5 a step at steps 10-109, longs 1e6 a step at
    # 3600-3899; the collateral's 5e5 a step at 5000-5009 is a sale, not a position.
    t["liq_notional_short"]["BTCUSDT"][10:110] = 1e5
    t["liq_notional_long"]["ALTUSDT"][3600:3900] = 1e6
    t["liq_notional_long"]["USDEUSDT"][5000:5010] = 5e5
    for m in markets:
        t["liq_count"][m] = (t["liq_notional_long"][m] + t["liq_notional_short"][m] > 0) * 1.0
    t["adl_notional"]["BTCUSDT"][3700:3710] = 2e5
    t["adl_count"]["BTCUSDT"][3700:3710] = 1.0
    t["takeover_notional"]["BTCUSDT"][3650] = 1e5
    t["open_interest"]["BTCUSDT"] = np.where(np.arange(steps) < 4000, 1e8, 6e7)
    t["open_interest"]["USDEUSDT"] = np.full(steps, 9e9)  # spot: not open interest
    # The margin price of the collateral: 0.7 at step 3500, before the low, 0.8 later.
    coll = np.ones(steps)
    coll[3500] = 0.7
    coll[6000:] = 0.8
    t["collateral_price"]["USDEUSDT"] = coll
    t["insurance_fund"] = np.where(np.arange(steps) < 3700, 2e6, 1e6)
    t["fund_utilisation_at_adl"] = np.where(t["adl_count"]["BTCUSDT"] > 0, 0.995, np.nan)
    t["socialised_loss"] = np.where(np.arange(steps) < 5000, 0.0, 1234.0)
    t["mm_quoting"] = np.select(
        [np.arange(steps) < 3600, np.arange(steps) < 4200], [1.0, 0.0], default=0.5
    )
    return t


PER_MARKET = (
    "last",
    "depth_1pct",
    "liq_notional_long",
    "liq_notional_short",
    "liq_count",
    "adl_notional",
    "adl_count",
    "takeover_notional",
    "open_interest",
    "collateral_price",
)


def test_every_summary_figure_of_a_hand_made_timeline():
    scenario = load_scenario("oct10")
    out = summarise(scenario, _timeline(scenario.steps))
    expected = {
        "major_drop": 0.12,
        "major_low_minute": 66.0,
        "alt_drop": 0.55,
        "alt_depth_pre": 1e6,
        "alt_depth_drop": 0.95,
        "alt_depth_drop_1s": 0.95,
        "depth_recovery_minutes": 20.0,  # minute 66 to minute 86
        "depth_low_minute": 66.0,
        "liq_notional_long": 3e8,
        "liq_notional_short": 1e7,
        "liq_long_short_ratio": 30.0,
        # Longs lie within 40 minutes; shorts are 58 minutes before them.
        "liq_share_densest_40min": 3e8 / 3.1e8,
        "liq_share_peak_minute": 6e7 / 3.1e8,
        "liq_count": 400.0,
        "collateral_sold_notional": 5e6,
        "collateral_sold_count": 10.0,
        "adl_notional": 2e6,
        "adl_count": 10.0,
        "first_adl_minute": 3700 / 60,
        "fund_utilisation_at_adl": 0.995,
        "first_takeover_minute": 3650 / 60,
        "fund_drawdown": 0.5,
        "socialised_loss": 1234.0,
        "open_interest_drop": 0.4,
        "liq_densest_hour_of_oi": 3.0,  # the longs' 3e8 against 1e8 of open interest
        "collateral_depeg": 0.3,  # at step 3500, before the low: the criterion sees it
        "collateral_depeg_minute": 3500 / 60,
        "collateral_book_depeg": 0.4,
        "mm_quoting_min": 0.0,
        "mm_all_away_share": 0.1,  # 600 of the 6,000 steps from the shock
    }
    assert set(out) == set(expected) | {
        "excess_kurtosis",
        "max_abs_autocorr",
        "min_abs_return_autocorr",
    }
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, rel=1e-12), key
    # 150 one-minute returns: too few for the stylised facts.
    assert math.isnan(out["excess_kurtosis"])
    rows = oct10_criteria(out, None, None)
    assert rows[7].holds is False  # the depeg came before the market low


def _plain_acf(x, lag):
    x = [v - sum(x) / len(x) for v in x]
    return sum(x[i] * x[i + lag] for i in range(len(x) - lag)) / sum(v * v for v in x)


def test_stylised_facts_against_plain_formulas():
    # A GARCH(1,1) path of 2,000 one-minute returns, sampled at 1 s steps.
    rng = np.random.default_rng(7)
    r, var = np.zeros(2000), 1e-6
    for i in range(2000):
        r[i] = math.sqrt(var) * rng.standard_normal()
        var = 1e-7 + 0.1 * r[i] ** 2 + 0.85 * var
    minute_prices = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    prices = np.repeat(minute_prices, 60)
    out = stylised_facts(prices, 1.0)
    n = len(r)
    mean = sum(r) / n
    m2 = sum((x - mean) ** 2 for x in r) / n
    m4 = sum((x - mean) ** 4 for x in r) / n
    assert out["excess_kurtosis"] == pytest.approx(m4 / m2**2 - 3.0, rel=1e-9)
    returns = list(np.diff(np.log(minute_prices)))
    acfs = [_plain_acf(returns, lag) for lag in range(1, 6)]
    abs_acfs = [_plain_acf([abs(x) for x in returns], lag) for lag in range(1, 6)]
    assert out["max_abs_autocorr"] == pytest.approx(max(abs(a) for a in acfs), rel=1e-9)
    assert out["min_abs_return_autocorr"] == pytest.approx(min(abs_acfs), rel=1e-9)
    # An AR(1) with coefficient 0.3 shows it at lag 1.
    ar = np.zeros(3000)
    for i in range(1, 3000):
        ar[i] = 0.3 * ar[i - 1] + 1e-3 * rng.standard_normal()
    out = stylised_facts(np.repeat(100.0 * np.exp(np.cumsum(ar)), 60), 1.0)
    assert out["max_abs_autocorr"] == pytest.approx(0.3, abs=0.05)
