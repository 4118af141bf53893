"""``mmgym/MarketMaking-v0``: one learning market maker inside a scenario's population."""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np

from .core import EpisodeCore, check_actions, info_rows, mapping_or_none


class MarketMakingEnv(gym.Env):
    """
    ## Description

    The agent is one market-making account on a simulated crypto derivatives
    venue: limit order books with price-time priority, perpetuals with tiered
    maintenance margin, mark and index prices, a liquidation engine whose
    orders hit the book, an insurance fund and auto-deleveraging. Around it
    trades a scripted population (background flow, leveraged traders, 200
    in ``calm`` and 5,000 in ``oct10``, scripted maker firms that withdraw
    under stress, collateral loopers) driven by an exogenous index. In ``calm`` nothing happens; in
    ``oct10`` a macro shock sets off the cascade of 10 October 2025. The agent
    chooses every step where and how much to quote, and whether to stay.

    ## Action Space

    ``Box(-1, 1, (5 * M,), float32)`` for M quoted markets (4 * M with
    ``flatten=False``). Per market, in order: bid offset, ask offset, bid
    size, ask size, flatten intensity. Offsets map linearly from [-1, 1] to
    ``min_offset_bps..max_offset_bps`` of the fair price (mid of the other
    traders' best quotes, or the mark when a side has none), rounded away
    from it to whole ticks, the bid below the fair price and the ask above
    (a fair price on a tick and a zero offset quote one tick either side). Sizes map
    from [-1, 1] to ``0..max_quote_notional`` USDT at the fair price, in whole
    lots; below ``min_size`` of the
    maximum the side is not quoted, so withdrawing is a legal action. Quotes
    are post-only limit orders in the real book; a quote left unchanged keeps
    its queue place. Flatten intensity ``max(a, 0)`` sends an IOC order at
    the price band's edge for that share of the inventory: a perpetual's
    position, or on a spot book what was bought or sold since the episode
    began (a sell capped at the coins a kept ask leaves free). Values
    outside [-1, 1] are clipped; NaN, inf, a non-float dtype or a wrong
    shape raise ``ValueError``.

    ## Observation Space

    ``Box(float32)`` of ``12 * M + 10`` columns, normalised and clipped to
    the ranges of the table (``mmgym.env.observation.observation_table()``,
    also in the README):
    per quoted market the last return, trend and realised volatility in
    units of the usual volatility, book spread, depth imbalance, 1% depth
    against its level at the start, basis, own inventory, liquidation flow,
    own ADL light and whether each own quote is posted; then own PnL,
    unrealised PnL, margin ratio, own collateral value, insurance fund,
    stress indicator, time of day (sin, cos), elapsed share of the horizon
    and presence (compliant share of the quoting duties' rolling window,
    whatever the regime, so the breach the ``obligation`` reward depends on
    is observable).

    ## Rewards

    In basis points of the agent's capital C, per step (``regime=``):

    * ``freedom``: ``1e4 * dE / C - k * 1e4 * (I / C)^2`` with dE the change
      of mark-to-market equity (fees and rebates included), I the absolute
      inventory notional at mark (on a spot book only what was bought or sold
      since the episode began: the collateral coin the agent starts with is
      not inventory), k = ``inventory_penalty`` (1e-4, charged per env step:
      20% of capital held costs 0.04 bps a step, about 144 bps an hour of
      1 s steps; twice the capital 4 bps a step).
    * ``obligation``: freedom ``+ rebate * compliant - penalty * breach *
      (1 - compliant)``: a step is compliant when both sides are posted with
      spread at most ``max_spread_bps`` (tripled under stress) and at least
      ``min_notional`` a side; breach while the compliant share of the last
      ``window`` steps is below ``min_presence`` (see
      ``mmgym.env.rewards.Duties``), and every step missed in breach pays
      the penalty.
    * ``liability``: freedom ``- share * 1e4 * (fund drawdown + socialised
      loss) / C`` on steps the agent was not quoting both sides.
    * a callable ``f(acc: StepAccounting)``: the fields of ``acc`` hold one value
      per agent (arrays); it returns the rewards as an array of that length or
      a scalar for all.

    ## Starting State

    A fresh population drawn from the seed; the population trades alone for
    ``warmup`` engine steps so the book is full, then the agent starts flat
    with its capital (part of it in collateral coin when the scenario's firms
    use unified accounts). ``reset`` reads no options: they may be None or
    a dict, whose keys are ignored (as PettingZoo's API test expects), and
    anything else raises ``ValueError``. The vector env reads
    ``options={"reset_mask": m}``, a bool array of shape (N,) naming the envs
    to reset.

    ## Episode End

    Terminated when the agent's account is being liquidated or its equity
    is gone (with ``terminate_on_liquidation=False`` the episode runs on to
    the horizon with the account unable to trade, so that market statistics
    cover the same window whatever the agent did). Truncated after
    ``horizon`` steps (default: the rest of the scenario), unless terminated
    on that step. ``info`` carries the same keys every step
    (``mmgym.env.step_record.INFO_FIELDS``: PnL parts, fees, obligation status,
    depth, liquidations, ADL, insurance fund) and ``reward_<part>`` per term
    of the regime.

    ## Arguments

    ``scenario`` ("calm"): name, path or mapping of a scenario in
    ``configs/``; ``overrides``: dict of scenario overrides (switches or
    dotted keys); ``regime`` ("freedom"), ``regime_kwargs``; ``duties``
    (``Duties`` or dict); ``market``: market name or list (default: the
    thinnest perpetual the scripted firms quote); ``dt``: seconds per step (a
    multiple of the scenario's step); ``horizon``: steps per episode;
    ``render_mode``: "ansi" or "rgb_array"; ``terminate_on_liquidation``
    (True); ``threads`` (1): threads a vector env steps its exchanges on
    (trajectories do not depend on it); and ``warmup``, ``capital``,
    ``leverage``, ``max_quote_notional``, ``min_offset_bps``,
    ``max_offset_bps``, ``min_size``, ``flatten``, ``stress_volatility``,
    ``stress_liquidations``, ``stress_move_bps``, ``stress_halflife`` (see
    ``mmgym.env.batch.AgentSetup``).

    ## Vectorized environment

    ``gymnasium.make_vec("mmgym/MarketMaking-v0", num_envs=N,
    vectorization_mode="vector_entry_point")`` steps N exchanges in one numba
    call (``MarketMakingVectorEnv``; ``max_episode_steps``, if given, is a
    time limit, as ``gymnasium.make`` applies it to a single env: episodes are
    truncated there or at the horizon, and the elapsed share stays of the
    horizon; a step that liquidates the agent there reports terminated only,
    as at the horizon, where Gymnasium's ``TimeLimit`` sets both flags;
    ``render()`` returns one frame per env; an env that resets
    reports an empty info: its ``_key`` masks are False);
    ``mmgym.make_sb3_vec_env`` wraps it for
    Stable-Baselines3 (``get_images`` gives one frame per env; ``set_attr`` and
    ``env_method`` act on every env at once and need all indices; reset options
    are rejected); ``mmgym.parallel_env`` puts K learning makers in one
    exchange (PettingZoo).

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        scenario="calm",
        regime="freedom",
        market=None,
        dt=None,
        horizon=None,
        render_mode: str | None = None,
        regime_kwargs: dict | None = None,
        duties=None,
        overrides: dict | None = None,
        **setup_kwargs,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.core = EpisodeCore(
            scenario,
            n_envs=1,
            n_agents=1,
            regime=regime,
            regime_kwargs=regime_kwargs,
            duties=duties,
            overrides=overrides,
            market=market,
            dt=dt,
            horizon=horizon,
            **setup_kwargs,
        )
        batch = self.core.batch
        self.action_space = batch.action_space()
        self.observation_space = batch.observation_space()
        self._action_shape = (1, 1, batch.action_size)
        self._active = np.ones(1, bool)
        self._done = True
        self.history: deque = deque(maxlen=600)

    @property
    def horizon(self) -> int:
        """Agent steps in a full episode."""
        return self.core.horizon

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Draw a fresh exchange and population (see Starting State); ``(obs, {})``."""
        mapping_or_none("options", options)  # keys this env does not read are ignored
        super().reset(seed=seed)
        obs = self.core.reset(0, self.np_random)[0]
        self._done = False
        self.history.clear()
        return obs, {}

    def step(self, action):
        """Apply one action (see Action Space); Gymnasium's five-tuple."""
        if self._done:
            raise RuntimeError("the episode has ended; call reset() before step()")
        actions = check_actions(action, self.action_space.shape).reshape(self._action_shape)
        obs, reward, terminated, truncated = self.core.step(actions, self._active)
        info = info_rows(self.core)[0]
        terminated = bool(terminated[0, 0])
        truncated = bool(truncated[0]) and not terminated  # as the vector env reports it
        self._done = terminated or truncated
        self.history.append(info)
        return obs[0, 0], float(reward[0, 0]), terminated, truncated, info

    def render(self):
        """The ansi ladder (str) or the rgb_array chart (uint8[H, W, 3]), per ``render_mode``."""
        if self.render_mode is None:
            gym.logger.warn("render() needs render_mode='ansi' or 'rgb_array' at construction")
            return None
        from . import render

        if self.render_mode == "ansi":
            return render.ansi(self.core.batch, 0, 0, self.history)
        return render.rgb_array(self.core.batch, 0, self.history)
