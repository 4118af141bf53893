"""Training runs: validate everything up front, train with SB3, save a run directory."""

from __future__ import annotations

import dataclasses
import json
import time
import zipfile
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.vec_env import VecNormalize

import mmgym
from mmgym.core.config import ConfigError, check_number
from mmgym.env.batch import AgentSetup
from mmgym.env.core import EpisodeCore, mapping_or_none

from .algorithms import algorithm_class
from .baselines import BASELINES, make_baseline
from .callbacks import EpisodeMetrics
from .evaluation import Evaluation, evaluate
from .hyperparams import MAX_ENVS, OFF_POLICY, Hyperparams, default_path, load_hyperparams
from .runs import (
    ARGS,
    CHECKPOINTS,
    CONFIG,
    MODEL,
    REPLAY_BUFFER,
    TENSORBOARD,
    VECNORMALIZE,
    NormalizedPolicy,
    check_new_run_dir,
    default_run_dir,
    write_run_info,
)

N_CHECKPOINTS = 5  # checkpoints over a run
SEEDS = 2**32  # numpy's seed range


@dataclasses.dataclass(frozen=True)
class Plan:
    """A validated training run (``plan_run``)."""

    hp: Hyperparams
    scenario: str  # as given: a name in configs/ or a path
    scenario_name: str
    regime: str
    horizon: int | None
    seed: int  # the run's seed (a resumed run's own unless given)
    trained: int  # steps the resumed model has already trained (0 for a new run)
    config: Path
    run_dir: Path
    resume: Path | None
    eval_seeds: tuple[int, ...]
    yardstick: bool
    setup: AgentSetup
    env_kwargs: dict  # more MarketMakingEnv keywords (warmup, market, ...)

    def args(self) -> dict:
        """The run's arguments as written to ``args.json``."""
        return {
            "scenario": self.scenario,
            "regime": self.regime,
            "algo": self.hp.algo,
            "total_timesteps": self.hp.n_timesteps,
            "n_envs": self.hp.n_envs,
            "seed": self.seed,
            "config": str(self.config),
            "run_dir": str(self.run_dir),
            "resume": None if self.resume is None else str(self.resume),
            "eval_seeds": list(self.eval_seeds),
            "horizon": self.horizon,
            "yardstick": self.yardstick,
            "env_kwargs": self.env_kwargs,
        }

    @property
    def env_seed(self) -> int:
        """The seed of this segment's envs (env i takes ``env_seed + i``) and of SB3's
        generators: ``(seed + trained) mod 2**32``. A new run takes ``seed``; a resumed
        one starts past every env seed of its earlier segments (each trained at least one
        step of each of its envs), so short of 2**32 steps it replays none of their
        episodes."""
        return (self.seed + self.trained) % SEEDS


# Settings a saved model is built with: a resumed run must keep them. SAC's entropy
# coefficient is a learned parameter when "auto", and its replay buffer holds
# buffer_size transitions in one column per env.
_FIXED = ("policy", "policy_kwargs", "normalize", "use_sde")
FIXED_ON_RESUME = {
    "ppo": _FIXED,
    "recurrent_ppo": _FIXED,
    "sac": (*_FIXED, "ent_coef", "target_entropy", "buffer_size", "n_envs"),
}


def plan_run(
    scenario: str | None = None,
    regime: str | None = None,
    algo: str | None = None,
    total_timesteps: int | None = None,
    n_envs: int | None = None,
    seed: int | None = None,
    config=None,
    run_dir=None,
    resume=None,
    eval_seeds=None,
    horizon: int | None = None,
    yardstick: bool = True,
    env_kwargs: dict | None = None,
) -> Plan:
    """Check every argument before anything is built; ConfigError naming the field.

    ``scenario`` defaults to ``calm``, ``regime`` to ``freedom``, ``seed`` to 0
    and ``eval_seeds`` to (1000, 1001, 1002) (distinct; empty skips the
    evaluation). ``algo`` defaults to ``ppo``, ``config`` to
    ``configs/hyperparams/<algo>.yaml``. ``total_timesteps`` and ``n_envs``
    override the config. When resuming, every argument not given (None) is
    the resumed run's, ``config`` its ``config.yaml``; a config given instead
    may change the algorithm's settings (learning rate, rollout, ...) but not
    those the saved model is built with (``FIXED_ON_RESUME``). A resumed run
    seeds its envs past the earlier ones (``Plan.env_seed``), and an
    off-policy one needs the run's ``replay_buffer.pkl``.
    """
    saved = {}
    if resume is not None:
        resume = Path(resume)
        if not (resume / MODEL).is_file() or not (resume / ARGS).is_file():
            raise ConfigError(f"resume: {str(resume)!r} has no {MODEL} and {ARGS}")
        saved = json.loads((resume / ARGS).read_text())
        if algo is not None and algo != saved["algo"]:
            raise ConfigError(f"algo: the resumed run used {saved['algo']!r}, got {algo!r}")
        algo = saved["algo"]
        if algo in OFF_POLICY and not (resume / REPLAY_BUFFER).is_file():
            raise ConfigError(
                f"resume: {str(resume)!r} has no {REPLAY_BUFFER}; an off-policy run ({algo}) "
                "goes on only with the transitions it learned from"
            )
        config = resume / CONFIG if config is None else config
        horizon = saved["horizon"] if horizon is None else horizon
        env_kwargs = saved["env_kwargs"] if env_kwargs is None else env_kwargs
    scenario = saved.get("scenario", "calm") if scenario is None else scenario
    regime = saved.get("regime", "freedom") if regime is None else regime
    seed = saved.get("seed", 0) if seed is None else seed
    eval_seeds = saved.get("eval_seeds", (1000, 1001, 1002)) if eval_seeds is None else eval_seeds
    algo = algo or "ppo"
    algorithm_class(algo)  # fails now if its package is missing
    trained = 0 if resume is None else _trained_steps(resume / MODEL)
    config = default_path(algo) if config is None else Path(config)
    check_number("seed", seed, 0, SEEDS - 1, integer=True)
    eval_seeds = tuple(
        check_number("eval_seeds", s, 0, SEEDS - 1, integer=True) for s in eval_seeds
    )
    if len(set(eval_seeds)) < len(eval_seeds):
        # A repeated seed replays the same episode, which would count as independent.
        raise ConfigError(f"eval_seeds must be distinct, got {list(eval_seeds)}")
    if total_timesteps is not None:
        check_number("total_timesteps", total_timesteps, 1, 2**62, integer=True)
    if n_envs is not None:
        check_number("n_envs", n_envs, 1, MAX_ENVS, integer=True)
    hp = load_hyperparams(algo, config, trained, n_timesteps=total_timesteps, n_envs=n_envs)
    if resume is not None:
        _check_resumable(hp, load_hyperparams(algo, resume / CONFIG, trained))
    env_kwargs = mapping_or_none("env_kwargs", env_kwargs)
    own = sorted({"scenario", "regime", "horizon", "n_envs", "num_envs"} & env_kwargs.keys())
    if own:
        raise ConfigError(f"env_kwargs: {own} are set by the plan's own arguments")
    # The env these arguments make, built once (no population yet, nothing compiled).
    core = EpisodeCore(scenario, regime=regime, horizon=horizon, **env_kwargs)
    core.batch.close()
    if run_dir is None:
        run_dir = default_run_dir(core.scenario.name, regime, algo, seed)
    return Plan(
        hp=hp,
        scenario=scenario,
        scenario_name=core.scenario.name,
        regime=regime,
        horizon=horizon,
        seed=int(seed),
        trained=trained,
        config=config,
        run_dir=check_new_run_dir(run_dir),
        resume=resume,
        eval_seeds=eval_seeds,
        yardstick=yardstick,
        setup=core.setup,
        env_kwargs=env_kwargs,
    )


def _trained_steps(path: Path) -> int:
    """The number of steps the model saved at ``path`` has trained."""
    # SB3 keeps it in the archive's JSON "data", which is read without unpickling anything.
    try:
        with zipfile.ZipFile(path) as archive:
            steps = json.loads(archive.read("data")).get("num_timesteps")
    except (zipfile.BadZipFile, KeyError, ValueError):
        steps = None
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"resume: {str(path)!r} is not a trained Stable-Baselines3 model")
    return steps


def _check_resumable(hp: Hyperparams, saved: Hyperparams) -> None:
    """ConfigError if ``hp`` changes a setting the resumed model is built with."""
    for field in FIXED_ON_RESUME[hp.algo]:
        new, old = _setting(hp, field), _setting(saved, field)
        if new != old:
            # "config:" first: the change may come from the file, not from a flag.
            raise ConfigError(
                f"config: {field} cannot change when resuming a {hp.algo} run: the model has "
                f"{old!r}, got {new!r}"
            )


def _setting(hp: Hyperparams, field: str):
    if field in ("policy", "policy_kwargs", "normalize", "n_envs"):
        return getattr(hp, field)
    return hp.algo_kwargs.get(field)


def make_env(plan: Plan):
    """The training VecEnv: ``mmgym.make_sb3_vec_env`` (monitored), normalised as configured
    (with the resumed run's statistics when resuming)."""
    hp = plan.hp
    env = mmgym.make_sb3_vec_env(
        hp.n_envs,
        scenario=plan.scenario,
        regime=plan.regime,
        horizon=plan.horizon,
        **plan.env_kwargs,
    )
    saved = None if plan.resume is None else plan.resume / VECNORMALIZE
    if saved is not None and saved.is_file():
        env = VecNormalize.load(str(saved), env)
        env.training = True
    elif hp.normalize is not None:
        env = VecNormalize(env, gamma=hp.algo_kwargs.get("gamma", 0.99), **hp.normalize)
    return env


def make_model(plan: Plan, env):
    """A new model from the plan's settings, or the resumed run's model on ``env``.

    Always on CPU: SB3's MLP policies train faster there than on a GPU.
    """
    hp = plan.hp
    cls = algorithm_class(hp.algo)
    tensorboard = str(plan.run_dir / TENSORBOARD)
    if plan.resume is not None:
        # The plan's algorithm settings replace the saved ones (FIXED_ON_RESUME agree).
        model = cls.load(
            plan.resume / MODEL,
            env=env,
            device="cpu",
            tensorboard_log=tensorboard,
            **hp.algo_kwargs,
        )
        model.set_random_seed(plan.env_seed)
        if hp.algo in OFF_POLICY:
            model.load_replay_buffer(plan.resume / REPLAY_BUFFER)
        if isinstance(env, VecNormalize):
            # VecNormalize.load keeps the discount the statistics were made with; the
            # rewards are scaled by the model's (a config may change gamma).
            env.gamma = model.gamma
        return model
    return cls(
        hp.policy,
        env,
        seed=plan.env_seed,
        device="cpu",
        tensorboard_log=tensorboard,
        policy_kwargs=hp.model_policy_kwargs(),
        **hp.algo_kwargs,
    )


def compile_kernels(plan: Plan) -> None:
    """Step a one-env copy of the training env once, so that numba compiles (or loads
    from its cache) every kernel before the throughput clock starts."""
    env = mmgym.make_sb3_vec_env(
        1,
        monitor=False,
        scenario=plan.scenario,
        regime=plan.regime,
        horizon=plan.horizon,
        **plan.env_kwargs,
    )
    env.reset()
    env.step(np.zeros((1, *env.action_space.shape), np.float32))
    env.close()


def train(plan: Plan, argv: list[str], progress_bar: bool = True):
    """Build the model, write the run's info, train, save ``model.zip`` (and
    ``vecnormalize.pkl``, and an off-policy model's ``replay_buffer.pkl``).

    The run directory stays empty until the model is built, so a failed build
    can be retried with the same run directory. Returns (model, env, training
    steps per second).
    """
    env = make_env(plan)
    model = make_model(plan, env)
    write_run_info(plan.run_dir, plan.hp, plan.args(), argv)
    hp = plan.hp
    off_policy = hp.algo in OFF_POLICY
    checkpoints = CheckpointCallback(
        save_freq=max(hp.n_timesteps // (N_CHECKPOINTS * hp.n_envs), 1),
        save_path=str(plan.run_dir / CHECKPOINTS),
        name_prefix="model",
        save_replay_buffer=off_policy,
        save_vecnormalize=True,
    )
    compile_kernels(plan)
    first = model.num_timesteps
    start = time.perf_counter()
    model.learn(
        hp.n_timesteps,
        callback=CallbackList([checkpoints, EpisodeMetrics()]),
        progress_bar=progress_bar,
        reset_num_timesteps=plan.resume is None,
        tb_log_name=hp.algo,
    )
    fps = (model.num_timesteps - first) / (time.perf_counter() - start)
    model.save(plan.run_dir / MODEL)
    if off_policy:
        model.save_replay_buffer(plan.run_dir / REPLAY_BUFFER)
    if isinstance(env, VecNormalize):
        env.save(str(plan.run_dir / VECNORMALIZE))
    return model, env, fps


def evaluate_with_baselines(model, env, plan: Plan) -> dict[str, Evaluation]:
    """The trained model and every baseline on the training scenario, regime and horizon,
    one episode per evaluation seed."""
    policy = NormalizedPolicy(model, env) if isinstance(env, VecNormalize) else model
    policies = {plan.hp.algo: policy}
    for name in BASELINES:
        kwargs = {"seed": plan.seed} if name == "random" else {}
        policies[name] = make_baseline(name, plan.setup, **kwargs)
    return {
        name: evaluate(
            policy,
            scenario=plan.scenario,
            regime=plan.regime,
            seeds=plan.eval_seeds,
            horizon=plan.horizon,
            **plan.env_kwargs,
        )
        for name, policy in policies.items()
    }
