"""The shape criteria at their thresholds: each holds on the boundary and fails just past it."""

import math

import pytest

from mmgym.scenario.criteria import calm_criteria, oct10_criteria, oct10_figures

# A run that meets every oct10 criterion with no room to spare.
OCT10_EDGE = {
    "alt_depth_drop": 0.90,
    "alt_depth_drop_1s": 1.0,
    "depth_recovery_minutes": 60.0,
    "major_drop": 0.08,
    "alt_drop": 0.50,
    "liq_long_short_ratio": 4.0,
    "liq_share_densest_40min": 0.50,
    "adl_count": 5.0,
    "fund_utilisation_at_adl": 0.99,
    "first_takeover_minute": 52.0,
    "first_adl_minute": 53.0,
    "collateral_depeg": 0.20,
    "collateral_depeg_minute": 70.0,
    "major_low_minute": 70.0,
    "open_interest_drop": 0.20,
    "liq_notional_long": 8e6,
    "liq_notional_short": 2e6,
    "collateral_sold_notional": 1e6,
}
# Fewer liquidations in all (perps and collateral sold), though more of perps.
CONVERSION_EDGE = {
    "collateral_depeg": 0.05,
    "collateral_book_depeg": 0.15,
    "liq_notional_long": 8.5e6,
    "liq_notional_short": 2e6,
    "collateral_sold_notional": 0.49e6,
}
OBLIGED_EDGE = {
    "alt_depth_drop": 0.5,
    "alt_depth_drop_1s": 0.9,
    "alt_drop": 0.3,
}  # below the base run's

# (row, which run, change) that each break exactly one criterion.
OCT10_BREAKS = [
    (0, "base", {"alt_depth_drop": 0.8999}),
    (1, "base", {"depth_recovery_minutes": 60.5}),
    (2, "base", {"major_drop": 0.0799}),
    (2, "base", {"major_drop": 0.2501}),
    (3, "base", {"alt_drop": 0.4999}),
    (4, "base", {"liq_long_short_ratio": 3.99}),
    (5, "base", {"liq_share_densest_40min": 0.4999}),
    (6, "base", {"fund_utilisation_at_adl": 0.9899}),
    (7, "base", {"collateral_depeg": 0.1999}),
    (7, "base", {"collateral_depeg_minute": 69.9}),
    (8, "base", {"open_interest_drop": 0.1999}),
    (8, "base", {"open_interest_drop": 0.6001}),
    (9, "conversion", {"collateral_depeg": 0.0501}),
    (9, "conversion", {"collateral_sold_notional": 0.5e6}),
    (10, "obliged", {"alt_depth_drop": 0.90}),  # as deep as without obligations
    (10, "obliged", {"alt_drop": 0.50}),
]


def _holds(rows):
    return [row.holds for row in rows]


def test_oct10_criteria_hold_on_their_boundaries():
    rows = oct10_criteria(OCT10_EDGE, CONVERSION_EDGE, OBLIGED_EDGE)
    assert _holds(rows) == [True] * 11
    upper = {**OCT10_EDGE, "major_drop": 0.25, "open_interest_drop": 0.60, "adl_count": 0.0}
    assert all(_holds(oct10_criteria(upper, CONVERSION_EDGE, OBLIGED_EDGE)))


@pytest.mark.parametrize("row, run, change", OCT10_BREAKS)
def test_each_oct10_criterion_fails_just_past_its_threshold(row, run, change):
    runs = {"base": OCT10_EDGE, "conversion": CONVERSION_EDGE, "obliged": OBLIGED_EDGE}
    runs[run] = {**runs[run], **change}
    holds = _holds(oct10_criteria(runs["base"], runs["conversion"], runs["obliged"]))
    assert holds == [i != row for i in range(11)]


CALM_EDGE = {
    "adl_count": 0.0,
    "liq_notional_long": 1e5,
    "liq_notional_short": 1e5,
    "liq_long_short_ratio": 1.0,
    "liq_count": 20.0,
    "liq_densest_hour_of_oi": 0.05,
    "excess_kurtosis": 3.0001,
    "max_abs_autocorr": 0.0999,
    "min_abs_return_autocorr": 1e-6,
}
CALM_BREAKS = [
    (0, {"adl_count": 1.0}),
    (0, {"liq_long_short_ratio": 5.01}),
    (0, {"liq_long_short_ratio": 0.199}),
    (0, {"liq_notional_short": 0.0, "liq_long_short_ratio": math.inf}),
    (0, {"liq_densest_hour_of_oi": 0.0501}),
    (1, {"excess_kurtosis": 3.0}),
    (2, {"max_abs_autocorr": 0.1}),
    (3, {"min_abs_return_autocorr": 0.0}),
]


def test_rows_without_their_market_are_not_judged():
    """A shocked scenario without a thin alt or a collateral market: those rows are n/a."""
    left_out = ("alt_", "depth_", "collateral_depeg")  # what the summary leaves out
    no_markets = {k: v for k, v in OCT10_EDGE.items() if not k.startswith(left_out)}
    conversion = {k: v for k, v in CONVERSION_EDGE.items() if not k.startswith("collateral_")}
    rows = oct10_criteria(no_markets, {**conversion, "collateral_sold_notional": 0.0}, {})
    assert [row.verdict for row in rows] == ["n/a", "n/a", "ok", "n/a", "ok", "ok", "ok", "n/a"] + [
        "ok",
        "n/a",
        "n/a",
    ]
    assert rows[0].simulated == "n/a (no thin alt perpetual)"
    assert rows[7].simulated == "n/a (no collateral spot market)"


def test_a_run_shorter_than_40_minutes_has_no_densest_40_minutes():
    rows = oct10_criteria({**OCT10_EDGE, "liq_share_densest_40min": math.nan}, None, None)
    assert rows[5].verdict == "n/a"


def test_calm_criteria_hold_on_their_boundaries():
    assert _holds(calm_criteria(CALM_EDGE)) == [True] * 4
    for ratio in (0.2, 5.0):
        assert all(_holds(calm_criteria({**CALM_EDGE, "liq_long_short_ratio": ratio})))
    # Fewer than ten liquidations cannot show a side.
    few = {**CALM_EDGE, "liq_count": 9.0, "liq_notional_short": 0.0, "liq_long_short_ratio": 50.0}
    assert all(_holds(calm_criteria(few)))


def test_stylised_facts_of_a_run_too_short_are_not_judged():
    short = {**CALM_EDGE, **dict.fromkeys(("excess_kurtosis", "max_abs_autocorr"), math.nan)}
    rows = calm_criteria({**short, "min_abs_return_autocorr": math.nan})
    assert _holds(rows) == [True, None, None, None]
    assert [row.verdict for row in rows] == ["ok", "n/a", "n/a", "n/a"]
    assert rows[1].simulated == "n/a (fewer than 1440 returns)"


@pytest.mark.parametrize("row, change", CALM_BREAKS)
def test_each_calm_criterion_fails_just_past_its_threshold(row, change):
    assert _holds(calm_criteria({**CALM_EDGE, **change})) == [i != row for i in range(4)]


def test_the_other_figures_say_when_there_was_no_adl_or_no_takeover():
    base = {
        **OCT10_EDGE,
        "liq_share_peak_minute": 0.2,
        "fund_drawdown": 0.5,
        "adl_notional": 1e6,
        "collateral_sold_notional": 2e6,
    }
    first_adl = {f.name: f.simulated for f in oct10_figures(base)}
    assert first_adl["first ADL after the first takeover"] == "60 s"
    assert first_adl["ADL notional over perp liquidations"] == "10.0%"
    no_takeover = oct10_figures({**base, "first_takeover_minute": math.inf})
    assert no_takeover[3].simulated == "ADL without a takeover"
    assert oct10_figures({**base, "adl_count": 0.0})[3].simulated == "no ADL"
    no_collateral = {k: v for k, v in base.items() if not k.startswith("collateral_depeg")}
    assert oct10_figures(no_collateral)[4].simulated == "n/a (no collateral spot market)"
