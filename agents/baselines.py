"""Scripted market makers (and a random policy) with Stable-Baselines3's ``predict`` interface.

Each takes the env's ``AgentSetup`` (see ``agent_setup_of``) so it can turn
quotes in bps and USDT into action values. ``predict`` accepts one
observation [D] or a batch [N, D] of raw (not normalised) observations and
returns float32 actions of matching shape in [-1, 1].
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from mmgym.core.config import check_number
from mmgym.env.batch import AgentSetup
from mmgym.env.kernels import (
    OB_DEPTH,
    OB_INVENTORY,
    OB_LIQUIDATIONS,
    OB_MARGIN,
    OB_STRESS,
    OB_VOLATILITY,
)

from .actions import (
    NO_QUOTE,
    account_obs,
    action_space,
    market_obs,
    observation_size,
    quote_actions,
    size_action,
)


def _as_batch(observation, size: int | None = None) -> tuple[np.ndarray, bool]:
    """Observation(s) as float64[N, D] and whether a single observation was given."""
    obs = np.asarray(observation, np.float64)
    if obs.ndim not in (1, 2) or (size is not None and obs.shape[-1] != size):
        expected = f"[{size}] or [N, {size}]" if size is not None else "[D] or [N, D]"
        raise ValueError(f"observation must have shape {expected}, got {obs.shape}")
    return np.atleast_2d(obs), obs.ndim == 1


class Baseline:
    """A scripted policy for one ``AgentSetup``; subclasses implement ``act``."""

    def __init__(self, setup: AgentSetup):
        self.setup = setup
        self.action_space = action_space(setup)

    def act(self, obs: np.ndarray, state, episode_start: np.ndarray):
        """Actions [N, A] (and the next state) for raw observations obs[N, D]."""
        raise NotImplementedError

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """SB3's ``predict``: ``(actions, state)``; ``deterministic`` has no effect."""
        obs, single = _as_batch(observation, observation_size(self.setup))
        starts = np.zeros(len(obs), bool) if episode_start is None else episode_start
        starts = np.asarray(starts, bool).reshape(-1)
        if starts.size not in (1, len(obs)):
            raise ValueError(
                f"episode_start must hold one flag per observation ({len(obs)}), got {starts.size}"
            )
        starts = np.broadcast_to(starts, (len(obs),))
        actions, state = self.act(obs, state, starts)
        actions = np.clip(actions, -1.0, 1.0).astype(np.float32)
        return (actions[0] if single else actions), state

    def _sizes(self, size, name: str = "size") -> np.ndarray:
        """Size action values per market for ``size`` USDT (scalar or one per market;
        None: half of each market's maximum); ValueError outside the quotable range."""
        s = self.setup
        m = len(s.markets)
        notional = 0.5 * np.array(s.max_quote_notional) if size is None else size
        if np.shape(notional) not in ((), (m,)):
            raise ValueError(f"{name} must be a number or one per market ({m}), got {size!r}")
        notional = np.broadcast_to(np.asarray(notional, np.float64), (m,))
        for i in range(m):
            low, high = s.min_size * s.max_quote_notional[i], s.max_quote_notional[i]
            if not low <= notional[i] <= high:
                raise ValueError(
                    f"{name} for {s.markets[i]} must be in [{low:g}, {high:g}] USDT, "
                    f"got {notional[i]:g}"
                )
        return np.array([size_action(notional[i], s, i) for i in range(m)])

    def _check_offset(self, bps: float, name: str) -> float:
        s = self.setup
        bps = check_number(name, bps)
        if not s.min_offset_bps <= bps <= s.max_offset_bps:
            raise ValueError(
                f"{name} must put each quote {s.min_offset_bps:g}..{s.max_offset_bps:g} bps "
                f"from the fair price, got {bps:g} bps"
            )
        return float(bps)


class AlwaysQuote(Baseline):
    """Quotes both sides of every market at a fixed spread and size, whatever happens.

    ``spread_bps``: full quoted spread, each side ``spread_bps / 2`` from the
    fair price; ``size``: USDT per side (scalar or one per market; default
    half of ``max_quote_notional``). Never flattens its inventory.
    """

    def __init__(self, setup: AgentSetup, spread_bps: float = 20.0, size=None):
        super().__init__(setup)
        spread_bps = check_number("spread_bps", spread_bps)
        self.half_spread_bps = self._check_offset(0.5 * spread_bps, "spread_bps / 2")
        sizes = self._sizes(size)
        half = self.half_spread_bps
        self.row = quote_actions(setup, half, half, sizes, sizes)[0]

    def act(self, obs, state, episode_start):
        """See ``Baseline.act``."""
        return np.tile(self.row, (len(obs), 1)), state


class AvellanedaStoikov(Baseline):
    """Avellaneda-Stoikov quotes: reservation price shifted against inventory, spread
    widening with volatility.

    With q the signed inventory of a market in units of its ``max_quote_notional``
    (observation ``inventory * capital / max_quote_notional``) and v its realised
    volatility in units of the usual one (observation ``volatility``), the
    quotes are, in bps of the fair price p::

        reservation  r = -risk_bps * q * v^2                  (p * (1 + r / 1e4))
        half spread  h = base_half_spread_bps + risk_bps * v^2 / 2
        bid offset   h - r,   ask offset   h + r              (clipped to the env's range)

    This is the model's ``r = s - q gamma sigma^2 (T - t)`` and ``delta = gamma
    sigma^2 (T - t) + (2 / gamma) ln(1 + gamma / k)`` with ``gamma sigma^2
    (T - t)`` at the usual volatility folded into ``risk_bps`` (a fixed risk
    horizon rather than the episode's end) and the order-arrival term ``(1 /
    gamma) ln(1 + gamma / k)`` into ``base_half_spread_bps``. ``size``: USDT per
    side (scalar or per market; default half of ``max_quote_notional``).
    Never flattens: the skew alone works the inventory off.
    """

    def __init__(
        self,
        setup: AgentSetup,
        risk_bps: float = 10.0,
        base_half_spread_bps: float = 10.0,
        size=None,
    ):
        super().__init__(setup)
        self.risk_bps = check_number("risk_bps", risk_bps, 0.0)
        self.base_half_spread_bps = self._check_offset(base_half_spread_bps, "base_half_spread_bps")
        self.size_actions = self._sizes(size)

    def act(self, obs, state, episode_start):
        """See ``Baseline.act``."""
        s = self.setup
        markets = range(len(s.markets))
        inventory = np.stack([market_obs(obs, m, OB_INVENTORY) for m in markets], axis=1)
        q = inventory * s.capital / np.array(s.max_quote_notional)
        v2 = np.stack([market_obs(obs, m, OB_VOLATILITY) for m in markets], axis=1) ** 2
        reservation = -self.risk_bps * q * v2
        half = self.base_half_spread_bps + 0.5 * self.risk_bps * v2
        sizes = np.broadcast_to(self.size_actions, q.shape)
        return quote_actions(s, half - reservation, half + reservation, sizes, sizes), state


class WithdrawOnStress(Baseline):
    """Quotes like ``AlwaysQuote`` and pulls both quotes while the market looks stressed.

    Withdraws (both sizes to the minimum, i.e. no quote; and, when ``flatten``
    > 0 and the env has the column, sends that share of the position as an
    IOC each step) when any of these holds for the observation:

    * the env's stress indicator is on (``stressed`` = 1);
    * a market's realised volatility >= ``volatility`` times the usual one;
    * a market's liquidation column ``log(1 + flow / reference)`` >= ``liquidations``
      (default 0.5: a step's liquidation notional at least 0.65x the env's
      reference, see ``mmgym.env.observation``);
    * the margin ratio (maintenance / margin equity) >= ``margin``;
    * a market's 1% depth <= ``depth`` of its level at the episode start.

    It returns after ``calm_steps`` steps in a row without a trigger. The
    count of calm steps per env is the policy state: pass the returned
    ``state`` (and ``episode_start``) back as for a recurrent SB3 policy;
    with ``state=None`` every env counts as long calm.
    """

    def __init__(
        self,
        setup: AgentSetup,
        spread_bps: float = 20.0,
        size=None,
        flatten: float = 0.0,
        volatility: float = 3.0,
        liquidations: float = 0.5,
        margin: float = 0.5,
        depth: float = 0.5,
        calm_steps: int = 30,
    ):
        super().__init__(setup)
        self.quote = AlwaysQuote(setup, spread_bps, size)
        self.flatten = check_number("flatten", flatten, 0.0, 1.0)
        if self.flatten > 0 and not setup.flatten:
            raise ValueError("flatten > 0 needs an env with the flatten action (flatten=True)")
        # Thresholds in the observation's units (see the class docstring).
        self.volatility = check_number("volatility", volatility, 0.0)
        self.liquidations = check_number("liquidations", liquidations, 0.0)
        self.margin = check_number("margin", margin, 0.0)
        self.depth = check_number("depth", depth, 0.0)
        self.calm_steps = check_number("calm_steps", calm_steps, 0, integer=True)

    def triggered(self, obs: np.ndarray) -> np.ndarray:
        """bool[N]: whether any withdrawal condition holds for obs[N, D]."""
        s = self.setup
        hit = account_obs(obs, s, OB_STRESS) >= 0.5
        hit |= account_obs(obs, s, OB_MARGIN) >= self.margin
        for m in range(len(s.markets)):
            hit |= market_obs(obs, m, OB_VOLATILITY) >= self.volatility
            hit |= market_obs(obs, m, OB_LIQUIDATIONS) >= self.liquidations
            hit |= market_obs(obs, m, OB_DEPTH) <= self.depth
        return hit

    def act(self, obs, state, episode_start):
        """See ``Baseline.act``."""
        if state is None:
            calm = np.full(len(obs), self.calm_steps, np.int64)
        else:
            calm = np.array(state, np.int64).reshape(-1)
            if calm.shape != (len(obs),):
                raise ValueError(
                    f"state must be the calm-step counts this policy returned, one per "
                    f"observation ({len(obs)}), got shape {np.shape(state)}"
                )
        calm[episode_start] = self.calm_steps
        hit = self.triggered(obs)
        # calm counts untriggered steps in a row, capped so the state stays small
        calm = np.where(hit, 0, np.minimum(calm + 1, self.calm_steps))
        withdrawn = hit | (calm < self.calm_steps)
        actions, _ = self.quote.act(obs, None, episode_start)
        flatten = self.flatten if self.flatten > 0 else None  # intensity is max(a, 0)
        actions[withdrawn] = quote_actions(self.setup, 0.0, 0.0, NO_QUOTE, NO_QUOTE, flatten)[0]
        return actions, calm


class RandomPolicy:
    """Uniform random actions from ``action_space`` (reproducible from ``seed``)."""

    def __init__(self, action_space: spaces.Box, seed: int | None = None):
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """SB3's ``predict``; random whatever ``deterministic`` says."""
        obs, single = _as_batch(observation)
        space = self.action_space
        actions = self.rng.uniform(space.low, space.high, (len(obs), *space.shape))
        actions = actions.astype(np.float32)
        return (actions[0] if single else actions), state


BASELINES = {
    "always_quote": AlwaysQuote,
    "avellaneda_stoikov": AvellanedaStoikov,
    "withdraw_on_stress": WithdrawOnStress,
    "random": RandomPolicy,
}


def agent_setup_of(env) -> AgentSetup:
    """The ``AgentSetup`` of a single env (wrapped or not), a ``MarketMakingVectorEnv``,
    an SB3 VecEnv from ``mmgym.make_sb3_vec_env`` (any SB3 wrappers) or a setup itself."""
    if isinstance(env, AgentSetup):
        return env
    for candidate in (env, getattr(env, "unwrapped", None)):
        core = getattr(candidate, "core", None)
        if core is not None:
            return core.setup
    inner = getattr(env, "venv", None)  # SB3 wrappers and SB3VecEnv
    if inner is not None:
        return agent_setup_of(inner)
    raise TypeError(f"{type(env).__name__} is not an mmgym market-making env")


def make_baseline(name: str, env, **kwargs):
    """Baseline ``name`` (a key of ``BASELINES``) for ``env``'s setup; ``kwargs`` go to its
    constructor (``seed`` for ``random``)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    setup = agent_setup_of(env)
    if name == "random":
        return RandomPolicy(action_space(setup), **kwargs)
    return BASELINES[name](setup, **kwargs)
