"""Train a market maker on an mmgym scenario with Stable-Baselines3, then compare it.

    python train.py                                  # PPO on calm, 1-2 minutes once compiled
    python train.py --scenario oct10 --regime obligation --total-timesteps 1000000
    python train.py --algo sac --config my_sac.yaml --run-dir runs/sac-test
    python train.py --resume runs/<dir> --total-timesteps 200000

Every argument and hyperparameter is checked before training starts. The run
directory is described in ``agents/runs.py``; ``agents.runs.load_run``
loads it back.
"""

from __future__ import annotations

import argparse
import sys

import torch

from agents.evaluation import compare
from agents.hyperparams import ALGOS
from agents.runs import EVALUATION, THROUGHPUT, write_json
from agents.training import evaluate_with_baselines, plan_run, train
from agents.yardstick import yardstick_fps
from mmgym.cli_types import positive_int, seed_int
from mmgym.core.config import ConfigError
from mmgym.env.rewards import REGIMES

YARDSTICK_STEPS = 20_000  # at most this many steps for the throughput yardstick
TABLE_METRICS = (
    "mm_pnl",
    "reward",
    "presence",
    "presence_stress",
    "compliance",
    "duties_met",
    "inventory_max",
    "depth_trough",
    "liq_notional_long",
    "adl_count",
    "fund_drawdown",
)


def parser() -> argparse.ArgumentParser:
    """The command line of ``train.py``."""
    p = argparse.ArgumentParser(
        description="Train an RL market maker on an mmgym scenario and compare it with the "
        "baselines.",
    )
    p.add_argument(
        "--scenario",
        help="scenario name in configs/ or a YAML path (default: calm, or the resumed run's)",
    )
    p.add_argument(
        "--regime",
        choices=sorted(REGIMES),
        help="reward regime (default: freedom, or the resumed run's)",
    )
    p.add_argument(
        "--algo",
        default=None,
        choices=ALGOS,
        help="algorithm (recurrent_ppo needs sb3-contrib; default: ppo, or the resumed run's)",
    )
    p.add_argument(
        "--total-timesteps", type=positive_int, help="training steps (default: the config's)"
    )
    p.add_argument(
        "--n-envs",
        type=positive_int,
        help="parallel envs, at most 4096 (default: the config's)",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        help="training seed (default: 0, or the resumed run's; a resumed run seeds its envs "
        "with seed + the steps already trained)",
    )
    p.add_argument(
        "--config",
        help="hyperparameter YAML (default configs/hyperparams/<algo>.yaml, or the resumed "
        "run's config.yaml)",
    )
    p.add_argument(
        "--run-dir", help="output directory (default runs/<scenario>-<regime>-<algo>-<seed>-<time>)"
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue training the model of RUN_DIR")
    p.add_argument(
        "--eval-seeds",
        type=seed_int,
        nargs="*",
        help="distinct held-out seeds of the final evaluation; none skips it "
        "(default: 1000 1001 1002, or the resumed run's)",
    )
    p.add_argument(
        "--horizon",
        type=positive_int,
        help="env steps per episode (default: the scenario's, or the resumed run's)",
    )
    p.add_argument(
        "--no-yardstick",
        action="store_true",
        help="skip the throughput comparison with CartPole-v1 (Pendulum-v1 for sac)",
    )
    return p


def flag_message(message: str, args: dict) -> str:
    """``message`` with the ``plan_run`` argument it starts with (``n_envs must ...``,
    ``resume: ...``) named by its flag (``--n-envs must ...``)."""
    field = message.split(" ", 1)[0].rstrip(":")
    if field not in args:
        return message
    return "--" + field.replace("_", "-") + message[len(field) :]


def main(argv: list[str] | None = None) -> None:
    """Check the arguments, train, evaluate against the baselines and save the run."""
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args = p.parse_args(argv)
    try:
        plan = plan_run(
            scenario=args.scenario,
            regime=args.regime,
            algo=args.algo,
            total_timesteps=args.total_timesteps,
            n_envs=args.n_envs,
            seed=args.seed,
            config=args.config,
            run_dir=args.run_dir,
            resume=args.resume,
            eval_seeds=args.eval_seeds,
            horizon=args.horizon,
            yardstick=not args.no_yardstick,
        )
    except ConfigError as error:
        p.error(flag_message(str(error), vars(args)))
    # Small MLPs: one thread is several times faster than threads contending for 2 cores.
    torch.set_num_threads(1)
    hp = plan.hp
    print(f"run dir: {plan.run_dir}")
    print(
        f"{hp.algo} on {plan.scenario_name} ({plan.regime}): {hp.n_timesteps} steps, "
        f"{hp.n_envs} envs"
    )
    model, env, fps = train(plan, ["python", "train.py", *argv])
    throughput = {"mmgym_fps": fps}
    print(f"training: {fps:.0f} steps/s")
    if plan.yardstick:
        env_id, yard = yardstick_fps(hp, min(hp.n_timesteps, YARDSTICK_STEPS), plan.seed)
        throughput.update({"yardstick_env": env_id, "yardstick_fps": yard, "ratio": fps / yard})
        print(f"yardstick: {env_id} {yard:.0f} steps/s; ratio mmgym / {env_id} = {fps / yard:.3f}")
        print("(one pair, timed one after the other; python -m agents.yardstick alternates them)")
    write_json(plan.run_dir, THROUGHPUT, throughput)
    if plan.eval_seeds:
        table = compare(evaluate_with_baselines(model, env, plan), TABLE_METRICS)
        title = (
            f"Evaluation on {plan.scenario_name} ({plan.regime}), seeds "
            f"{list(plan.eval_seeds)}: mean ± 95% half-width"
        )
        (plan.run_dir / EVALUATION).write_text(f"{title}\n\n{table}\n")
        print(f"\n{title}\n\n{table}")
    print(f"\nsaved to {plan.run_dir}")


if __name__ == "__main__":
    main()
