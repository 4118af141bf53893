"""Episode logic shared by the single, vector and multi-agent environments.

``EpisodeCore`` owns a ``MarketBatch`` and turns its kernel outputs into what
an RL API returns: observations, rewards from the chosen regime, termination
(an agent's account liquidated or bankrupt), truncation (horizon) and the
per-step ``info`` values under stable keys (``INFO_KEYS``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np

from ..core.config import ConfigError, check_fields, check_flag, check_number
from ..scenario.runner import load_scenario
from .batch import MarketBatch, agent_setup, compiled_entry
from .rewards import Duties, ObligationMonitor, StepAccounting, make_regime
from .step_record import INFO_KEYS, ROW, record_step

PRESENCE = -1  # observation column of the duties' presence (see observation.OBLIGATION_FIELDS)


def check_seed(seed, name: str = "seed") -> int | None:
    """``seed`` as an int if None or an integer >= 0 (numpy's too), else ValueError
    naming ``name``."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be None or an integer >= 0, got {seed!r}")
    return int(seed)


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
        max_episode_steps: int | None = None,
        **setup_kwargs,
    ):
        self.terminate_on_liquidation = check_flag(
            "terminate_on_liquidation", terminate_on_liquidation
        )
        self.scenario = load_scenario(scenario, **mapping_or_none("overrides", overrides))
        setup_names = list(inspect.signature(agent_setup).parameters)[1:]
        unknown = sorted(set(setup_kwargs) - set(setup_names))
        if unknown:
            # The sizes (n_envs, n_agents) are the env class's to set, not the caller's.
            own = inspect.signature(type(self)).parameters
            shared = [n for n in own if n not in ("setup_kwargs", "n_envs", "n_agents")]
            raise ConfigError(
                f"unknown env argument(s) {unknown}; allowed: {sorted(shared + setup_names)} "
                "and the env class's own (render_mode, num_envs, ...)"
            )
        self.setup = agent_setup(self.scenario, **setup_kwargs)
        # Episodes end at the horizon or at a time limit (Gymnasium's
        # max_episode_steps), whichever comes first; observations keep
        # measuring the elapsed share of the horizon.
        self.time_limit = self.setup.horizon
        if max_episode_steps is not None:
            limit = check_number("max_episode_steps", max_episode_steps, 1, 10**12, integer=True)
            self.time_limit = min(limit, self.setup.horizon)
        self.batch = MarketBatch(self.scenario, self.setup, n_envs, n_agents, threads)
        self.regime = make_regime(regime, **mapping_or_none("regime_kwargs", regime_kwargs))
        self.duties = _duties(duties)
        self.monitor = ObligationMonitor(self.duties, n_envs * n_agents)
        self.n_envs, self.n_agents = int(n_envs), int(n_agents)
        self.last_parts: dict[str, np.ndarray] = {}
        self.last_info = np.zeros((len(INFO_KEYS), self.n_envs, self.n_agents))
        self._record = None  # record_step's compiled entry, after the first step

    def __getstate__(self):
        return dict(self.__dict__, _record=None)  # a compiled entry cannot be pickled

    @property
    def horizon(self) -> int:
        """Steps in a full episode."""
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

        Returns observations [E, G, D], rewards [E, G], terminated [E, G] and
        truncated [E]. The step's info values are kept as ``last_info``
        [key, E, G] (rows in ``INFO_KEYS`` order, one table made afresh each
        step, so views of it are safe to hand out) and the reward's terms as
        ``last_parts`` {part: [E, G]}; inactive envs hold zeros.
        """
        b = self.batch
        b.step(actions, active)
        ag = b.agent_state
        shape = (self.n_envs, self.n_agents)
        table = np.empty((len(INFO_KEYS), *shape))
        m = self.monitor
        args = (ag.accounting, ag.env_accounting, m.params, m.history, m.count, m.met)
        args += (table, ag.obs)
        if self._record is None:
            record_step(*args)
            self._record = compiled_entry(record_step, args)  # the types never change
        else:
            self._record(*args)
        flat = table.reshape(len(INFO_KEYS), -1)  # a view: rows as [E * G]

        def row(key):
            return flat[ROW[key]]

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
        reward = table[ROW["reward"]]
        reward[:] = sum(parts.values()).reshape(shape)
        # Copies: a regime may hand back arrays it keeps, and callers keep these.
        self.last_parts = {k: np.array(v, np.float64).reshape(shape) for k, v in parts.items()}
        if not active.all():  # an env that did not step has no step to report
            table[:, ~active] = 0.0
            for value in self.last_parts.values():
                value[~active] = 0.0
        self.last_info = table
        liquidated = table[ROW["liquidated"]] > 0
        terminated = liquidated if self.terminate_on_liquidation else np.zeros_like(liquidated)
        truncated = ag.elapsed >= self.time_limit
        return ag.obs.copy(), reward.copy(), terminated, truncated


def _duties(duties) -> Duties:
    """``duties`` given as ``Duties``, a dict of its fields or None (the defaults)."""
    if duties is None:
        return Duties()
    if isinstance(duties, Duties):
        return duties
    check_fields(Duties, duties, "duties")
    return Duties(**duties)


def info_rows(core: EpisodeCore) -> list[dict]:
    """One info dict per (env, agent) of the last step, row-major: ``INFO_KEYS`` and
    ``reward_<part>``."""
    table = np.concatenate([core.last_info, np.stack(list(core.last_parts.values()))])
    rows = table.reshape(len(table), -1).T.tolist()
    keys = INFO_KEYS + tuple(f"reward_{part}" for part in core.last_parts)
    return [dict(zip(keys, row, strict=True)) for row in rows]


def mapping_or_none(name: str, value) -> dict:
    """``value`` as a dict ({} for None); ValueError naming ``name`` if it is not a mapping."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict or None, got {type(value).__name__}")
    return dict(value)


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
