"""The observation vector: one block of columns per quoted market, then the account block.

Columns without a natural bound are clipped to +-1e4 (far beyond anything seen:
a -80% wick is about -5,000 usual volatilities).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .kernels import N_ACCOUNT_OBS, N_MARKET_OBS, OBS_LIMIT, RATIO_CAP, SPREAD_CAP

INF = OBS_LIMIT  # unbounded columns are clipped to +-OBS_LIMIT

# (name, meaning, low, high), in kernel column order (see kernels.OB_*).
MARKET_FIELDS = (
    ("return", "log mid return over the step / usual volatility of a step", -INF, INF),
    ("trend", "EWMA (half-life 10 steps) of the normalised returns", -INF, INF),
    ("volatility", "sqrt of the EWMA of squared normalised returns (1 = usual)", 0.0, INF),
    ("spread", f"book spread in % of mid ({SPREAD_CAP:g} when a side is empty)", 0.0, SPREAD_CAP),
    ("imbalance", "(bid - ask) / (bid + ask) depth within 1% of mid", -1.0, 1.0),
    (
        "depth",
        f"1% depth / its level when the episode began (capped at {RATIO_CAP:g})",
        0.0,
        RATIO_CAP,
    ),
    ("basis", "(mark - index) / index, %", -INF, INF),
    (
        "inventory",
        "holding bought (+) or sold (-) since the episode began (a perpetual's position) "
        "at mark / capital",
        -INF,
        INF,
    ),
    (
        "liquidations",
        "log(1 + liquidation notional over the step (at reset, the warm-up's last "
        "engine step) / usual quoted notional)",
        0.0,
        INF,
    ),
    ("adl_quantile", "own ADL light / 4 (1 = first in line)", 0.0, 1.0),
    ("bid_live", "1 if the agent's bid was posted this step", 0.0, 1.0),
    ("ask_live", "1 if the agent's ask was posted this step", 0.0, 1.0),
)
ACCOUNT_FIELDS = (
    ("pnl", "equity change since the episode began / capital", -INF, INF),
    ("upnl", "unrealised PnL of perpetual positions / capital", -INF, INF),
    (
        "margin_ratio",
        f"maintenance margin / margin equity (1 = liquidation, cap {RATIO_CAP:g})",
        0.0,
        RATIO_CAP,
    ),
    (
        "collateral",
        "value of own collateral coins / their value at the start (1 if none)",
        0.0,
        INF,
    ),
    ("insurance_fund", "insurance fund / its initial balance", -INF, INF),
    ("stressed", "1 while the stress indicator is on", 0.0, 1.0),
    ("time_sin", "sin(2 pi time of day)", -1.0, 1.0),
    ("time_cos", "cos(2 pi time of day)", -1.0, 1.0),
    ("elapsed", "share of the horizon elapsed", 0.0, 1.0),
)
# Written by the episode logic after the kernel, from the obligation monitor: the
# duties' verdict depends on the rolling window, so the agent must be able to see it.
OBLIGATION_FIELDS = (
    (
        "presence",
        "compliant share of the quoting duties' rolling window (1 at the start)",
        0.0,
        1.0,
    ),
)
assert len(MARKET_FIELDS) == N_MARKET_OBS and len(ACCOUNT_FIELDS) == N_ACCOUNT_OBS


def observation_size(n_markets: int) -> int:
    """Columns of one agent's observation with ``n_markets`` quoted markets."""
    return n_markets * N_MARKET_OBS + N_ACCOUNT_OBS + len(OBLIGATION_FIELDS)


def observation_names(markets) -> list[str]:
    """Column names, e.g. ``ALTUSDT.spread`` ... ``pnl``."""
    names = [f"{m}.{f[0]}" for m in markets for f in MARKET_FIELDS]
    return names + [f[0] for f in ACCOUNT_FIELDS + OBLIGATION_FIELDS]


def observation_space(n_markets: int) -> spaces.Box:
    """The ``Box`` of an agent quoting ``n_markets`` markets, bounds from the table."""
    fields = list(MARKET_FIELDS) * n_markets + list(ACCOUNT_FIELDS + OBLIGATION_FIELDS)
    low = np.array([f[2] for f in fields], np.float32)
    high = np.array([f[3] for f in fields], np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def observation_table() -> str:
    """Markdown table of the columns for one quoted market (index, name, meaning, range)."""
    rows = ["| index | name | meaning | range |", "|---|---|---|---|"]
    fields = list(MARKET_FIELDS) + list(ACCOUNT_FIELDS + OBLIGATION_FIELDS)
    for i, (name, meaning, low, high) in enumerate(fields):
        where = f"{i}" if i < N_MARKET_OBS else f"{i} (12M + {i - N_MARKET_OBS})"
        rows.append(f"| {where} | {name} | {meaning} | [{low:g}, {high:g}] |")
    return "\n".join(rows)
