"""Summary figures of a scenario timeline (price and depth troughs, liquidations, ...).

Roles of markets: the first market is the major; the thin alt is the
perpetual other than the major with the least pre-shock 1% depth; the
collateral market is the first spot market. The pre-shock level of a series
is its median over the ten minutes before the first shock (over the first
tenth of the run when no shock falls within it).

The thin alt's depth criteria read its 1% depth as one-minute means, the way
published depth series are sampled: at one-second steps a single sweep that
empties a side between two requotes reads as a -100% trough, however briefly
the book stayed empty. ``alt_depth_drop_1s`` keeps the per-step trough.
"""

from __future__ import annotations

import math

import numpy as np

WINDOW_40_MIN = 2400  # seconds
WINDOW_HOUR = 3600  # seconds


def _pre(series, lo, hi):
    return float(np.nanmedian(series[lo:hi]))


def market_roles(scenario, timeline, pre) -> dict:
    """Names of the major, the thin alt (or None) and the collateral market (or None)."""
    markets = scenario.exchange.markets
    major = markets[0].name
    alts = [m.name for m in markets[1:] if m.kind == "perp"]
    alt = min(alts, key=lambda n: _pre(timeline["depth_1pct"][n], *pre)) if alts else None
    spots = [m.name for m in markets if m.kind == "spot"]
    return {"major": major, "alt": alt, "collateral": spots[0] if spots else None}


def first_shock(scenario) -> int | None:
    """The first step a shock starts within the run, or None."""
    starts = [s.start for s in scenario.population.shocks if s.start < scenario.steps]
    return min(starts) if starts else None


def shock_window(scenario) -> tuple[int, int]:
    """(first shocked step, pre-shock window start)."""
    start = first_shock(scenario)
    if start is not None:
        return start, max(0, start - round(600.0 / scenario.dt))
    return max(scenario.steps // 10, 1), 0  # no shock within the run: its first tenth


def _densest_window(series, seconds, dt):
    """Largest sum of ``series`` over any window of ``seconds`` (the whole run if shorter)."""
    if series.sum() <= 0:
        return 0.0
    window = min(int(round(seconds / dt)), len(series))
    return float(np.convolve(series, np.ones(window), mode="valid").max())


# A day of 1-minute returns: over fewer, the sample autocorrelation alone scatters by
# about +-0.06 with clustered volatility (README, calm_full), and kurtosis more.
MIN_RETURNS = 1440


def steps_per_minute(dt) -> int:
    """Steps of ``dt`` seconds in a minute (1 for a step of a minute or more)."""
    return max(int(round(60.0 / dt)), 1)


def _minute_means(series, per_minute):
    """Mean of ``series`` over bins of ``per_minute`` steps, the last one possibly partial."""
    starts = np.arange(0, len(series), per_minute)
    return np.add.reduceat(series, starts) / np.diff(np.append(starts, len(series)))


def _trough(series, start):
    """Lowest value from ``start`` on, and its step."""
    tail = np.where(np.isnan(series[start:]), np.inf, series[start:])
    i = int(np.argmin(tail))
    return float(tail[i]), start + i


def depth_figures(depth, depth_pre, start, major_low_step, dt) -> dict:
    """The thin alt's depth trough (one-minute means and per step) and its recovery.

    Recovery is the number of minutes from the minute of the market low (the
    major's, as in OCT10.md's timeline) to the first minute whose mean is back
    to 80% of the pre-shock level.
    """
    per_minute = steps_per_minute(dt)
    minutes = _minute_means(depth, per_minute)
    minute_len = per_minute * dt / 60.0
    low, low_minute = _trough(minutes, start // per_minute)
    low_1s, _ = _trough(depth, start)
    recovered = np.flatnonzero(minutes[major_low_step // per_minute :] >= 0.8 * depth_pre)
    # No depth before the shock leaves nothing to fall from.
    has_depth = depth_pre > 0
    return {
        "alt_depth_pre": depth_pre,
        "alt_depth_drop": 1.0 - low / depth_pre if has_depth else math.nan,
        "alt_depth_drop_1s": 1.0 - low_1s / depth_pre if has_depth else math.nan,
        "depth_recovery_minutes": float(recovered[0]) * minute_len if recovered.size else math.inf,
        "depth_low_minute": low_minute * minute_len,
    }


def summarise(scenario, timeline) -> dict:
    """Floats describing the run; drops are positive fractions of the pre-shock level.

    Liquidation figures (``liq_*``) are the perpetuals' positions; collateral sold
    by liquidations on spot books is ``collateral_sold_notional`` and ``_count``.
    """
    start, pre_lo = shock_window(scenario)
    pre = (pre_lo, start)
    roles = market_roles(scenario, timeline, pre)
    dt_min = scenario.dt / 60.0
    out = {}
    major_last = timeline["last"][roles["major"]]
    major_pre = _pre(major_last, *pre)
    major_low, major_low_step = _trough(major_last, start)
    out["major_drop"] = 1.0 - major_low / major_pre
    out["major_low_minute"] = major_low_step * dt_min
    if roles["alt"]:
        alt = roles["alt"]
        alt_pre = _pre(timeline["last"][alt], *pre)
        alt_low, _ = _trough(timeline["last"][alt], start)
        out["alt_drop"] = 1.0 - alt_low / alt_pre
        depth = timeline["depth_1pct"][alt]
        out.update(depth_figures(depth, _pre(depth, *pre), start, major_low_step, scenario.dt))
    names = list(timeline["liq_notional_long"])
    # Liquidations are the perpetuals' positions; collateral a unified account's
    # liquidation sells on a spot market is counted apart.
    kinds = {m.name: m.kind for m in scenario.exchange.markets}
    perps = [n for n in names if kinds[n] == "perp"]
    spots = [n for n in names if kinds[n] != "perp"]
    zero = np.zeros(len(major_last))
    longs = sum((timeline["liq_notional_long"][n] for n in perps), zero)
    shorts = sum((timeline["liq_notional_short"][n] for n in perps), zero)
    total = longs + shorts
    out["liq_notional_long"] = float(longs.sum())
    out["liq_notional_short"] = float(shorts.sum())
    out["liq_long_short_ratio"] = float(longs.sum() / max(shorts.sum(), 1.0))
    dense = _densest_window(total, WINDOW_40_MIN, scenario.dt)
    if len(total) * scenario.dt < WINDOW_40_MIN:
        out["liq_share_densest_40min"] = math.nan  # no 40 minutes to be densest in
    else:
        out["liq_share_densest_40min"] = float(dense / total.sum()) if total.sum() > 0 else 0.0
    peak = _densest_window(total, 60.0, scenario.dt)
    out["liq_share_peak_minute"] = float(peak / total.sum()) if total.sum() > 0 else 0.0
    out["liq_count"] = float(sum(timeline["liq_count"][n].sum() for n in perps))
    out["collateral_sold_notional"] = float(
        sum(timeline["liq_notional_long"][n].sum() for n in spots)
    )
    out["collateral_sold_count"] = float(sum(timeline["liq_count"][n].sum() for n in spots))
    adl = sum(timeline["adl_notional"][n] for n in names)
    out["adl_notional"] = float(adl.sum())
    out["adl_count"] = float(sum(timeline["adl_count"][n].sum() for n in names))
    adl_steps = np.flatnonzero(adl > 0)
    out["first_adl_minute"] = float(adl_steps[0]) * dt_min if adl_steps.size else math.inf
    # Read when each ADL starts: the end-of-step reading can fall as the fund earns.
    util = timeline["fund_utilisation_at_adl"][adl_steps]
    out["fund_utilisation_at_adl"] = float(np.nanmin(util)) if adl_steps.size else math.nan
    takeovers = np.flatnonzero(sum(timeline["takeover_notional"][n] for n in names) > 0)
    out["first_takeover_minute"] = float(takeovers[0]) * dt_min if takeovers.size else math.inf
    fund = timeline["insurance_fund"]
    fund_pre = _pre(fund, *pre)
    out["fund_drawdown"] = 1.0 - float(fund[start:].min()) / fund_pre if fund_pre > 0 else 0.0
    out["socialised_loss"] = float(timeline["socialised_loss"][-1])
    oi = sum(timeline["open_interest"][n] for n in names if n != roles["collateral"])
    oi_pre = _pre(oi, *pre)
    out["open_interest_drop"] = 1.0 - float(oi[start:].min()) / oi_pre
    # A cascade liquidates tens of percent of open interest within the hour.
    densest_hour = _densest_window(total, WINDOW_HOUR, scenario.dt)
    out["liq_densest_hour_of_oi"] = float(densest_hour / oi_pre) if oi_pre > 0 else math.nan
    if roles["collateral"]:
        c = roles["collateral"]
        coll_pre = _pre(timeline["collateral_price"][c], *pre)
        # From the shock on, so that a depeg before the market low shows as one.
        coll_low, coll_low_step = _trough(timeline["collateral_price"][c], start)
        out["collateral_depeg"] = 1.0 - coll_low / coll_pre
        out["collateral_depeg_minute"] = coll_low_step * dt_min
        book_low, _ = _trough(timeline["last"][c], start)
        out["collateral_book_depeg"] = 1.0 - book_low / _pre(timeline["last"][c], *pre)
    out["mm_quoting_min"] = float(timeline["mm_quoting"][start:].min())
    out["mm_all_away_share"] = float((timeline["mm_quoting"][start:] == 0).mean())
    out.update(stylised_facts(major_last, scenario.dt))
    return out


def stylised_facts(prices, dt: float) -> dict:
    """1-minute log returns of ``prices``: excess kurtosis, |autocorrelation| at lags 1-5
    (the largest), and the smallest autocorrelation of absolute returns at lags 1-5;
    NaN from fewer than ``MIN_RETURNS`` returns."""
    p = prices[:: steps_per_minute(dt)]
    r = np.diff(np.log(p[np.isfinite(p) & (p > 0)]))
    if r.size < MIN_RETURNS or r.std() == 0:
        return {
            "excess_kurtosis": math.nan,
            "max_abs_autocorr": math.nan,
            "min_abs_return_autocorr": math.nan,
        }
    z = (r - r.mean()) / r.std()
    a = np.abs(r) - np.abs(r).mean()

    def acf(x, lag):
        return float(np.dot(x[:-lag], x[lag:]) / np.dot(x, x))

    return {
        "excess_kurtosis": float((z**4).mean() - 3.0),
        "max_abs_autocorr": max(abs(acf(z, lag)) for lag in range(1, 6)),
        "min_abs_return_autocorr": min(acf(a, lag) for lag in range(1, 6)),
    }
