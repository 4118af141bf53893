"""The incentive experiment: do learning market makers withdraw in a cascade when free,
and what do obligations or liability do to the cascade?

    python -m mmgym.experiments.incentives                 # full run (see --help)
    python -m mmgym.experiments.incentives --quick         # minutes, for CI
    python -m mmgym.experiments.incentives --regimes obligation --train-seeds 3 4 5
    python -m mmgym.experiments.incentives --config configs/hyperparams/ppo_long_rollouts.yaml

For each regime (``freedom``, ``obligation``, ``liability``) and training
seed, PPO trains a market maker on ``oct10`` (episodes start at a random
time before the shock, so the clock does not reveal it, and run to their
horizon even when the maker is liquidated, as in the evaluation). Each trained
policy is then evaluated under the regime it was trained under, and every
baseline under each regime, on ``oct10`` and ``calm`` with held-out seeds.
The output directory gets:

* ``results.md``: per scenario and regime, mean and 95% interval of MM
  presence in the stress window, 1% depth trough, alt price trough,
  liquidation and ADL notional, insurance-fund drawdown, MM PnL and reward.
  For a learned policy the interval is over training seeds (each seed's
  value is its mean over the evaluation seeds); for a baseline, over the
  evaluation seeds. Then the learned makers again, one training seed a row.
* ``<regime>.png``: depth and price through ``oct10`` with the learned
  maker's quoting shaded and the stress indicator marked (first training
  seed, first evaluation seed);
* ``results.json``: every number, with the settings that produced them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..core.config import ConfigError

REGIMES = ("freedom", "obligation", "liability")
COMMAND = ("python", "-m", "mmgym.experiments.incentives")  # how the experiment is run
TRAIN_SCENARIO = "oct10"
EVAL_SCENARIOS = ("oct10", "calm")
TABLE = (
    ("presence_stress", "presence in stress"),
    ("presence", "presence"),
    ("compliance", "compliant steps"),
    ("duties_met", "duties met"),
    ("liquidated", "MM liquidated"),
    ("depth_trough", "1% depth trough"),
    ("price_trough", "price trough"),
    ("liq_notional", "liquidations (USDT)"),
    ("adl_notional", "ADL (USDT)"),
    ("fund_drawdown", "fund drawdown"),
    ("mm_pnl", "MM PnL (USDT)"),
    ("reward", "reward"),
)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much to train and evaluate."""

    total_timesteps: int
    train_seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    n_envs: int
    horizon: int
    # Episodes start at a random engine step in this range: in oct10 before its
    # shock (step 3000), so the clock does not tell when it comes.
    starts: dict[str, tuple[int, int]]
    regimes: tuple[str, ...] = REGIMES
    # PPO hyperparameters (rl-zoo3 YAML); None: configs/hyperparams/ppo.yaml.
    config: str | None = None


FULL = Budget(
    1_000_000,
    (0, 1, 2),
    (1000, 1001, 1002, 1003, 1004),
    8,
    3000,
    {"oct10": (1800, 2700), "calm": (60, 600)},
)
QUICK = Budget(2048, (0,), (1000, 1001), 2, 300, {"oct10": (2950, 3000), "calm": (60, 100)})


def env_kwargs(scenario: str, budget: Budget) -> dict:
    """The env's episode window in ``scenario``."""
    return {"horizon": budget.horizon, "warmup": budget.starts[scenario]}


def _liquidations(row: dict) -> dict:
    return {**row, "liq_notional": row["liq_notional_long"] + row["liq_notional_short"]}


def train_one(budget: Budget, out: Path, regime: str, seed: int, argv, progress_bar: bool):
    """Train one PPO maker into ``out/runs/<regime>-<seed>``; return its steps per second."""
    import torch

    from agents.training import plan_run, train

    torch.set_num_threads(1)  # small MLPs: one thread is faster than contending for two
    plan = plan_run(
        scenario=TRAIN_SCENARIO,
        regime=regime,
        total_timesteps=budget.total_timesteps,
        n_envs=budget.n_envs,
        seed=seed,
        run_dir=out / "runs" / f"{regime}-{seed}",
        eval_seeds=budget.eval_seeds,
        yardstick=False,
        horizon=budget.horizon,
        config=budget.config,
        # Trained as evaluated: a liquidated maker stays in the episode, so
        # the duties it then misses and the losses it then bears still count.
        env_kwargs={
            "warmup": budget.starts[TRAIN_SCENARIO],
            "terminate_on_liquidation": False,
        },
    )
    _, _, fps = train(plan, argv, progress_bar=progress_bar)
    print(f"trained {regime} seed {seed}: {fps:,.0f} steps/s", flush=True)
    return fps


def train_policies(
    budget: Budget, out: Path, progress_bar: bool, jobs: int = 1, command=COMMAND
) -> dict:
    """Train one PPO maker per (regime, seed), ``jobs`` at a time in separate processes
    (each run is seeded, so the result does not depend on ``jobs``); return
    {regime: [(seed, policy loaded from its run directory, fps)]}. Each run directory
    records ``command``, the experiment's command line as words."""
    from agents.runs import load_run

    runs = [(regime, seed) for regime in budget.regimes for seed in budget.train_seeds]
    argv = list(command)
    if jobs == 1:
        fps = [train_one(budget, out, r, s, argv, progress_bar) for r, s in runs]
    else:
        # Fresh interpreters: forking a process that has imported torch is unsafe.
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = [pool.submit(train_one, budget, out, r, s, argv, False) for r, s in runs]
            fps = [p.result() for p in pending]
    trained = {regime: [] for regime in budget.regimes}
    for (regime, seed), f in zip(runs, fps, strict=True):
        policy = load_run(out / "runs" / f"{regime}-{seed}").policy
        trained[regime].append((seed, policy, f))
    return trained


def evaluate_all(trained: dict, budget: Budget) -> dict:
    """Rows of every (scenario, regime, policy): {scenario: {regime: {policy: [rows]}}}.

    A learned policy's rows are per training seed (means over evaluation seeds);
    a baseline's are per evaluation seed.
    """
    from agents.baselines import BASELINES, make_baseline
    from agents.evaluation import METRICS, evaluate
    from mmgym.env.batch import agent_setup
    from mmgym.scenario.runner import load_scenario

    results, series = {}, {}
    for scenario in EVAL_SCENARIOS:
        kwargs = env_kwargs(scenario, budget)
        setup = agent_setup(load_scenario(scenario), **kwargs)
        results[scenario] = {}
        for regime in budget.regimes:
            table = {}
            runs = []
            for seed, policy, _ in trained[regime]:
                ev = evaluate(policy, scenario, regime, budget.eval_seeds, **kwargs)
                means = {k: float(np.nanmean([r[k] for r in ev.rows])) for k in METRICS}
                runs.append({"train_seed": seed, **_liquidations(means)})
                if scenario == TRAIN_SCENARIO and seed == budget.train_seeds[0]:
                    series[regime] = {k: v.tolist() for k, v in ev.series.items()}
            table["ppo"] = runs
            for name in BASELINES:
                extra = {"seed": 0} if name == "random" else {}
                policy = make_baseline(name, setup, **extra)
                ev = evaluate(policy, scenario, regime, budget.eval_seeds, **kwargs)
                table[name] = [
                    {"eval_seed": s, **_liquidations(r)}
                    for s, r in zip(budget.eval_seeds, ev.rows, strict=True)
                ]
            results[scenario][regime] = table
            print(f"evaluated {scenario} / {regime}", flush=True)
    return {"rows": results, "series": series}


def _cell(values) -> str:
    from agents.evaluation import interval

    i = interval(values)
    if not math.isfinite(i.mean):
        return "n/a"
    if not math.isfinite(i.low):
        return f"{i.mean:.3g}"
    return f"{i.mean:.3g} [{i.low:.3g}, {i.high:.3g}]"


def markdown(results: dict, budget: Budget) -> str:
    """One table per evaluation scenario: rows are (regime, policy), columns TABLE."""
    lines = [
        f"PPO trained on `{TRAIN_SCENARIO}` for {budget.total_timesteps:,} steps per run, "
        f"training seeds {list(budget.train_seeds)}, evaluation seeds "
        f"{list(budget.eval_seeds)}, episodes of {budget.horizon} steps starting at a random "
        f"step in {budget.starts}. Mean and 95% interval; "
        "`ppo`: over training seeds, baselines: over evaluation seeds.",
        "",
    ]
    for scenario, by_regime in results["rows"].items():
        lines += [f"### {scenario}", ""]
        lines.append("| regime | policy | " + " | ".join(label for _, label in TABLE) + " |")
        lines.append("|---|---|" + "---|" * len(TABLE))
        for regime, table in by_regime.items():
            for policy, rows in table.items():
                cells = [_cell([r[key] for r in rows]) for key, _ in TABLE]
                lines.append(f"| {regime} | {policy} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += _per_seed(scenario, by_regime)
    return "\n".join(lines)


def _per_seed(scenario: str, by_regime: dict) -> list[str]:
    """The learned makers one training seed a row: training can settle in different
    modes (e.g. surviving the crash or not), which a mean over seeds hides."""
    lines = [
        f"Learned makers on `{scenario}` per training seed (means over evaluation seeds):",
        "",
        "| regime | training seed | " + " | ".join(label for _, label in TABLE) + " |",
        "|---|---|" + "---|" * len(TABLE),
    ]
    for regime, table in by_regime.items():
        for row in table["ppo"]:
            cells = [f"{row[key]:.3g}" for key, _ in TABLE]
            lines.append(f"| {regime} | {row['train_seed']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def figure(regime: str, series: dict, path: Path) -> None:
    """Depth and price through oct10 with the learned maker's quoting shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = np.arange(len(series["mid"])) / 60.0
    quoted = np.asarray(series["quoted"]) > 0.5
    stressed = np.asarray(series["stressed"]) > 0.5
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for ax, key, label in (
        (axes[0], "mid", "ALT mid (USDT)"),
        (axes[1], "depth_1pct", "1% depth (USDT)"),
    ):
        ax.plot(minutes, series[key], color="black", lw=1)
        ax.fill_between(
            minutes,
            0,
            1,
            where=quoted,
            transform=ax.get_xaxis_transform(),
            color="tab:green",
            alpha=0.15,
            lw=0,
            label="learned maker quoting",
        )
        ax.fill_between(
            minutes,
            0,
            0.04,
            where=stressed,
            transform=ax.get_xaxis_transform(),
            color="tab:red",
            lw=0,
            label="stress indicator on",
        )
        ax.set_ylabel(label)
    axes[0].legend(loc="lower left")
    axes[0].set_title(f"oct10, PPO trained under '{regime}'")
    axes[1].set_xlabel("minutes into the episode")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    """Command line: train, evaluate and report (see the module docstring)."""
    parser = argparse.ArgumentParser(prog=" ".join(COMMAND), description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget, for CI")
    parser.add_argument("--total-timesteps", type=int, help="training steps per run")
    parser.add_argument("--train-seeds", type=int, nargs="+", help="training seeds")
    parser.add_argument("--eval-seeds", type=int, nargs="+", help="held-out evaluation seeds")
    parser.add_argument("--n-envs", type=int, help="parallel envs per training run")
    parser.add_argument("--out", type=Path, help="output directory (default runs/incentives-*)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--jobs", type=int, default=1, help="training runs at a time, one process each (1)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="PPO hyperparameters YAML (configs/hyperparams/ppo.yaml); its n_timesteps and "
        "n_envs give way to the experiment's budget (--total-timesteps, --n-envs)",
    )
    parser.add_argument(
        "--regimes", nargs="+", choices=REGIMES, help="regimes to train and evaluate (all)"
    )
    args = parser.parse_args(argv)
    # Checked before the output directory exists and before hours of training.
    for flag, value, hi in (
        ("--total-timesteps", args.total_timesteps, 2**62),
        ("--n-envs", args.n_envs, 4096),  # as in the hyperparameter files
        ("--jobs", args.jobs, 1024),
    ):
        if value is not None and not 1 <= value <= hi:
            parser.error(f"{flag} must be >= 1 and <= {hi}, got {value}")
    for flag, seeds in (("--train-seeds", args.train_seeds), ("--eval-seeds", args.eval_seeds)):
        for seed in seeds or ():
            if not 0 <= seed < 2**32:  # numpy's seed range, as agents.training checks
                parser.error(f"{flag} must be in [0, 2**32 - 1], got {seed}")
        if seeds and len(set(seeds)) != len(seeds):
            parser.error(f"{flag} must not repeat a seed, got {seeds}")
    budget = QUICK if args.quick else FULL
    changes = {
        "total_timesteps": args.total_timesteps,
        "train_seeds": tuple(args.train_seeds) if args.train_seeds else None,
        "eval_seeds": tuple(args.eval_seeds) if args.eval_seeds else None,
        "n_envs": args.n_envs,
        "regimes": tuple(dict.fromkeys(args.regimes)) if args.regimes else None,
        "config": str(args.config) if args.config else None,
    }
    budget = dataclasses.replace(budget, **{k: v for k, v in changes.items() if v is not None})
    if budget.config is not None:
        from agents.hyperparams import load_hyperparams

        try:  # a bad file fails now, not in the first training process
            load_hyperparams(
                "ppo", budget.config, n_timesteps=budget.total_timesteps, n_envs=budget.n_envs
            )
        except ConfigError as error:
            parser.error(f"--config: {error}")
    import torch

    torch.set_num_threads(1)  # small MLPs: one thread is faster than contending for two
    out = args.out or Path("runs") / time.strftime("incentives-%Y%m%d-%H%M%S")
    from agents.runs import check_new_run_dir

    for regime in budget.regimes:  # a clash fails now, not after the earlier regimes' training
        for seed in budget.train_seeds:
            run_dir = out / "runs" / f"{regime}-{seed}"
            try:
                check_new_run_dir(run_dir)
            except ConfigError:
                parser.error(f"--out: {run_dir} exists and is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    given = sys.argv[1:] if argv is None else list(argv)
    command = [*COMMAND, *given]
    trained = train_policies(budget, out, not args.no_progress, args.jobs, command)
    results = evaluate_all(trained, budget)
    results["budget"] = dataclasses.asdict(budget)
    results["training_fps"] = {r: [fps for _, _, fps in runs] for r, runs in trained.items()}
    results["seconds"] = time.perf_counter() - start
    results["command"] = shlex.join(command)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = markdown(results, budget)
    (out / "results.md").write_text(table)
    for regime, series in results["series"].items():
        figure(regime, series, out / f"{regime}.png")
    print(table)
    print(f"wrote {out} in {results['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
