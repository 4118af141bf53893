"""Stable-Baselines3 ``VecEnv`` over the native vector env (extra ``train``)."""

from __future__ import annotations

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from .core import INFO_KEYS
from .vector import MarketMakingVectorEnv


class SharedConfigVecEnv(VecEnv):
    """VecEnv whose sub-envs share one configuration, held by ``config_owner()``.

    ``get_attr`` / ``env_method`` answer from that object once per index;
    ``set_attr`` changes it, so it needs every index.
    """

    def config_owner(self):
        return self

    def _indices(self, indices):
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def get_attr(self, attr_name: str, indices=None) -> list:
        value = getattr(self.config_owner(), attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        if len(list(self._indices(indices))) != self.num_envs:
            raise ValueError("the sub-envs share one configuration: set_attr needs all indices")
        setattr(self.config_owner(), attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        method = getattr(self.config_owner(), method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]


class SB3VecEnv(SharedConfigVecEnv):
    """SB3's VecEnv API over ``MarketMakingVectorEnv`` (reset at once, as SB3 expects).

    Finished envs report ``terminal_observation`` and ``TimeLimit.truncated``
    in their info. ``get_attr`` / ``set_attr`` / ``env_method`` address the
    shared vector env: every index sees the same attribute (all sub-envs share
    one configuration). ``seed(s)`` seeds env i with ``s + i`` at the next reset.
    """

    def __init__(self, venv: MarketMakingVectorEnv):
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError("SB3VecEnv needs a vector env with autoreset_mode SAME_STEP")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.render_mode = venv.render_mode
        self._actions = None

    def reset(self):
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        obs, _ = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, final_obs = self.venv.step_arrays(self._actions)
        rows = self.venv.core.last_info[:, :, 0].T.tolist()
        infos = [dict(zip(INFO_KEYS, row, strict=True)) for row in rows]
        for i, last in final_obs.items():
            infos[i]["terminal_observation"] = last
            infos[i]["TimeLimit.truncated"] = bool(truncated[i])
        return obs, reward.astype(np.float32), terminated | truncated, infos

    def close(self) -> None:
        self.venv.close()

    def config_owner(self):
        return self.venv

    def get_images(self):
        return [self.venv.render()]


def make_sb3_vec_env(n_envs: int = 8, monitor: bool = True, **kwargs) -> VecEnv:
    """A ready SB3 VecEnv of ``n_envs`` market-making envs (``MarketMakingEnv`` keywords).

    With ``monitor`` (default) it is wrapped in ``VecMonitor`` so episode
    returns and lengths reach SB3's logger.
    """
    kwargs["autoreset_mode"] = AutoresetMode.SAME_STEP
    env = SB3VecEnv(MarketMakingVectorEnv(num_envs=n_envs, **kwargs))
    return VecMonitor(env) if monitor else env
