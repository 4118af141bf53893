"""Charts and calibration reports of scenario runs."""

from __future__ import annotations

import numpy as np

from .criteria import Criterion
from .summary import first_shock, market_roles, shock_window, steps_per_minute
from .withdrawals import withdrawals


def _clock(seconds):
    h, m = divmod(int(seconds) // 60, 60)
    return f"{h % 24:02d}:{m:02d}"


def _clock_seconds(seconds):
    s = int(seconds) % 60
    return f"{_clock(seconds)}:{s:02d}"


def per_minute(series, dt):
    """Sum a per-step series into one-minute bins."""
    step = steps_per_minute(dt)
    n = len(series) // step * step
    return series[:n].reshape(-1, step).sum(axis=1)


def plot(result, path) -> None:
    """Write a chart of a run: one panel per quantity, shared time axis, shock and low marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("plotting needs matplotlib: pip install 'mmgym[render]'") from exc
    scenario, tl = result.scenario, result.timeline
    start, pre_lo = shock_window(scenario)
    roles = market_roles(scenario, tl, (pre_lo, start))
    minutes = (tl["time"] - tl["time"][0]) / 60.0
    names = list(tl["last"])
    perps = [m.name for m in scenario.exchange.markets if m.kind == "perp"]
    fig, axes = plt.subplots(7, 1, figsize=(11, 17), sharex=True)
    ax = axes[0]
    for name in names:
        series = tl["last"][name]
        ax.plot(minutes, series / np.nanmedian(series[pre_lo:start]), label=f"{name} last")
    if roles["collateral"]:
        coll = tl["collateral_price"][roles["collateral"]]
        ax.plot(minutes, coll / coll[0], ls="--", label="collateral price (margin)")
    ax.set_ylabel("price / pre-shock")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1]
    for name in perps:
        ax.plot(minutes, tl["depth_1pct"][name] / 1e6, label=name)
    ax.set_ylabel("1% depth ($M)")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.legend(fontsize=8)
    ax = axes[2]
    # Bars at each bin's start in minutes: a bin is a minute, or one step when longer.
    bin_minutes = steps_per_minute(scenario.dt) * scenario.dt / 60.0
    bins = np.arange(len(per_minute(tl["time"], scenario.dt))) * bin_minutes
    longs = sum(per_minute(tl["liq_notional_long"][n], scenario.dt) for n in perps)
    shorts = sum(per_minute(tl["liq_notional_short"][n], scenario.dt) for n in perps)
    bar = {"width": bin_minutes, "align": "edge"}
    ax.bar(bins, longs / 1e6, color="tab:red", label="longs", **bar)
    ax.bar(bins, -shorts / 1e6, color="tab:green", label="shorts", **bar)
    ax.set_ylabel(f"perps liquidated ($M/{bin_minutes:g} min)")
    ax.legend(fontsize=8)
    ax = axes[3]
    adl = sum(per_minute(tl["adl_notional"][n], scenario.dt) for n in names)
    ax.bar(bins, adl / 1e6, color="tab:purple", **bar)
    ax.set_ylabel(f"ADL ($M/{bin_minutes:g} min)")
    axes[4].plot(minutes, tl["insurance_fund"] / 1e6)
    axes[4].set_ylabel("insurance fund ($M)")
    oi = sum(tl["open_interest"][n] for n in perps)
    axes[5].plot(minutes, oi / 1e6)
    axes[5].set_ylabel("open interest ($M)")
    axes[6].plot(minutes, tl["mm_quoting"])
    axes[6].set_ylabel("scripted MMs quoting")
    axes[6].set_ylim(-0.05, 1.05)
    low = float(result.summary.get("major_low_minute", np.nan))
    for ax in axes:
        if first_shock(scenario) is not None:
            ax.axvline(start * scenario.dt / 60.0, color="k", ls=":", lw=1)
            ax.axvline(low, color="tab:red", ls=":", lw=1)
    ticks = axes[-1].get_xticks()
    axes[-1].set_xticks(ticks)
    axes[-1].set_xticklabels([_clock(tl["time"][0] + 60 * t) for t in ticks])
    axes[-1].set_xlim(minutes[0], minutes[-1])
    axes[-1].set_xlabel("time (UTC); dotted: shock start (black), major's low (red)")
    fig.suptitle(f"{scenario.name}, seed {result.seed}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _withdrawal_lines(result) -> list[str]:
    start, dt = result.scenario.start_clock, result.scenario.dt
    rows = withdrawals(result.timeline, dt)
    if not rows:
        return ["No scripted firm withdrew."]
    lines = [
        "Each withdrawal, the stress signal that crossed its threshold, and the return.",
        "",
        "| firm | left | signal | over threshold | back |",
        "|---|---|---|---|---|",
    ]
    for w in rows:
        left = _clock_seconds(start + w.left)
        back = "not back" if np.isnan(w.returned) else _clock_seconds(start + w.returned)
        lines.append(f"| {w.firm} | {left} | {w.signal} | {w.level:.2f}x | {back} |")
    return lines


def _cells(cells) -> str:
    # "|returns|" would end a cell early.
    return "| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |"


def markdown(result, criteria: list[Criterion], note: str = "", figures=()) -> str:
    """A markdown report: the calibration table (after ``note``, if any), published
    ``figures`` no criterion judges, the firms' withdrawals, summary figures."""
    lines = [
        f"# Scenario `{result.scenario.name}`, seed {result.seed}",
        "",
        result.scenario.description,
        "",
        "## Calibration",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += [
        "| criterion | published | simulated | holds |",
        "|---|---|---|---|",
    ]
    for c in criteria:
        lines.append(
            _cells((c.name, c.published, c.simulated, {"ok": "yes"}.get(c.verdict, c.verdict)))
        )
    if figures:
        lines += ["", "Other published figures, for comparison (no criterion):", ""]
        lines += ["| figure | published | simulated |", "|---|---|---|"]
        lines += [_cells(f) for f in figures]
    lines += ["", "## Firm withdrawals", ""]
    lines += _withdrawal_lines(result)
    lines += ["", "## Summary", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.6g} |" for k, v in result.summary.items()]
    lines += [
        "",
        f"Invariants: worst position imbalance {result.invariants['position_imbalance']} lots, "
        f"worst cash drift {result.invariants['cash_drift']:.3g} USDT, "
        f"spot holdings' drift at the end {result.invariants['holdings_drift']:g} lots.",
        "",
    ]
    return "\n".join(lines)
