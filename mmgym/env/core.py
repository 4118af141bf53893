"""Episode logic shared by the single, vector and multi-agent environments.

``EpisodeCore`` owns a ``MarketBatch`` and turns its kernel outputs into what
an RL API returns: observations, rewards from the chosen regime, termination
(an agent's account liquidated or bankrupt), truncation (horizon) and the
per-step ``info`` values under stable keys (``INFO_KEYS``).
"""

from __future__ import annotations

import numpy as np

from ..scenario.runner import load_scenario
from .batch import MarketBatch, agent_setup
from .kernels import (
    AC_ASK_NOTIONAL,
    AC_BID_NOTIONAL,
    AC_EQUITY,
    AC_FEES,
    AC_FLATTENED,
    AC_INVENTORY,
    AC_LIQUIDATED,
    AC_MARGIN,
    AC_PNL,
    AC_QUOTED,
    AC_SPREAD_BPS,
    EV_ADL_COUNT,
    EV_ADL_NOTIONAL,
    EV_DEPTH,
    EV_FUND,
    EV_FUND_DRAWDOWN,
    EV_LIQ_COUNT,
    EV_LIQ_LONG,
    EV_LIQ_SHORT,
    EV_MID,
    EV_MM_QUOTING,
    EV_SOCIALISED,
    EV_STRESS,
    EV_VOLUME,
)
from .rewards import Duties, ObligationMonitor, StepAccounting, make_regime

PRESENCE = -1  # observation column of the duties' presence (see observation.OBLIGATION_FIELDS)

# info keys every step, per agent: (key, meaning).
INFO_FIELDS = (
    ("equity", "agent's mark-to-market equity, USDT"),
    ("pnl", "change of equity this step (fees and rebates included), USDT"),
    ("fees", "fees paid this step, USDT (negative = rebates earned)"),
    ("inventory", "absolute position notional in the quoted markets, USDT"),
    ("flattened", "notional sent to flatten the inventory this step, USDT"),
    ("margin_ratio", "maintenance margin / margin equity (liquidation at 1)"),
    ("liquidated", "1 while the agent's account is liquidated or its equity is gone"),
    ("quoted", "1 if both sides of every quoted market were posted"),
    ("spread_bps", "widest quoted spread, bps (inf when not quoting both sides)"),
    ("min_quote_notional", "smallest quoted side, USDT (0 when a side is missing)"),
    ("obligation_compliant", "1 if this step met the quoting duties"),
    ("obligation_presence", "compliant share of the duties' rolling window"),
    ("obligation_breach", "1 while presence is below the duties' minimum"),
    ("stressed", "1 while the stress indicator is on"),
    ("mid", "fair price (mid, or mark when a side is empty) of the first quoted market"),
    ("depth_1pct", "notional within 1% of mid, first quoted market, USDT"),
    ("liq_notional_long", "long liquidation notional this step, all markets, USDT"),
    ("liq_notional_short", "short liquidation notional this step, all markets, USDT"),
    ("liq_count", "liquidation orders this step, all markets"),
    ("adl_count", "auto-deleveraging events this step"),
    ("adl_notional", "auto-deleveraged notional this step, USDT"),
    ("volume", "traded notional this step, all markets, USDT"),
    ("insurance_fund", "insurance fund balance, USDT"),
    ("fund_drawdown", "insurance fund decrease this step, USDT"),
    ("socialised_loss", "losses written off this step, USDT"),
    ("mm_quoting", "share of scripted market-maker firms quoting"),
    ("reward", "this step's reward"),
)
INFO_KEYS = tuple(key for key, _ in INFO_FIELDS)
_ROW = {key: i for i, key in enumerate(INFO_KEYS)}

# info rows copied from the agents' accounting and from the envs' accounting.
_FROM_ACCOUNT = {
    "equity": AC_EQUITY,
    "pnl": AC_PNL,
    "fees": AC_FEES,
    "inventory": AC_INVENTORY,
    "flattened": AC_FLATTENED,
    "margin_ratio": AC_MARGIN,
    "quoted": AC_QUOTED,
    "spread_bps": AC_SPREAD_BPS,
}
_FROM_ENV = {
    "stressed": EV_STRESS,
    "mid": EV_MID,
    "depth_1pct": EV_DEPTH,
    "liq_notional_long": EV_LIQ_LONG,
    "liq_notional_short": EV_LIQ_SHORT,
    "liq_count": EV_LIQ_COUNT,
    "adl_count": EV_ADL_COUNT,
    "adl_notional": EV_ADL_NOTIONAL,
    "volume": EV_VOLUME,
    "insurance_fund": EV_FUND,
    "fund_drawdown": EV_FUND_DRAWDOWN,
    "socialised_loss": EV_SOCIALISED,
    "mm_quoting": EV_MM_QUOTING,
}
_ACCOUNT_ROWS = np.array([_ROW[key] for key in _FROM_ACCOUNT])
_ACCOUNT_COLUMNS = np.array(list(_FROM_ACCOUNT.values()))
_ENV_ROWS = np.array([_ROW[key] for key in _FROM_ENV])
_ENV_COLUMNS = np.array(list(_FROM_ENV.values()))


class EpisodeCore:
    """E envs x G agents of one scenario under one reward regime."""

    def __init__(
        self,
        scenario="calm",
        n_envs: int = 1,
        n_agents: int = 1,
        regime="freedom",
        regime_kwargs: dict | None = None,
        duties: Duties | dict | None = None,
        overrides: dict | None = None,
        terminate_on_liquidation: bool = True,
        threads: int = 1,
        **setup_kwargs,
    ):
        if not isinstance(terminate_on_liquidation, bool):
            raise ValueError(
                f"terminate_on_liquidation must be True or False, got {terminate_on_liquidation!r}"
            )
        self.terminate_on_liquidation = terminate_on_liquidation
        self.scenario = load_scenario(scenario, **(overrides or {}))
        self.setup = agent_setup(self.scenario, **setup_kwargs)
        self.batch = MarketBatch(self.scenario, self.setup, n_envs, n_agents, threads)
        self.regime = make_regime(regime, **(regime_kwargs or {}))
        if isinstance(duties, dict):
            duties = Duties(**duties)
        self.duties = duties or Duties()
        self.monitor = ObligationMonitor(self.duties, n_envs * n_agents)
        self.n_envs, self.n_agents = int(n_envs), int(n_agents)
        self.last_parts: dict[str, np.ndarray] = {}
        self.last_info = np.zeros((len(INFO_KEYS), self.n_envs, self.n_agents))

    @property
    def horizon(self) -> int:
        return self.setup.horizon

    def reset(self, e: int, rng: np.random.Generator) -> np.ndarray:
        """Rebuild env ``e``; return its agents' first observations (float32[G, D])."""
        self.batch.reset_env(e, rng)
        self.monitor.reset(slice(e * self.n_agents, (e + 1) * self.n_agents))
        obs = self.batch.agent_state.obs[e]
        obs[:, PRESENCE] = 1.0
        return obs.copy()

    def step(self, actions: np.ndarray, active: np.ndarray):
        """Step the active envs with ``actions`` (float64[E, G, A], clipped to [-1, 1]).

        Returns observations [E, G, D], rewards [E, G], terminated [E, G],
        truncated [E] and info arrays {key: [E, G]} for ``INFO_KEYS`` (views of
        one table made afresh each step, kept as ``last_info`` [key, E, G]) and
        ``reward_<part>``; inactive envs hold zeros.
        """
        b = self.batch
        b.step(actions, active)
        ag = b.agent_state
        acc = ag.accounting.transpose(2, 0, 1)  # [column, E, G]
        env_columns = ag.env_accounting.T[:, :, None]  # [column, E, 1]
        shape = acc.shape[1:]
        table = np.empty((len(INFO_KEYS), *shape))
        table[_ACCOUNT_ROWS] = acc[_ACCOUNT_COLUMNS]
        table[_ENV_ROWS] = env_columns[_ENV_COLUMNS]
        table[_ROW["min_quote_notional"]] = np.minimum(acc[AC_BID_NOTIONAL], acc[AC_ASK_NOTIONAL])
        table[_ROW["liquidated"]] = acc[AC_LIQUIDATED] > 0
        flat = table.reshape(len(INFO_KEYS), -1)  # a view: rows as [E * G]

        def row(key):
            return flat[_ROW[key]]

        compliant, presence, breach = self.monitor.update(
            row("quoted"), row("spread_bps"), row("min_quote_notional"), row("stressed")
        )
        row("obligation_compliant")[:] = compliant
        row("obligation_presence")[:] = presence
        row("obligation_breach")[:] = breach
        ag.obs[:, :, PRESENCE] = table[_ROW["obligation_presence"]]
        accounting = StepAccounting(
            pnl=row("pnl"),
            fees=row("fees"),
            inventory=row("inventory"),
            quoted=row("quoted"),
            spread_bps=row("spread_bps"),
            min_notional=row("min_quote_notional"),
            stressed=row("stressed"),
            fund_drawdown=row("fund_drawdown"),
            socialised_loss=row("socialised_loss"),
            compliant=row("obligation_compliant"),
            presence=row("obligation_presence"),
            breach=row("obligation_breach"),
            capital=self.setup.capital,
        )
        parts = self.regime.parts(accounting)
        reward = table[_ROW["reward"]]
        reward[:] = sum(parts.values()).reshape(shape)
        # Copies: a regime may hand back arrays it keeps, and callers keep these.
        self.last_parts = {k: np.array(v, np.float64).reshape(shape) for k, v in parts.items()}
        self.last_info = table
        liquidated = table[_ROW["liquidated"]] > 0
        terminated = liquidated if self.terminate_on_liquidation else np.zeros_like(liquidated)
        truncated = ag.elapsed >= self.horizon
        info = dict(zip(INFO_KEYS, table, strict=True))
        info.update({f"reward_{part}": value for part, value in self.last_parts.items()})
        return ag.obs.copy(), reward.copy(), terminated, truncated, info


def info_rows(core: EpisodeCore) -> list[dict]:
    """One info dict per (env, agent) of the last step, row-major: ``INFO_KEYS`` and
    ``reward_<part>``."""
    table = np.concatenate([core.last_info, np.stack(list(core.last_parts.values()))])
    rows = table.reshape(len(table), -1).T.tolist()
    keys = INFO_KEYS + tuple(f"reward_{part}" for part in core.last_parts)
    return [dict(zip(keys, row, strict=True)) for row in rows]


def check_actions(action, shape: tuple[int, ...]) -> np.ndarray:
    """``action`` as float64 of ``shape``, clipped to [-1, 1]; ValueError if malformed.

    Accepted: any floating dtype of exactly ``shape``, every value finite.
    Values outside [-1, 1] are clipped to the bounds (documented behaviour, as
    SB3 does with its Gaussian policies).
    """
    arr = np.asarray(action)
    if arr.dtype.kind != "f":
        raise ValueError(f"action must be a floating-point array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"action must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("action must be finite (got NaN or inf); allowed range [-1, 1]")
    return np.clip(arr, -1.0, 1.0).astype(np.float64)
