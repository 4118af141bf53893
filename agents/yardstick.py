"""Throughput yardstick: the same algorithm and network on a classic-control env."""

from __future__ import annotations

import time

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from .algorithms import algorithm_class
from .hyperparams import Hyperparams

# SAC needs continuous actions, so it is measured on Pendulum instead of CartPole.
YARDSTICK_ENVS = {"ppo": "CartPole-v1", "recurrent_ppo": "CartPole-v1", "sac": "Pendulum-v1"}


def yardstick_fps(hp: Hyperparams, timesteps: int, seed: int = 0) -> tuple[str, float]:
    """(env id, training steps per second) of ``hp``'s algorithm, settings, network and
    normalisation on ``YARDSTICK_ENVS[hp.algo]`` with ``hp.n_envs`` envs."""
    env_id = YARDSTICK_ENVS[hp.algo]
    env = make_vec_env(env_id, n_envs=hp.n_envs, seed=seed)
    if hp.normalize is not None:
        env = VecNormalize(env, gamma=hp.algo_kwargs.get("gamma", 0.99), **hp.normalize)
    model = algorithm_class(hp.algo)(
        hp.policy,
        env,
        seed=seed,
        device="cpu",
        policy_kwargs=hp.model_policy_kwargs(),
        **hp.algo_kwargs,
    )
    start = time.perf_counter()
    model.learn(timesteps)
    fps = model.num_timesteps / (time.perf_counter() - start)
    env.close()
    return env_id, fps
