"""K learning market makers in one exchange: a PettingZoo ``ParallelEnv`` (extra ``marl``).

``MarketMakingParallelEnv`` gives each maker its own observation, reward
and account; ``mmgym.env.sb3_shared`` trains one policy for all of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from ..core.config import check_number
from .core import EpisodeCore, check_actions, check_seed, info_rows, mapping_or_none

RENDER_MODES = ("ansi", "rgb_array")


def _check_render_mode(render_mode, allowed) -> None:
    if render_mode is not None and render_mode not in allowed:
        raise ValueError(f"render_mode must be one of {list(allowed)} or None, got {render_mode!r}")


MAX_AGENTS = 1000  # learning makers in one exchange


class MarketMakingParallelEnv(ParallelEnv):
    """
    ## Description

    ``n_agents`` learning market makers, ``maker_0`` .. ``maker_{K-1}``, each
    with its own account in one exchange of ``MarketMakingEnv``'s scenario
    and population. They quote the same markets, so they compete for the
    same flow and queue places and share the venue's liquidations and ADL.

    ## Action and Observation Spaces

    Per agent, as in ``MarketMakingEnv``: ``Box(-1, 1, (5 * M,), float32)``
    actions (bid/ask offsets, bid/ask sizes, flatten intensity per market)
    and ``12 * M + 10`` normalised observation columns of its own account.

    ## Rewards

    Each agent's reward under the chosen ``regime``, from its own account.

    ## Episode End

    An agent terminates when its account is liquidated or its equity is gone;
    it leaves ``agents`` after the step that reports it, and from then on
    quotes nothing (its resting quotes are cancelled, it does not flatten).
    All live agents are truncated after ``horizon`` steps. ``infos[agent]``
    carries ``mmgym.env.core.INFO_KEYS`` and ``reward_<part>`` every step.

    ## Arguments

    ``n_agents`` (2, at most 1,000), ``scenario``, ``regime``, ``render_mode``
    ("ansi" or "rgb_array", both for ``maker_0``), ``max_episode_steps`` (a
    time limit before the horizon, as in the vector env) and every keyword
    argument of ``MarketMakingEnv``. ``reset(seed=s)`` draws the exchange from
    ``gymnasium.utils.seeding.np_random(s)``; ``reset()`` continues that
    generator.

    ## Version History

    * v0: initial version.
    """

    metadata = {
        "name": "mmgym_market_making_v0",
        "render_modes": list(RENDER_MODES),
        "is_parallelizable": True,
        "render_fps": 4,
    }

    def __init__(
        self,
        n_agents: int = 2,
        scenario="calm",
        regime="freedom",
        render_mode: str | None = None,
        **kwargs,
    ):
        n_agents = check_number("n_agents", n_agents, 1, MAX_AGENTS, integer=True)
        _check_render_mode(render_mode, RENDER_MODES)
        self.render_mode = render_mode
        self.core = EpisodeCore(scenario, n_envs=1, n_agents=n_agents, regime=regime, **kwargs)
        batch = self.core.batch
        self.possible_agents = [f"maker_{g}" for g in range(n_agents)]
        self.agents: list[str] = []
        self._index = {agent: g for g, agent in enumerate(self.possible_agents)}
        # One space object per agent, so seeding one agent's space leaves the others alone.
        self._action_spaces = {agent: batch.action_space() for agent in self.possible_agents}
        self._observation_spaces = {
            agent: batch.observation_space() for agent in self.possible_agents
        }
        self._action_shape = (batch.action_size,)
        self._active = np.ones(1, bool)
        self.np_random: np.random.Generator | None = None
        self.history: deque = deque(maxlen=600)

    @property
    def horizon(self) -> int:
        """Steps in a full episode."""
        return self.core.horizon

    def observation_space(self, agent: str) -> spaces.Box:
        """The observation space of ``agent`` (the same object on every call)."""
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        """The action space of ``agent`` (the same object on every call)."""
        return self._action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        """A fresh exchange with every agent back: ``(observations, infos)`` by agent."""
        mapping_or_none("options", options)  # keys this env does not read are ignored
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(check_seed(seed))
        obs = self.core.reset(0, self.np_random)
        self.agents = list(self.possible_agents)
        self.history.clear()
        return {a: obs[g] for g, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def _batch_actions(self, actions) -> np.ndarray:
        """float64[1, K, A]: the live agents' checked actions, all -1 (no quotes) for the rest."""
        if not isinstance(actions, Mapping):
            kind = type(actions).__name__
            raise ValueError(f"actions must be a dict {{agent: action}}, got {kind}")
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in self.agents]
        if missing or unknown:
            raise ValueError(
                f"actions must hold exactly the live agents {self.agents}: "
                f"missing {missing}, not live or unknown {unknown}"
            )
        out = np.full((1, self.max_num_agents, self._action_shape[0]), -1.0)
        for agent in self.agents:
            try:
                checked = check_actions(actions[agent], self._action_shape)
            except ValueError as err:
                raise ValueError(f"actions[{agent!r}]: {err}") from None
            out[0, self._index[agent]] = checked
        return out

    def step(self, actions):
        """One step from ``{agent: action}`` for the live agents; PettingZoo's five dicts."""
        if not self.agents:
            raise RuntimeError("no live agents: call reset() before step()")
        batch_actions = self._batch_actions(actions)
        obs, reward, terminated, truncated = self.core.step(batch_actions, self._active)
        rows = info_rows(self.core)
        self.history.append(rows[0])
        live = self.agents
        index = self._index
        out_obs = {a: obs[0, index[a]] for a in live}
        rewards = {a: float(reward[0, index[a]]) for a in live}
        terms = {a: bool(terminated[0, index[a]]) for a in live}
        truncs = {a: bool(truncated[0]) and not terms[a] for a in live}  # as the single env
        infos = {a: rows[index[a]] for a in live}
        self.agents = [a for a in live if not (terms[a] or truncs[a])]
        return out_obs, rewards, terms, truncs, infos

    def render(self):
        """The ansi ladder or the rgb_array chart of ``maker_0``."""
        if self.render_mode is None:
            gym.logger.warn("render() needs render_mode='ansi' or 'rgb_array' at construction")
            return None
        from . import render

        if self.render_mode == "ansi":
            return render.ansi(self.core.batch, 0, 0, self.history)
        return render.rgb_array(self.core.batch, 0, self.history)


def parallel_env(
    n_agents: int = 2,
    scenario="calm",
    regime="freedom",
    render_mode: str | None = None,
    **kwargs,
) -> MarketMakingParallelEnv:
    """PettingZoo ``ParallelEnv`` with ``n_agents`` learning makers in one exchange."""
    return MarketMakingParallelEnv(n_agents, scenario, regime, render_mode, **kwargs)
