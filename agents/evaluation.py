"""Seeded evaluation episodes of any policy with SB3's ``predict``, and their statistics."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from mmgym.core.config import check_number
from mmgym.env.vector import MarketMakingVectorEnv

# Info keys recorded every step (see ``mmgym.env.step_record.INFO_FIELDS``).
RECORDED = (
    "equity",
    "pnl",
    "reward",
    "quoted",
    "stressed",
    "obligation_compliant",
    "obligation_breach",
    "inventory",
    "liquidated",
    "mid",
    "depth_1pct",
    "liq_notional_long",
    "liq_notional_short",
    "adl_count",
    "adl_notional",
    "insurance_fund",
)
SERIES = ("mid", "depth_1pct", "quoted", "stressed")  # per-step series kept for the first seed

METRICS = {
    "mm_pnl": "final equity - equity before the first step, USDT",
    "reward": "sum of rewards",
    "presence": "share of steps quoting both sides",
    "presence_stress": "share of stressed steps quoting both sides (NaN: never stressed)",
    "compliance": "share of steps quoting within the duties' spread and size",
    "duties_met": "share of steps not in breach (presence over the duties' window high enough)",
    "inventory_max": "largest absolute inventory, USDT",
    "liquidated": "1 if the maker was liquidated during the episode",
    "depth_trough": "lowest 1% depth / first - 1",
    "price_trough": "lowest mid / first - 1",
    "liq_notional_long": "long liquidation notional, USDT",
    "liq_notional_short": "short liquidation notional, USDT",
    "adl_count": "auto-deleveraging events",
    "adl_notional": "auto-deleveraged notional, USDT",
    "fund_drawdown": "(first insurance fund - its lowest) / first",
    "steps": "episode length, steps",
}

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom (then the normal's).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


class Interval(NamedTuple):
    """Mean over seeds and its 95% t interval (NaN bounds with fewer than 2 values)."""

    mean: float
    low: float
    high: float
    n: int


def interval(values) -> Interval:
    """Mean and 95% t interval of the finite ``values``."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1)
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = t * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def episode_metrics(steps: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``METRICS`` of one episode from its per-step info arrays (``RECORDED`` keys)."""
    stressed = steps["stressed"] > 0.5
    fund = steps["insurance_fund"]
    return {
        "mm_pnl": float(steps["equity"][-1] - (steps["equity"][0] - steps["pnl"][0])),
        "reward": float(steps["reward"].sum()),
        "presence": float(steps["quoted"].mean()),
        "presence_stress": float(steps["quoted"][stressed].mean()) if stressed.any() else math.nan,
        "compliance": float(steps["obligation_compliant"].mean()),
        "duties_met": float(1.0 - steps["obligation_breach"].mean()),
        "inventory_max": float(steps["inventory"].max()),
        "liquidated": float(steps["liquidated"].max()),
        "depth_trough": float(steps["depth_1pct"].min() / steps["depth_1pct"][0] - 1.0),
        "price_trough": float(steps["mid"].min() / steps["mid"][0] - 1.0),
        "liq_notional_long": float(steps["liq_notional_long"].sum()),
        "liq_notional_short": float(steps["liq_notional_short"].sum()),
        "adl_count": float(steps["adl_count"].sum()),
        "adl_notional": float(steps["adl_notional"].sum()),
        "fund_drawdown": float((fund[0] - fund.min()) / fund[0]) if fund[0] > 0 else math.nan,
        "steps": float(len(fund)),
    }


def _format(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4g}"


def _format_interval(i: Interval) -> str:
    if not math.isfinite(i.low):
        return _format(i.mean)
    return f"{_format(i.mean)} ± {_format(i.high - i.mean)}"


@dataclasses.dataclass
class Evaluation:
    """One episode per seed: ``rows[i]`` holds ``METRICS`` for ``seeds[i]``; ``series``
    the per-step ``mid``, ``depth_1pct``, ``quoted`` and ``stressed`` of the first seed."""

    scenario: str
    regime: str
    seeds: tuple[int, ...]
    rows: list[dict[str, float]]
    series: dict[str, np.ndarray]

    def summary(self) -> dict[str, Interval]:
        """Per metric: mean over seeds and its 95% t interval (NaN seeds left out)."""
        return {key: interval([row[key] for row in self.rows]) for key in METRICS}

    def to_markdown(self) -> str:
        """Table: one row per metric, one column per seed, then mean ± 95% half-width."""
        head = ["metric", *(f"seed {s}" for s in self.seeds), "mean ± 95%"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        summary = self.summary()
        for key in METRICS:
            cells = [key, *(_format(row[key]) for row in self.rows), _format_interval(summary[key])]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def compare(evaluations: Mapping[str, Evaluation], metrics: Sequence[str] | None = None) -> str:
    """Markdown table: one row per policy, its mean ± 95% half-width per metric."""
    metrics = list(METRICS if metrics is None else metrics)
    lines = ["| policy | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 1)]
    for name, evaluation in evaluations.items():
        summary = evaluation.summary()
        cells = [_format_interval(summary[key]) for key in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(
    policy,
    scenario="oct10",
    regime="freedom",
    seeds: Sequence[int] = (1000, 1001, 1002),
    deterministic: bool = True,
    **env_kwargs,
) -> Evaluation:
    """Run one episode per seed, all in one ``MarketMakingVectorEnv``; return its metrics.

    ``policy``: anything with SB3's ``predict(obs, state, episode_start,
    deterministic)`` (SB3 models, recurrent ones included, and the
    baselines); it sees raw observations, so wrap models trained under
    ``VecNormalize`` (``agents.runs.load_run(...).policy`` does).
    ``env_kwargs`` go to the env (``horizon``, ``overrides``, ``market`` ...).
    Episodes run to the horizon even when the agent is liquidated
    (``terminate_on_liquidation=False`` unless given): the market metrics then
    cover the same window for every policy, and the liquidated maker's loss
    stays in its PnL.
    """
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a sequence of integers, got {seeds!r}")
    seeds = tuple(check_number("seeds", s, 0, 2**63 - 1, integer=True) for s in seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    n = len(seeds)
    env_kwargs.setdefault("terminate_on_liquidation", False)
    env = MarketMakingVectorEnv(num_envs=n, scenario=scenario, regime=regime, **env_kwargs)
    obs, _ = env.reset(seed=list(seeds))
    state, starts = None, np.ones(n, bool)
    running = np.ones(n, bool)
    history: dict[str, list[np.ndarray]] = {key: [] for key in RECORDED}
    lengths = np.zeros(n, np.int64)
    while running.any():
        actions, state = policy.predict(
            obs, state=state, episode_start=starts, deterministic=deterministic
        )
        actions = np.asarray(actions, np.float32).reshape(n, -1)
        obs, _, terminated, truncated, info = env.step(actions)
        for key in RECORDED:
            history[key].append(info[key])
        lengths += running
        # Only each env's first episode counts: after its end (NEXT_STEP autoreset)
        # the env runs on into a new episode that is ignored.
        running &= ~(terminated | truncated)
        starts = np.zeros(n, bool)
    env.close()
    stacked = {key: np.stack(values) for key, values in history.items()}
    rows = [episode_metrics({k: v[: lengths[i], i] for k, v in stacked.items()}) for i in range(n)]
    series = {key: stacked[key][: lengths[0], 0].copy() for key in SERIES}
    regime_name = regime if isinstance(regime, str) else type(env.core.regime).__name__
    return Evaluation(env.core.scenario.name, regime_name, seeds, rows, series)
