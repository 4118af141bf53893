"""train.py: argument and hyperparameter validation, and a short end-to-end run."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import mmgym
import train
from agents import evaluate, training
from agents.algorithms import algorithm_class
from agents.hyperparams import ENV_ID, OFF_POLICY, load_hyperparams
from agents.runs import load_run
from agents.training import plan_run
from mmgym.core.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write_config(path, section):
    path.write_text(yaml.safe_dump({ENV_ID: {"n_timesteps": 1000, **section}}))
    return path


def error_line(capsys) -> str:
    """The error argparse printed: the last line of stderr (the usage lines before it
    name every flag)."""
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--algo", "dqn"], "argument --algo: invalid choice: 'dqn'"),
        (["--regime", "anarchy"], "argument --regime: invalid choice: 'anarchy'"),
        (["--total-timesteps", "-5"], "argument --total-timesteps: must be a positive integer"),
        (["--n-envs", "0"], "argument --n-envs: must be a positive integer, got 0"),
        (["--n-envs", "5000"], "--n-envs must be in [1, 4096], got 5000"),
        (["--seed", str(2**32)], "--seed must be in [0, 4294967295], got 4294967296"),
        (["--eval-seeds", "7", str(2**32)], "--eval-seeds must be in [0, 4294967295], got"),
        (["--eval-seeds", "5", "6", "5"], "--eval-seeds must be distinct, got [5, 6, 5]"),
        (["--scenario", "nowhere"], "unknown scenario 'nowhere'"),
        (["--horizon", "999999"], "--horizon must be in [1, 3600], got 999999"),
        (["--config", "missing.yaml"], "--config: no hyperparameter file 'missing.yaml'"),
        (["--resume", "nowhere"], "--resume: 'nowhere' has no model.zip and args.json"),
    ],
)
def test_bad_arguments_stop_before_training(argv, error, tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train.main([*argv, "--run-dir", str(run_dir)])
    assert exit_info.value.code == 2
    assert f"error: {error}" in error_line(capsys)
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "section, field",
    [
        ({"n_stepz": 64}, "n_stepz"),
        ({"n_steps": "many"}, "n_steps"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"normalize": "yes"}, "normalize"),
        ({"policy": "CnnPolicy"}, "policy"),
        ({"policy_kwargs": {"activation_fn": "__import__('os').system"}}, "activation_fn"),
        ({"policy_kwargs": {"net_arch": [64, "x"]}}, "net_arch[1]"),
        ({"policy_kwargs": {"net_arch": {"pi": [8], "qf": [8]}}}, "net_arch: unknown key 'qf'"),
        ({"policy_kwargs": {"lstm_hidden_size": 8}}, "lstm_hidden_size"),
        ({"n_timesteps": "1e5"}, "!!float"),
        ({"n_envs": 1, "n_steps": 1}, "n_steps * n_envs must be at least 2"),
    ],
)
def test_bad_hyperparameters_name_the_key(section, field, tmp_path):
    path = write_config(tmp_path / "bad.yaml", section)
    with pytest.raises(ConfigError, match="bad.yaml") as error:
        load_hyperparams("ppo", path)
    assert field in str(error.value)


def test_unknown_sections_and_unknown_algorithms_are_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"CartPole-v1": {"n_timesteps": 5}}))
    with pytest.raises(ConfigError, match="CartPole-v1"):
        load_hyperparams("ppo", path)
    with pytest.raises(ConfigError, match="algo"):
        plan_run(algo="a2c")
    with pytest.raises(ConfigError, match="regime"):
        plan_run(regime="anarchy")
    with pytest.raises(ConfigError, match="total_timesteps"):
        plan_run(total_timesteps=-1)


@pytest.mark.parametrize(
    "env_kwargs, message",
    [
        ({"foo": 1}, r"env.*'foo'"),
        ({"threads": 0}, "threads must be in"),
        ({"terminate_on_liquidation": "no"}, "terminate_on_liquidation must be True or False"),
        ({"regime_kwargs": {"bogus": 1}}, r"regime_kwargs \['bogus'\] unknown"),
        ({"regime": "obligation"}, r"env_kwargs: \['regime'\] are set by the plan"),
        ([1], "env_kwargs must be a dict or None"),
    ],
)
def test_env_keywords_are_checked_with_the_plan(env_kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_run(env_kwargs=env_kwargs)


def test_hyperparameter_files_with_a_repeated_key_or_not_text_are_refused(tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text(f"{ENV_ID}:\n  n_timesteps: 10\n  n_timesteps: 20\n")
    with pytest.raises(ConfigError, match="key 'n_timesteps' is given twice"):
        load_hyperparams("ppo", twice)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_hyperparams("ppo", binary)


def test_recurrent_ppo_needs_sb3_contrib():
    try:
        import sb3_contrib  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="sb3-contrib"):
            plan_run(algo="recurrent_ppo")
    else:
        assert plan_run(algo="recurrent_ppo").hp.policy == "MlpLstmPolicy"


def test_shipped_configs_load_and_round_trip(tmp_path):
    for algo in ("ppo", "sac", "recurrent_ppo"):
        hp = load_hyperparams(algo)
        path = tmp_path / f"{algo}.yaml"
        path.write_text(yaml.safe_dump(hp.to_file()))
        assert load_hyperparams(algo, path) == hp
    merged = load_hyperparams("ppo", n_timesteps=64, n_envs=3)
    assert (merged.n_timesteps, merged.n_envs, merged.policy) == (64, 3, "MlpPolicy")
    assert merged.model_policy_kwargs()["activation_fn"].__name__ == "Tanh"
    long = load_hyperparams("ppo", ROOT / "configs" / "hyperparams" / "ppo_long_rollouts.yaml")
    assert (long.n_envs * long.algo_kwargs["n_steps"], long.algo_kwargs["n_epochs"]) == (8192, 10)


def test_a_used_run_dir_is_refused(tmp_path):
    (tmp_path / "model.zip").write_text("")
    with pytest.raises(ConfigError, match="run_dir"):
        plan_run(run_dir=tmp_path)


@pytest.mark.smoke
def test_train_end_to_end_then_load_and_evaluate(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "train.py",
        "--total-timesteps",
        "2048",
        "--n-envs",
        "2",
        "--run-dir",
        str(run_dir),
        "--no-yardstick",
        "--horizon",
        "200",
        "--regime",
        "obligation",
    ]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| ppo |" in out.stdout and "| withdraw_on_stress |" in out.stdout
    for name in (
        "model.zip",
        "vecnormalize.pkl",
        "config.yaml",
        "args.json",
        "command.txt",
        "versions.json",
        "throughput.json",
        "evaluation.md",
    ):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "checkpoints").glob("*.zip"))
    assert list((run_dir / "tb").rglob("events.out.tfevents.*"))
    assert json.loads((run_dir / "args.json").read_text())["horizon"] == 200
    assert "--horizon 200" in (run_dir / "command.txt").read_text()
    assert json.loads((run_dir / "throughput.json").read_text())["mmgym_fps"] > 0

    run = load_run(run_dir)
    assert run.hyperparams.n_timesteps == 2048 and run.vec_normalize is not None
    evaluation = evaluate(run.policy, scenario="calm", horizon=50, seeds=(5, 6))
    for row in evaluation.rows:
        assert row["steps"] == 50 and math.isfinite(row["mm_pnl"])

    # Resumed: the run's own env, with another config's algorithm settings.
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config[ENV_ID].update(n_steps=128, learning_rate=1e-4)
    new_config = tmp_path / "resume.yaml"
    new_config.write_text(yaml.safe_dump(config))
    resumed_dir = tmp_path / "resumed"
    resume = [sys.executable, "train.py", "--resume", str(run_dir), "--config", str(new_config)]
    resume += ["--total-timesteps", "256", "--run-dir", str(resumed_dir), "--no-yardstick"]
    out = subprocess.run([*resume, "--eval-seeds"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    args = json.loads((resumed_dir / "args.json").read_text())
    assert (args["scenario"], args["regime"], args["horizon"]) == ("calm", "obligation", 200)
    assert (args["seed"], args["eval_seeds"]) == (0, [])
    model = load_run(resumed_dir).model
    assert model.n_steps == 128 and model.learning_rate == 1e-4
    assert model.num_timesteps > 2048  # it went on from the saved model


def saved_run(run_dir, algo="ppo", trained=4096, **args):
    """A run directory as plan_run reads it: ``args`` over a new run's, the algorithm's
    shipped config and a model that has trained ``trained`` steps (plan_run reads no
    more of it than its step count), with an off-policy model's replay buffer."""
    run_dir.mkdir()
    hp = load_hyperparams(algo)
    kwargs = {"buffer_size": 100} if algo in OFF_POLICY else {}
    model = algorithm_class(algo)("MlpPolicy", "Pendulum-v1", device="cpu", **kwargs)
    model.num_timesteps = trained
    model.save(run_dir / "model.zip")
    if algo in OFF_POLICY:
        model.save_replay_buffer(run_dir / "replay_buffer.pkl")
    saved = {**plan_run(algo=algo, run_dir=run_dir / "unused").args(), **args}
    (run_dir / "args.json").write_text(json.dumps(saved))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(hp.to_file()))
    return run_dir, hp.to_file()[ENV_ID]


def test_resuming_refuses_a_config_that_changes_the_saved_model(tmp_path):
    run_dir, section = saved_run(tmp_path / "run")
    changed = {**section, "policy_kwargs": {**section["policy_kwargs"], "net_arch": [32]}}
    new_config = write_config(tmp_path / "new.yaml", changed)
    with pytest.raises(ConfigError, match="policy_kwargs cannot change when resuming"):
        plan_run(resume=run_dir, config=new_config, run_dir=tmp_path / "out")
    plan = plan_run(resume=run_dir, run_dir=tmp_path / "out")  # its own config: fine
    assert (plan.scenario, plan.regime, plan.horizon) == ("calm", "freedom", None)


def test_ppo_may_change_its_entropy_coefficient_on_resume_and_sac_may_not(tmp_path):
    run_dir, section = saved_run(tmp_path / "ppo")
    config = write_config(tmp_path / "ppo.yaml", {**section, "ent_coef": 0.01})
    plan = plan_run(resume=run_dir, config=config, run_dir=tmp_path / "out")
    assert plan.hp.algo_kwargs["ent_coef"] == 0.01
    run_dir, section = saved_run(tmp_path / "sac", "sac")
    for change, error in [
        ({"ent_coef": 0.1}, "ent_coef cannot change when resuming a sac run"),
        ({"buffer_size": 5000}, "buffer_size cannot change when resuming a sac run"),
        ({"n_envs": 2}, "n_envs cannot change when resuming a sac run"),
    ]:
        config = write_config(tmp_path / "sac.yaml", {**section, **change})
        with pytest.raises(ConfigError, match=error):
            plan_run(resume=run_dir, config=config, run_dir=tmp_path / "out")


def test_resuming_keeps_the_run_seeds_and_seeds_the_envs_past_the_trained_steps(tmp_path):
    run_dir, _ = saved_run(tmp_path / "run", trained=4096, seed=7, eval_seeds=[3, 4])
    plan = plan_run(resume=run_dir, run_dir=tmp_path / "out")
    assert (plan.seed, plan.eval_seeds, plan.trained, plan.env_seed) == (7, (3, 4), 4096, 4103)
    assert plan.args()["seed"] == 7  # a further resume goes on from the run's seed
    plan = plan_run(resume=run_dir, seed=2**32 - 1, eval_seeds=(), run_dir=tmp_path / "out")
    assert (plan.seed, plan.eval_seeds, plan.env_seed) == (2**32 - 1, (), 4095)
    new = plan_run(run_dir=tmp_path / "out")
    assert (new.seed, new.eval_seeds, new.trained, new.env_seed) == (0, (1000, 1001, 1002), 0, 0)


def test_resuming_needs_a_saved_model_and_an_off_policy_run_its_replay_buffer(tmp_path):
    run_dir, _ = saved_run(tmp_path / "sac", "sac")
    (run_dir / "replay_buffer.pkl").unlink()
    with pytest.raises(ConfigError, match=r"resume: .* has no replay_buffer\.pkl"):
        plan_run(resume=run_dir, run_dir=tmp_path / "out")
    run_dir, _ = saved_run(tmp_path / "ppo")
    (run_dir / "model.zip").write_text("")
    with pytest.raises(ConfigError, match="is not a trained Stable-Baselines3 model"):
        plan_run(resume=run_dir, run_dir=tmp_path / "out")


def test_evaluation_seeds_must_be_distinct():
    with pytest.raises(ConfigError, match=r"eval_seeds must be distinct, got \[1, 2, 1\]"):
        plan_run(eval_seeds=(1, 2, 1))


def test_a_failed_model_build_leaves_the_run_dir_free(tmp_path, monkeypatch):
    plan = plan_run(run_dir=tmp_path / "run")

    def fail(plan, env):
        raise RuntimeError("no model")

    monkeypatch.setattr(training, "make_env", lambda plan: None)
    monkeypatch.setattr(training, "make_model", fail)
    with pytest.raises(RuntimeError, match="no model"):
        training.train(plan, [])
    assert not plan.run_dir.exists()
    plan_run(run_dir=plan.run_dir)  # a retry may use it


SMALL_SAC = {
    "n_envs": 2,
    "normalize": True,
    "buffer_size": 1000,
    "learning_starts": 16,
    "batch_size": 16,
    "gamma": 0.9,
    "policy_kwargs": {"net_arch": [16]},
}


@pytest.mark.smoke
def test_sac_resumes_with_its_replay_buffer_new_gamma_and_unseen_env_seeds(tmp_path):
    config = write_config(tmp_path / "sac.yaml", {**SMALL_SAC, "n_timesteps": 64})
    plan = plan_run(
        algo="sac", config=config, seed=3, run_dir=tmp_path / "run", eval_seeds=(), horizon=20
    )
    model, env, _ = training.train(plan, [], progress_bar=False)
    env.close()
    assert (plan.run_dir / "replay_buffer.pkl").is_file()
    assert list((plan.run_dir / "checkpoints").glob("model_replay_buffer_*_steps.pkl"))
    rows = model.replay_buffer.pos  # one row of n_envs transitions per step
    assert rows == 32

    # learning_starts 40 is past this segment's 32 steps, not past the run's 96.
    resume_settings = {**SMALL_SAC, "n_timesteps": 32, "gamma": 0.95, "learning_starts": 40}
    config = write_config(tmp_path / "resume.yaml", resume_settings)
    resumed = plan_run(resume=plan.run_dir, config=config, run_dir=tmp_path / "resumed")
    assert (resumed.seed, resumed.trained, resumed.env_seed) == (3, 64, 67)
    # The envs start from the segment's seed, not the run's.
    env = training.make_env(resumed)
    training.make_model(resumed, env)
    env.reset()
    first = env.get_original_obs()
    env.close()
    for seed, same in ((67, True), (3, False)):
        fresh = mmgym.make_sb3_vec_env(2, horizon=20)
        fresh.seed(seed)
        assert np.array_equal(fresh.reset(), first) is same
        fresh.close()

    model, env, _ = training.train(resumed, [], progress_bar=False)
    env.close()
    assert model.replay_buffer.pos == rows + 16  # the saved transitions, then this run's
    assert model.gamma == env.gamma == 0.95  # VecNormalize.load had restored 0.9
    assert model.num_timesteps == 96
    assert load_run(resumed.run_dir).model.num_timesteps == 96  # its config.yaml loads


@pytest.mark.smoke
def test_interleaved_yardstick_counts_the_steps_each_model_did(capsys, monkeypatch):
    from agents import yardstick

    class Clock:
        """perf_counter that goes one second on at every call: each timed learn() takes 1 s."""

        now = 0.0

        def perf_counter(self):
            self.now += 1.0
            return self.now

    monkeypatch.setattr(yardstick, "time", Clock())
    # ppo.yaml's rollout is 256 steps of 8 envs: SB3 does 2048 steps for a chunk of 1000.
    yardstick.main(["--rounds", "2", "--chunk", "1000"])
    out = capsys.readouterr().out
    assert "mmgym: 2048 steps/s; CartPole-v1: 2048 steps/s" in out
    assert "ratio mmgym / CartPole-v1 = 1.000 (per round: median 1.000" in out


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--rounds", "0"], "--rounds must be a positive integer, got 0"),
        (["--chunk", "-1"], "--chunk must be a positive integer, got -1"),
    ],
)
def test_interleaved_yardstick_rejects_empty_rounds(argv, error, capsys):
    from agents import yardstick

    with pytest.raises(SystemExit):
        yardstick.main(argv)
    assert f"error: {error}" in error_line(capsys)
