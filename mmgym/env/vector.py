"""Native vector env: N exchanges stepped by one numba call.

Env ``i`` is reset from its own generator, seeded ``seed + i`` as in
Gymnasium's vector envs, so its trajectory equals a ``MarketMakingEnv``
reset with ``seed + i`` and then reset without a seed after each episode.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .core import INFO_KEYS, EpisodeCore, check_actions, check_seed, mapping_or_none
from .market_making import MarketMakingEnv

_FINAL_KEYS = ("final_obs", "_final_obs", "final_info", "_final_info")
_MODES = {mode.value: mode for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)}


def _autoreset_mode(mode) -> AutoresetMode:
    if isinstance(mode, AutoresetMode) and mode in _MODES.values():
        return mode
    if isinstance(mode, str) and mode in _MODES:
        return _MODES[mode]
    raise ValueError(
        f"autoreset_mode must be AutoresetMode.NEXT_STEP or AutoresetMode.SAME_STEP "
        f"(or {list(_MODES)}), got {mode!r}"
    )


class MarketMakingVectorEnv(VectorEnv):
    """``num_envs`` copies of ``MarketMakingEnv`` in one batch (same keyword arguments).

    ``autoreset_mode``: ``NEXT_STEP`` (default; the step after an episode ends
    resets that env and returns its first observation with reward 0) or
    ``SAME_STEP`` (the env resets at once; the last observation is in
    ``info["final_obs"]`` and its info in ``info["final_info"]``, as SB3
    expects). The env enforces its own horizon and ``max_episode_steps`` (a
    time limit, as Gymnasium's ``TimeLimit`` on a single env). ``info`` holds one array per
    key of ``INFO_KEYS`` (and ``reward_<part>``), with the usual ``_key`` masks.
    ``threads`` (1) splits the envs between that many threads for the engine
    step; the envs share no state, so trajectories do not depend on it. It
    pays off for many envs (N = 256 on 2 cores: about 1.6x); for a handful the
    hand-over between threads costs more than it saves.
    """

    # The single env's render modes and frame rate (Gymnasium's vector video
    # wrappers read ``render_fps``), plus the autoreset mode.
    metadata = {**MarketMakingEnv.metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        scenario="calm",
        regime="freedom",
        market=None,
        dt=None,
        horizon=None,
        render_mode: str | None = None,
        autoreset_mode=AutoresetMode.NEXT_STEP,
        regime_kwargs: dict | None = None,
        duties=None,
        overrides: dict | None = None,
        max_episode_steps: int | None = None,
        **setup_kwargs,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be 'ansi', 'rgb_array' or None, got {render_mode!r}"
            )
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = render_mode
        self.num_envs = int(num_envs)
        self.core = EpisodeCore(
            scenario,
            n_envs=self.num_envs,
            n_agents=1,
            regime=regime,
            regime_kwargs=regime_kwargs,
            duties=duties,
            overrides=overrides,
            market=market,
            dt=dt,
            horizon=horizon,
            max_episode_steps=max_episode_steps,
            **setup_kwargs,
        )
        batch = self.core.batch
        self.single_action_space = batch.action_space()
        self.single_observation_space = batch.observation_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._generators = [None] * self.num_envs
        self._needs_reset = np.zeros(self.num_envs, bool)
        # Every info key is set for every env: one read-only mask serves them all.
        self._every_env = np.ones(self.num_envs, bool)
        self._every_env.flags.writeable = False
        self._mask_keys = None  # "_key" of every info key, known after the first step
        self._started = False
        self._obs = np.zeros((self.num_envs, batch.obs_size), np.float32)
        self._action_shape = (self.num_envs, batch.action_size)

    @property
    def horizon(self) -> int:
        """Steps in a full episode of each env."""
        return self.core.horizon

    def reset(self, *, seed=None, options: dict | None = None):
        """Reset every env (or those in ``options["reset_mask"]``); env i takes ``seed + i``."""
        options = mapping_or_none("options", options)  # keys other than reset_mask are ignored
        mask = np.ones(self.num_envs, bool)
        if "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
                raise ValueError(
                    f"reset_mask must be a bool array of shape ({self.num_envs},), "
                    f"got dtype {mask.dtype} and shape {mask.shape}"
                )
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seed = check_seed(seed)
            seeds = [seed + i for i in range(self.num_envs)]
            # As Gymnasium's VectorEnv.reset does (the envs draw from their own generators).
            self._np_random, self._np_random_seed = seeding.np_random(int(seed))
        elif isinstance(seed, (list, tuple, np.ndarray)) and len(seed) == self.num_envs:
            seeds = [check_seed(s, "seed: each env's seed") for s in seed]
        else:
            raise ValueError(f"seed must be an int, None or {self.num_envs} seeds, got {seed!r}")
        for i in np.flatnonzero(mask):
            if seeds[i] is not None or self._generators[i] is None:
                self._generators[i], _ = seeding.np_random(seeds[i])
            self._obs[i] = self.core.reset(i, self._generators[i])[0]
            self._needs_reset[i] = False
        self._started = True
        return self._obs.copy(), {}

    def step(self, actions):
        """One step of every env from ``actions`` [N, A], autoresetting per ``autoreset_mode``."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            obs, reward, terminated, truncated, final_obs = self.step_arrays(actions)
            infos = self._infos()
            if final_obs:
                # Gymnasium's layout: an object array of last observations, and the
                # last step's info with masks that select the finished envs.
                done = terminated | truncated
                last = np.full(self.num_envs, None, dtype=object)
                for i, row in final_obs.items():
                    last[i] = row
                # Entries a mask leaves out hold zeros, as Gymnasium's vector envs fill them.
                final_info = {key: np.where(done, value, 0) for key, value in infos.items()}
                final_info.update({f"_{key}": done.copy() for key in list(final_info)})
                # A reset env's info is its reset info, which is empty.
                infos = {key: np.where(done, 0, value) for key, value in infos.items()}
                infos["final_obs"], infos["_final_obs"] = last, done.copy()
                infos["final_info"], infos["_final_info"] = final_info, done.copy()
                return obs, reward, terminated, truncated, self._with_masks(infos, ~done)
            return obs, reward, terminated, truncated, self._with_masks(infos)
        actions = check_actions(actions, self._action_shape)
        active = ~self._needs_reset
        obs, reward, terminated, truncated = self.core.step(actions[:, None, :], active)
        obs, reward, terminated = obs[:, 0], reward[:, 0], terminated[:, 0]
        truncated = truncated & ~terminated
        resetting = ~active
        reward[resetting] = 0.0
        terminated[resetting] = False
        truncated[resetting] = False
        self._obs[active] = obs[active]
        for i in np.flatnonzero(resetting):
            self._obs[i] = self.core.reset(i, self._generators[i])[0]
        self._needs_reset = (terminated | truncated) & active
        # A reset env's info is its reset info, which is empty.
        infos = self._with_masks(self._infos(), active if resetting.any() else None)
        return self._obs.copy(), reward, terminated, truncated, infos

    def step_arrays(self, actions):
        """``step`` without Gymnasium's info dict, for adapters that build their own
        (``SAME_STEP`` mode only).

        Returns (obs, reward, terminated, truncated, final_obs): fresh arrays,
        the finished envs already reset, and ``final_obs`` {env: last
        observation} of those envs. The step's info values are in
        ``core.last_info`` and ``core.last_parts``.
        """
        if self.autoreset_mode != AutoresetMode.SAME_STEP:
            raise RuntimeError("step_arrays needs autoreset_mode SAME_STEP")
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = check_actions(actions, self._action_shape)
        # In SAME_STEP mode every env is live: finished ones were reset at once.
        obs, reward, terminated, truncated = self.core.step(actions[:, None, :], self._every_env)
        obs, reward, terminated = obs[:, 0], reward[:, 0], terminated[:, 0]
        truncated = truncated & ~terminated
        final_obs = {}
        for i in np.flatnonzero(terminated | truncated):
            final_obs[i] = obs[i].copy()
            obs[i] = self.core.reset(i, self._generators[i])[0]
        self._obs[:] = obs
        return obs, reward, terminated, truncated, final_obs

    def _infos(self) -> dict:
        """The last step's info: one array per key, views of the core's fresh table."""
        core = self.core
        infos = dict(zip(INFO_KEYS, core.last_info[:, :, 0], strict=True))
        infos.update({f"reward_{part}": value[:, 0] for part, value in core.last_parts.items()})
        return infos

    def _with_masks(self, infos: dict, stepped: np.ndarray | None = None) -> dict:
        """``infos`` with Gymnasium's ``_key`` masks: every key is set for every env
        that stepped (all of them unless ``stepped`` says otherwise)."""
        if self._mask_keys is None:
            self._mask_keys = tuple(f"_{key}" for key in infos if key not in _FINAL_KEYS)
        mask = self._every_env if stepped is None else stepped.copy()
        infos.update(dict.fromkeys(self._mask_keys, mask))
        return infos

    def close_extras(self, **kwargs):
        """Stop the stepping threads, if any."""
        core = getattr(self, "core", None)  # absent when __init__ rejected its arguments
        if core is not None:
            core.batch.close()

    def render(self):
        """One frame per env (ansi strings or rgb arrays), or None without ``render_mode``."""
        if self.render_mode is None:
            gym.logger.warn("render() needs render_mode='ansi' or 'rgb_array' at construction")
            return None
        from . import render

        if self.render_mode == "ansi":
            return tuple(render.ansi(self.core.batch, e, 0, ()) for e in range(self.num_envs))
        return tuple(render.rgb_array(self.core.batch, e, ()) for e in range(self.num_envs))


def make_vector_env(num_envs: int = 1, max_episode_steps=None, **kwargs) -> MarketMakingVectorEnv:
    """Vector entry point of ``mmgym/MarketMaking-v0`` (``gymnasium.make_vec``).

    The env enforces ``max_episode_steps`` itself, as the time limit that
    ``gymnasium.make`` wraps around a single env: episodes are truncated there
    or at the horizon, whichever comes first, and the observation's elapsed
    share is of the horizon in both.
    """
    return MarketMakingVectorEnv(num_envs=num_envs, max_episode_steps=max_episode_steps, **kwargs)
