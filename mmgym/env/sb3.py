"""Stable-Baselines3 ``VecEnv`` over the native vector env (extra ``train``)."""

from __future__ import annotations

import warnings

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from ..core.config import check_flag, check_number
from .core import info_rows
from .vector import MarketMakingVectorEnv


class SharedConfigVecEnv(VecEnv):
    """VecEnv whose sub-envs share one configuration, held by ``config_owner()``.

    ``get_attr`` answers from that object once per index (``per_env_attrs``
    maps an attribute to the owner's per-env one). ``set_attr`` and
    ``env_method`` act on every sub-env at once, so they need every index;
    ``env_method`` calls the method once and returns its result for each
    index. Indices must lie in ``[0, num_envs - 1]``.
    """

    per_env_attrs: dict[str, str] = {}
    render_modes: tuple[str, ...] = ()

    def config_owner(self):
        """The object that holds the shared configuration (the wrapped env)."""
        return self

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, (int, np.integer)):
            indices = [indices]
        out = []
        for i in indices:
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                raise ValueError(f"indices must be integers in [0, {self.num_envs - 1}], got {i!r}")
            if not 0 <= i < self.num_envs:
                raise IndexError(
                    f"env index {i} out of range for num_envs={self.num_envs} "
                    f"(allowed 0..{self.num_envs - 1})"
                )
            out.append(int(i))
        return out

    def _all_indices(self, indices, what: str) -> None:
        # One batch holds every sub-env: acting on some of them would change the rest too.
        if set(self._indices(indices)) != set(range(self.num_envs)):
            raise ValueError(
                f"the sub-envs share one configuration and are stepped together: "
                f"{what} needs all indices (indices=None), got {indices!r}"
            )

    def get_attr(self, attr_name: str, indices=None) -> list:
        """The attribute of the shared configuration, once per index."""
        name = self.per_env_attrs.get(attr_name, attr_name)
        value = getattr(self.config_owner(), name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        """Set an attribute of the shared configuration (every index at once)."""
        self._all_indices(indices, "set_attr")
        if attr_name in ("observation_space", "action_space"):
            raise ValueError(f"set_attr: {attr_name} is fixed by the env's configuration")
        if attr_name == "render_mode":
            # SB3's render() reads the adapter's own render_mode: keep both in step.
            if value is not None and value not in self.render_modes:
                raise ValueError(
                    f"render_mode must be one of {list(self.render_modes)} or None, got {value!r}"
                )
            self.render_mode = value
        setattr(self.config_owner(), attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        """Call a method of the shared configuration once; its result for every index."""
        self._all_indices(indices, f"env_method({method_name!r})")
        result = getattr(self.config_owner(), method_name)(*method_args, **method_kwargs)
        return [result] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        """False for every index: the sub-envs are not Gymnasium-wrapped envs."""
        return [False for _ in self._indices(indices)]

    def set_options(self, options=None) -> None:
        """Reject reset options: these envs take none, and SB3's reset resets every env."""
        given = [options] if isinstance(options, dict) else list(options or [])
        if any(given):
            raise ValueError(f"options: these envs take no reset options, got {options!r}")
        super().set_options(options)


class SB3VecEnv(SharedConfigVecEnv):
    """SB3's VecEnv API over ``MarketMakingVectorEnv`` (reset at once, as SB3 expects).

    Infos carry ``INFO_KEYS`` and ``reward_<part>``; finished envs also report
    ``terminal_observation`` and ``TimeLimit.truncated``. ``get_attr`` /
    ``set_attr`` / ``env_method`` address the shared vector env (all sub-envs
    share one configuration): ``get_attr("observation_space")`` and
    ``("action_space")`` give the single-env spaces, other attributes the
    vector env's; ``set_attr`` and ``env_method`` need every index.
    ``seed(s)`` seeds env i with ``s + i`` at the next reset.
    """

    per_env_attrs = {
        "observation_space": "single_observation_space",
        "action_space": "single_action_space",
    }
    render_modes = tuple(MarketMakingVectorEnv.metadata["render_modes"])

    def __init__(self, venv: MarketMakingVectorEnv):
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError("SB3VecEnv needs a vector env with autoreset_mode SAME_STEP")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.render_mode = venv.render_mode
        self._actions = None

    def reset(self):
        """Reset every env (SB3 ``VecEnv.reset``); observations [N, D]."""
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        obs, _ = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Keep ``actions`` for ``step_wait``."""
        self._actions = actions

    def step_wait(self):
        """Step every env: ``(obs, rewards, dones, infos)`` as SB3 expects."""
        obs, reward, terminated, truncated, final_obs = self.venv.step_arrays(self._actions)
        infos = info_rows(self.venv.core)
        for i, last in final_obs.items():
            infos[i]["terminal_observation"] = last
            infos[i]["TimeLimit.truncated"] = bool(truncated[i])
        return obs, reward.astype(np.float32), terminated | truncated, infos

    def close(self) -> None:
        """Close the wrapped vector env."""
        self.venv.close()

    def config_owner(self):
        """The object that holds the shared configuration (the wrapped env)."""
        return self.venv

    def get_images(self) -> list[np.ndarray | None]:
        """One frame per env (``render_mode="rgb_array"``), else ``num_envs`` Nones."""
        if self.render_mode != "rgb_array":
            mode = self.render_mode
            warnings.warn(f"get_images needs render_mode 'rgb_array', got {mode!r}", stacklevel=2)
            return [None] * self.num_envs
        return list(self.venv.render())


def make_sb3_vec_env(n_envs: int = 8, monitor: bool = True, **kwargs) -> VecEnv:
    """A ready SB3 VecEnv of ``n_envs`` market-making envs (``MarketMakingEnv`` keywords).

    With ``monitor`` (default) it is wrapped in ``VecMonitor`` so episode
    returns and lengths reach SB3's logger. Its envs reset in the step that
    ends an episode, as SB3 expects, so ``autoreset_mode`` is not a keyword.
    """
    n_envs = check_number("n_envs", n_envs, 1, integer=True)
    if "autoreset_mode" in kwargs:
        raise ValueError("autoreset_mode: SB3's VecEnv contract fixes it (same step); omit it")
    env = SB3VecEnv(
        MarketMakingVectorEnv(num_envs=n_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
    )
    return VecMonitor(env) if check_flag("monitor", monitor) else env
