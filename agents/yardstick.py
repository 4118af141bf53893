"""Throughput yardstick: the same algorithm and network on a classic-control env.

``python -m agents.yardstick`` measures the training throughput of the
default run against the yardstick in alternating rounds, so that both see
the same machine: on shared machines the speed drifts by tens of percent
within minutes, more than the difference being measured.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecNormalize

from mmgym.core.config import ConfigError

from .algorithms import algorithm_class
from .hyperparams import Hyperparams

# SAC needs continuous actions, so it is measured on Pendulum instead of CartPole.
YARDSTICK_ENVS = {"ppo": "CartPole-v1", "recurrent_ppo": "CartPole-v1", "sac": "Pendulum-v1"}


def yardstick_model(hp: Hyperparams, seed: int = 0):
    """``hp``'s algorithm, settings, network and normalisation on
    ``YARDSTICK_ENVS[hp.algo]`` with ``hp.n_envs`` envs."""
    env = make_vec_env(YARDSTICK_ENVS[hp.algo], n_envs=hp.n_envs, seed=seed)
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
    # Without a logger of its own SB3 leaves an empty folder in the temp dir at every learn().
    model.set_logger(Logger(None, []))
    return model


def yardstick_fps(hp: Hyperparams, timesteps: int, seed: int = 0) -> tuple[str, float]:
    """(env id, training steps per second) of ``yardstick_model(hp)``."""
    model = yardstick_model(hp, seed)
    start = time.perf_counter()
    model.learn(timesteps)
    fps = model.num_timesteps / (time.perf_counter() - start)
    model.get_env().close()
    return YARDSTICK_ENVS[hp.algo], fps


def interleaved_ratio(plan, rounds: int, chunk: int) -> dict:
    """Train ``plan``'s model and its yardstick ``chunk`` steps at a time, alternately,
    for ``rounds`` rounds each (after one warm-up round each).

    SB3 finishes every rollout it starts, so a round can do more than ``chunk``
    steps: the steps each model actually did are counted. Returns both
    throughputs over all rounds, their ratio (mmgym / yardstick) and the
    median and quartiles of the per-round ratios.
    """
    from .callbacks import EpisodeMetrics
    from .training import compile_kernels, make_env, make_model

    model = make_model(plan, make_env(plan))
    compile_kernels(plan)
    yardstick = yardstick_model(plan.hp, plan.seed)
    times = np.zeros((rounds, 2))
    steps = np.zeros((rounds, 2))
    for r in range(-1, rounds):
        for j, (m, callback) in enumerate(((model, EpisodeMetrics()), (yardstick, None))):
            first = m.num_timesteps
            start = time.perf_counter()
            m.learn(chunk, callback=callback, reset_num_timesteps=False)
            if r >= 0:
                times[r, j] = time.perf_counter() - start
                steps[r, j] = m.num_timesteps - first
    fps = steps / times
    per_round = fps[:, 0] / fps[:, 1]
    total = steps.sum(axis=0) / times.sum(axis=0)
    return {
        "mmgym_fps": float(total[0]),
        "yardstick_env": YARDSTICK_ENVS[plan.hp.algo],
        "yardstick_fps": float(total[1]),
        "ratio": float(total[0] / total[1]),
        "ratio_median": float(np.median(per_round)),
        "ratio_quartiles": [float(q) for q in np.quantile(per_round, [0.25, 0.75])],
    }


def main(argv=None) -> None:
    """Command line: time both trainings in interleaved rounds and print the ratio."""
    p = argparse.ArgumentParser(
        prog="python -m agents.yardstick",
        description="Training throughput of train.py's default run against PPO on CartPole-v1, "
        "measured in alternating rounds.",
    )
    p.add_argument("--scenario", default="calm", help="scenario name or YAML path (calm)")
    p.add_argument("--regime", default="freedom", help="reward regime (freedom)")
    p.add_argument("--rounds", type=int, default=12, help="rounds of each (12)")
    p.add_argument(
        "--chunk",
        type=int,
        default=6144,
        help="training steps per round, rounded up to whole rollouts (6144)",
    )
    args = p.parse_args(argv)
    for name in ("rounds", "chunk"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    import torch

    from .training import plan_run

    torch.set_num_threads(1)  # as train.py
    with tempfile.TemporaryDirectory(prefix="mmgym-yardstick-") as tmp:
        try:
            plan = plan_run(
                scenario=args.scenario, regime=args.regime, run_dir=tmp, yardstick=False
            )
        except ConfigError as error:
            p.error(str(error))
        out = interleaved_ratio(plan, args.rounds, args.chunk)
    lo, hi = out["ratio_quartiles"]
    print(
        f"{plan.hp.algo} on {plan.scenario_name} ({plan.regime}), {plan.hp.n_envs} envs, "
        f"{args.rounds} rounds of {args.chunk} steps each\n"
        f"mmgym: {out['mmgym_fps']:.0f} steps/s; {out['yardstick_env']}: "
        f"{out['yardstick_fps']:.0f} steps/s\n"
        f"ratio mmgym / {out['yardstick_env']} = {out['ratio']:.3f} "
        f"(per round: median {out['ratio_median']:.3f}, quartiles {lo:.3f}-{hi:.3f})"
    )


if __name__ == "__main__":
    main()
