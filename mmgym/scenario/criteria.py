"""The shape criteria a scenario is judged by (OCT10.md), and their checks.

Each criterion pairs a published figure with the simulated one and says
whether the shape holds. The ``oct10`` criteria compare the default run with
two counterfactual runs of the same seed: conversion-ratio collateral pricing
and market-maker obligations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .summary import MIN_RETURNS


class Criterion(NamedTuple):
    """One row of the calibration table; ``holds`` is None when the run is too short
    to tell or lacks the market the row reads (``verdict`` gives the word the CLI
    and the report print)."""

    name: str
    published: str
    simulated: str
    holds: bool | None

    @property
    def verdict(self) -> str:
        """``ok``, ``NO`` or ``n/a``."""
        return "n/a" if self.holds is None else ("ok" if self.holds else "NO")


def _pct(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{round(100 * x, 1) + 0.0:.1f}%"  # + 0.0 turns a rounded -0.0 into 0.0


# What a row reads from a market a scenario may lack: (a summary key it brings, the
# cell when it is missing).
ALT = ("alt_drop", "n/a (no thin alt perpetual)")
COLLATERAL = ("collateral_depeg", "n/a (no collateral spot market)")


def _row(name, published, needs, runs, simulated, holds) -> Criterion:
    """A criterion read from ``simulated()`` and ``holds()``, n/a when a run lacks the
    market it reads (``needs``: ``ALT`` or ``COLLATERAL``)."""
    key, missing = needs
    if any(key not in r for r in runs):
        return Criterion(name, published, missing, None)
    return Criterion(name, published, simulated(), holds())


def oct10_criteria(base: dict, conversion: dict | None, obliged: dict | None) -> list[Criterion]:
    """Criteria of the ``oct10`` scenario from the summaries of its runs."""
    b = (base,)
    rows = [
        _row(
            "thin alt 1% depth (one-minute mean) falls >= 90% at the trough",
            "-98% ($1.2M -> $27k)",
            ALT,
            b,
            lambda: (
                f"{_pct(-base['alt_depth_drop'])} (per second {_pct(-base['alt_depth_drop_1s'])})"
            ),
            lambda: base["alt_depth_drop"] >= 0.90,
        ),
        _row(
            "depth (one-minute mean) back to >= 80% within 60 min of the market low",
            "most of it within tens of minutes",
            ALT,
            b,
            lambda: f"{base['depth_recovery_minutes']:.0f} min",
            lambda: base["depth_recovery_minutes"] <= 60.0,
        ),
        Criterion(
            "major falls 8-25%",
            "BTC -14% (122,574 -> 104,783)",
            _pct(-base["major_drop"]),
            0.08 <= base["major_drop"] <= 0.25,
        ),
        _row(
            "thin alt falls >= 50% at its trough",
            "alts -63% on average, ~200 coins > -80%",
            ALT,
            b,
            lambda: _pct(-base["alt_drop"]),
            lambda: base["alt_drop"] >= 0.50,
        ),
        Criterion(
            "long liquidations >= 4x short",
            "$16.7B / $2.5B = 6.7x",
            f"{base['liq_long_short_ratio']:.1f}x",
            base["liq_long_short_ratio"] >= 4.0,
        ),
        Criterion(
            ">= 50% of liquidation notional in the densest 40 min",
            "70% within 40 min",
            _pct(base["liq_share_densest_40min"]),
            (
                None
                if math.isnan(base["liq_share_densest_40min"])
                else base["liq_share_densest_40min"] >= 0.5
            ),
        ),
        Criterion(
            "ADL only once the fund has hit its takeover limit",
            "ADL after liquidations drained the fund",
            (
                "no ADL"
                if base["adl_count"] == 0
                else f"fund use at ADL {_pct(base['fund_utilisation_at_adl'])}, "
                f"first takeover min {base['first_takeover_minute']:.0f}, "
                f"first ADL min {base['first_adl_minute']:.0f}"
            ),
            base["adl_count"] == 0 or base["fund_utilisation_at_adl"] >= 0.99,
        ),
        _row(
            "internal-book collateral depegs >= 20% after the price low",
            "USDe 0.6567 (-34%), 21:36-22:16, after the 21:20 low",
            COLLATERAL,
            b,
            lambda: (
                f"{_pct(-base['collateral_depeg'])} at min {base['collateral_depeg_minute']:.0f} "
                f"(major low min {base['major_low_minute']:.0f})"
            ),
            lambda: (
                base["collateral_depeg"] >= 0.20
                and base["collateral_depeg_minute"] >= base["major_low_minute"]
            ),
        ),
        Criterion(
            "open interest drops 20-60%",
            "BTC -17%, alts > -50%, DEX perps -46%",
            _pct(-base["open_interest_drop"]),
            0.20 <= base["open_interest_drop"] <= 0.60,
        ),
    ]
    if conversion is not None:
        rows.append(_conversion_row(base, conversion))
    if obliged is not None:
        rows.append(
            _row(
                "obligations: smaller depth trough and alt drop",
                "(counterfactual: TradFi obligations)",
                ALT,
                (base, obliged),
                lambda: (
                    f"depth {_pct(-obliged['alt_depth_drop'])} vs "
                    f"{_pct(-base['alt_depth_drop'])} (per second "
                    f"{_pct(-obliged['alt_depth_drop_1s'])} vs "
                    f"{_pct(-base['alt_depth_drop_1s'])}), "
                    f"alt {_pct(-obliged['alt_drop'])} vs {_pct(-base['alt_drop'])}"
                ),
                lambda: (
                    obliged["alt_depth_drop"] < base["alt_depth_drop"]
                    and obliged["alt_drop"] < base["alt_drop"]
                ),
            )
        )
    return rows


class Figure(NamedTuple):
    """A published figure of OCT10.md that no criterion judges, beside the simulated one."""

    name: str
    published: str
    simulated: str


def oct10_figures(base: dict) -> list[Figure]:
    """OCT10.md's other magnitudes, for the reader to compare (no verdict)."""
    perps = base["liq_notional_long"] + base["liq_notional_short"]
    if base["adl_count"] == 0:
        adl_after = "no ADL"
    elif math.isinf(base["first_takeover_minute"]):
        adl_after = "ADL without a takeover"
    else:
        adl_after = f"{(base['first_adl_minute'] - base['first_takeover_minute']) * 60.0:.0f} s"
    collateral = COLLATERAL[1]
    if COLLATERAL[0] in base:
        collateral = f"${base['collateral_sold_notional'] / 1e6:.1f}M"
    return [
        Figure(
            "liquidations in the peak minute",
            "$3.21B of $19.13B in 60 s (17%)",
            _pct(base["liq_share_peak_minute"]),
        ),
        Figure(
            "insurance fund drawdown", "Binance -$188M (about -15%)", _pct(-base["fund_drawdown"])
        ),
        Figure(
            "ADL notional over perp liquidations",
            "Hyperliquid $2.10B vs $5.51B in 12 min (38%)",
            _pct(base["adl_notional"] / perps) if perps > 0 else "n/a",
        ),
        Figure(
            "first ADL after the first takeover",
            "Hyperliquid: first ADL 61.7 s after its first liquidation",
            adl_after,
        ),
        Figure(
            "collateral sold by liquidations (spot)",
            "no total published (Binance compensated ~$283M of depeg losses)",
            collateral,
        ),
    ]


def _total_liquidations(run: dict) -> float:
    """Perpetual positions and collateral sold by liquidations (USDT)."""
    return run["liq_notional_long"] + run["liq_notional_short"] + run["collateral_sold_notional"]


def _conversion_row(base: dict, conversion: dict) -> Criterion:
    """Conversion pricing against the reference run. Margins then price the collateral
    at its conversion value, which the index sets; its book is shown beside it, as
    sellers still reach it."""
    base_liq, conv_liq = _total_liquidations(base), _total_liquidations(conversion)
    base_perp = base["liq_notional_long"] + base["liq_notional_short"]
    conv_perp = conversion["liq_notional_long"] + conversion["liq_notional_short"]
    return _row(
        "conversion pricing: collateral within 5%, fewer liquidations",
        "other venues' USDe stayed >= $0.90",
        COLLATERAL,
        (base, conversion),
        lambda: (
            f"margin price {_pct(-conversion['collateral_depeg'])} (its book "
            f"{_pct(-conversion['collateral_book_depeg'])}); liquidations "
            f"{conv_liq / 1e6:.1f}M vs {base_liq / 1e6:.1f}M (perps {conv_perp / 1e6:.1f}M "
            f"vs {base_perp / 1e6:.1f}M)"
        ),
        lambda: conversion["collateral_depeg"] <= 0.05 and conv_liq < base_liq,
    )


MIN_LIQUIDATIONS_FOR_SIDES = 10
# The stylised facts of 1-minute returns: (name, published, summary key, bound, sign).
STYLISED_FACTS = (
    ("1-min returns: excess kurtosis > 3", "heavy tails", "excess_kurtosis", 3.0, 1),
    (
        "1-min returns: |autocorrelation| < 0.1 at lags 1-5",
        "no linear predictability",
        "max_abs_autocorr",
        0.1,
        -1,
    ),
    (
        "|returns| positively autocorrelated at lags 1-5",
        "volatility clustering",
        "min_abs_return_autocorr",
        0.0,
        1,
    ),
)
MAX_CALM_HOURLY_LIQUIDATIONS = 0.05  # of open interest; oct10 liquidates about half in an hour


def calm_criteria(base: dict) -> list[Criterion]:
    """Criteria of a calm run: no cascade, stylised facts of returns."""
    liq = base["liq_notional_long"] + base["liq_notional_short"]
    ratio = base["liq_long_short_ratio"]
    # A handful of liquidations cannot show a side; a cascade has hundreds.
    few = base["liq_count"] < MIN_LIQUIDATIONS_FOR_SIDES
    two_sided = few or (base["liq_notional_short"] > 0 and 0.2 <= ratio <= 5.0)
    small = base["liq_densest_hour_of_oi"] <= MAX_CALM_HOURLY_LIQUIDATIONS
    return [
        Criterion(
            "no cascade: no ADL; liquidations small (densest hour <= "
            f"{MAX_CALM_HOURLY_LIQUIDATIONS:.0%} of open interest) and two-sided "
            f"(sides from {MIN_LIQUIDATIONS_FOR_SIDES} on)",
            "(calm market)",
            f"ADL {base['adl_count']:.0f}; {liq / 1e6:.2f}M in {base['liq_count']:.0f}, "
            f"densest hour {_pct(base['liq_densest_hour_of_oi'])} of OI, "
            f"long/short {ratio:.1f}x",
            base["adl_count"] == 0 and two_sided and small,
        ),
    ] + [_fact(base, *fact) for fact in STYLISED_FACTS]


def _fact(base, name, published, key, bound, sign) -> Criterion:
    """A stylised fact: ``base[key]`` above ``bound`` (``sign`` 1) or below it (-1); None
    when the run had too few returns to measure it (``summary.MIN_RETURNS``)."""
    value = base[key]
    if math.isnan(value):
        return Criterion(name, published, f"n/a (fewer than {MIN_RETURNS} returns)", None)
    return Criterion(name, published, f"{value:.3f}", sign * (value - bound) > 0)
