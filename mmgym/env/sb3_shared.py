"""Parameter sharing for SB3: E exchanges x K learning makers as E * K slots of one VecEnv.

One policy learns from every maker's experience while one numba call steps
all E exchanges (extra ``train``).
"""

from __future__ import annotations

import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from ..core.config import check_flag, check_number
from .core import EpisodeCore, check_actions, info_rows
from .sb3 import SharedConfigVecEnv


class SharedPolicyVecEnv(SharedConfigVecEnv):
    """SB3 ``VecEnv`` of E exchanges x K makers: slot ``e * K + g`` is maker g of exchange e.

    Every slot has the single-agent spaces, so one SB3 policy drives all makers.
    When a maker of exchange e is liquidated or the horizon is reached, every
    slot of e is done at once: liquidated makers' info has
    ``TimeLimit.truncated=False``, the others ``True``, all have
    ``terminal_observation``, and the returned observations start e's next
    episode. ``seed(s)`` seeds exchange e with ``s + e`` at the next reset.
    ``get_attr`` / ``set_attr`` / ``env_method`` address this adapter (all
    slots share one configuration; ``set_attr`` and ``env_method`` need every
    index). ``render_mode="rgb_array"`` draws one image per exchange.
    """

    render_modes = ("rgb_array",)

    def __init__(
        self,
        n_envs: int = 2,
        n_agents: int = 2,
        scenario="calm",
        regime="freedom",
        render_mode: str | None = None,
        **kwargs,
    ):
        n_envs = check_number("n_envs", n_envs, 1, integer=True)
        n_agents = check_number("n_agents", n_agents, 1, integer=True)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.core = EpisodeCore(scenario, n_envs=n_envs, n_agents=n_agents, regime=regime, **kwargs)
        self.n_envs, self.n_agents = n_envs, n_agents
        batch = self.core.batch
        super().__init__(n_envs * n_agents, batch.observation_space(), batch.action_space())
        self._generators: list[np.random.Generator | None] = [None] * n_envs
        self._obs = np.zeros((n_envs, n_agents, batch.obs_size), np.float32)
        self._active = np.ones(n_envs, bool)
        self._actions = None

    @property
    def horizon(self) -> int:
        """Steps in a full episode."""
        return self.core.horizon

    def seed(self, seed: int | None = None) -> list[int]:
        """Seed exchange e with ``seed + e`` at the next reset; returns each slot's seed."""
        base = super().seed(seed)[0]
        self._seeds = [base + slot // self.n_agents for slot in range(self.num_envs)]
        return self._seeds

    def _reset_env(self, e: int) -> None:
        self._obs[e] = self.core.reset(e, self._generators[e])

    def reset(self) -> np.ndarray:
        """Reset every exchange; observations [n_envs * n_agents, D]."""
        for e in range(self.n_envs):
            seed = self._seeds[e * self.n_agents]
            if seed is not None or self._generators[e] is None:
                self._generators[e], _ = seeding.np_random(seed)
            self._reset_env(e)
        self._reset_seeds()
        self._reset_options()
        return self._obs.reshape(self.num_envs, -1).copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Keep ``actions`` for ``step_wait``."""
        self._actions = actions

    def step_wait(self):
        """Step every exchange: ``(obs, rewards, dones, infos)`` per agent slot."""
        shape = (self.num_envs, self.action_space.shape[0])
        actions = check_actions(self._actions, shape).reshape(self.n_envs, self.n_agents, -1)
        obs, reward, terminated, truncated = self.core.step(actions, self._active)
        infos = info_rows(self.core)
        self._obs[:] = obs
        finished = terminated.any(axis=1) | truncated
        for e in np.flatnonzero(finished):
            for g in range(self.n_agents):
                slot = infos[e * self.n_agents + g]
                slot["terminal_observation"] = obs[e, g]
                slot["TimeLimit.truncated"] = not terminated[e, g]
            self._reset_env(e)
        done = np.repeat(finished, self.n_agents)
        rewards = reward.ravel().astype(np.float32)
        return self._obs.reshape(self.num_envs, -1).copy(), rewards, done, infos

    def close(self) -> None:
        """Stop the stepping threads, if any (the exchanges live in this process's arrays)."""
        self.core.batch.close()

    def get_images(self) -> list[np.ndarray]:
        """One ``rgb_array`` chart per exchange (SB3's ``render`` tiles them)."""
        from . import render

        return [render.rgb_array(self.core.batch, e, ()) for e in range(self.n_envs)]


def make_shared_sb3_vec_env(
    n_envs: int = 2, n_agents: int = 2, monitor: bool = True, **kwargs
) -> VecEnv:
    """A ready parameter-sharing SB3 VecEnv: ``n_envs`` exchanges x ``n_agents`` makers.

    Keywords as ``parallel_env``. With ``monitor`` (default) it is wrapped in
    ``VecMonitor``, which logs one episode per slot.
    """
    env = SharedPolicyVecEnv(n_envs, n_agents, **kwargs)
    return VecMonitor(env) if check_flag("monitor", monitor) else env
