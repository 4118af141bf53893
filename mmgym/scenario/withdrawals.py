"""Why the scripted firms left: each withdrawal, the signal that crossed, and the return."""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import numpy as np


class Withdrawal(NamedTuple):
    """One withdrawal of one firm."""

    firm: int
    left: float  # seconds from the start of the run
    signal: str  # the largest stress signal at that step
    level: float  # that signal over its threshold (>= 1)
    returned: float  # seconds from the start; NaN if still away at the end


def withdrawals(timeline: dict, dt: float) -> list[Withdrawal]:
    """Every withdrawal of every firm in a run's timeline, in time order.

    Read from ``mm_away`` and ``mm_stress``: the stress recorded at a step is
    the one the firm decided on at that step.
    """
    away = np.asarray(timeline["mm_away"], bool)
    signals = list(timeline["mm_stress"])
    parts = np.stack([timeline["mm_stress"][s] for s in signals], axis=-1)  # [T, F, S]
    rows = []
    for f in range(away.shape[1]):
        change = np.diff(away[:, f].astype(np.int8), prepend=0)
        starts = np.flatnonzero(change == 1)
        ends = np.flatnonzero(change == -1)
        for t in starts:
            i = int(np.argmax(parts[t, f]))
            back = ends[ends > t]
            returned = back[0] * dt if back.size else math.nan
            rows.append(Withdrawal(f, t * dt, signals[i], float(parts[t, f, i]), returned))
    return sorted(rows, key=lambda w: (w.left, w.firm))


def signal_counts(rows: list[Withdrawal]) -> dict[str, int]:
    """How many withdrawals each signal triggered, most frequent first."""
    return dict(Counter(w.signal for w in rows).most_common())
