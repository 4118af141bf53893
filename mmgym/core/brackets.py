"""Tiered maintenance-margin brackets (MECHANICS.md section 1).

A bracket table is a list of ``(notional_floor, max_leverage, mmr)`` rows in
increasing floor order, the first floor being 0. The maintenance amount
``cum`` of each tier is derived so that maintenance margin is continuous:
``cum_k = cum_{k-1} + floor_k * (mmr_k - mmr_{k-1})``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Bracket(NamedTuple):
    """One tier: notional floor (USDT), maximum leverage, maintenance margin rate."""

    floor: float
    max_leverage: float
    mmr: float


#: Binance BTCUSDT snapshot (MECHANICS.md, 150x table).
BTCUSDT_BRACKETS: tuple[Bracket, ...] = (
    Bracket(0.0, 150.0, 0.004),
    Bracket(300_000.0, 100.0, 0.005),
    Bracket(800_000.0, 75.0, 0.0065),
    Bracket(3_000_000.0, 50.0, 0.01),
    Bracket(12_000_000.0, 25.0, 0.02),
    Bracket(70_000_000.0, 20.0, 0.025),
    Bracket(100_000_000.0, 10.0, 0.05),
    Bracket(230_000_000.0, 5.0, 0.10),
)

#: A small altcoin's table: 50x at 1% with low notional caps (MECHANICS.md).
SMALL_ALT_BRACKETS: tuple[Bracket, ...] = (
    Bracket(0.0, 50.0, 0.01),
    Bracket(5_000.0, 20.0, 0.025),
    Bracket(25_000.0, 10.0, 0.05),
    Bracket(100_000.0, 5.0, 0.10),
    Bracket(250_000.0, 2.0, 0.25),
    Bracket(1_000_000.0, 1.0, 0.50),
)

DEFAULT_BRACKETS = BTCUSDT_BRACKETS


def validate_brackets(rows, field: str = "brackets") -> tuple[Bracket, ...]:
    """Check a bracket table and return it as ``Bracket`` rows.

    Raises ``ValueError`` naming ``field`` when the table is empty, does not
    start at a zero floor, has non-increasing floors, an MMR outside (0, 1),
    decreasing MMRs, or a leverage below 1.
    """
    out = []
    try:
        rows = [Bracket(*map(float, row)) for row in rows]
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{field}: each row must be (notional_floor, max_leverage, mmr) numbers"
        ) from exc
    if not rows:
        raise ValueError(f"{field}: needs at least one tier")
    if rows[0].floor != 0.0:
        raise ValueError(f"{field}[0].floor must be 0, got {rows[0].floor}")
    for i, row in enumerate(rows):
        if not 0.0 < row.mmr < 1.0:
            raise ValueError(f"{field}[{i}].mmr must be in (0, 1), got {row.mmr}")
        if not row.max_leverage >= 1.0:
            raise ValueError(f"{field}[{i}].max_leverage must be >= 1, got {row.max_leverage}")
        if i:
            prev = rows[i - 1]
            if not row.floor > prev.floor:
                raise ValueError(f"{field}[{i}].floor must exceed the previous floor {prev.floor}")
            if row.mmr < prev.mmr:
                raise ValueError(f"{field}[{i}].mmr must not decrease (previous {prev.mmr})")
        out.append(row)
    return tuple(out)


def maintenance_amounts(rows) -> np.ndarray:
    """The ``cum`` column derived from floors and MMRs."""
    cum = np.zeros(len(rows))
    for k in range(1, len(rows)):
        cum[k] = cum[k - 1] + rows[k].floor * (rows[k].mmr - rows[k - 1].mmr)
    return cum


def tier_of(notional: float, rows) -> int:
    """Index of the tier whose bracket contains ``notional`` (>= 0)."""
    tier = 0
    for k, row in enumerate(rows):
        if notional >= row.floor:
            tier = k
    return tier
