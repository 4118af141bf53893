"""train.py: argument and hyperparameter validation, and a short end-to-end run."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import train
from agents import evaluate
from agents.hyperparams import ENV_ID, load_hyperparams
from agents.runs import load_run
from agents.training import plan_run
from mmgym.core.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write_config(path, section):
    path.write_text(yaml.safe_dump({ENV_ID: {"n_timesteps": 1000, **section}}))
    return path


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--algo", "dqn"], "--algo"),
        (["--regime", "anarchy"], "--regime"),
        (["--total-timesteps", "-5"], "--total-timesteps"),
        (["--n-envs", "0"], "--n-envs"),
        (["--n-envs", "5000"], "n_envs must be in [1, 4096], got 5000"),
        (["--scenario", "nowhere"], "unknown scenario 'nowhere'"),
        (["--horizon", "999999"], "horizon"),
        (["--config", "missing.yaml"], "missing.yaml"),
    ],
)
def test_bad_arguments_stop_before_training(argv, field, tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train.main([*argv, "--run-dir", str(run_dir)])
    assert exit_info.value.code == 2
    assert field in capsys.readouterr().err
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
        ({"foo": 1}, "env_kwargs: .*'foo'"),
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
    model = load_run(resumed_dir).model
    assert model.n_steps == 128 and model.learning_rate == 1e-4
    assert model.num_timesteps > 2048  # it went on from the saved model


def test_resuming_refuses_a_config_that_changes_the_saved_model(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.zip").write_text("")  # plan_run does not open it
    saved_args = {"algo": "ppo", "horizon": None, "env_kwargs": {}}
    (run_dir / "args.json").write_text(json.dumps(saved_args))
    hp = load_hyperparams("ppo")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(hp.to_file()))
    changed = hp.to_file()
    changed[ENV_ID]["policy_kwargs"]["net_arch"] = [32]
    new_config = write_config(tmp_path / "new.yaml", changed[ENV_ID])
    with pytest.raises(ConfigError, match="policy_kwargs cannot change when resuming"):
        plan_run(resume=run_dir, config=new_config, run_dir=tmp_path / "out")
    plan = plan_run(resume=run_dir, run_dir=tmp_path / "out")  # its own config: fine
    assert (plan.scenario, plan.regime, plan.horizon) == ("calm", "freedom", None)


@pytest.mark.smoke
def test_interleaved_yardstick_reports_both_throughputs_and_their_ratio(capsys):
    from agents import yardstick

    yardstick.main(["--rounds", "2", "--chunk", "2048"])
    out = capsys.readouterr().out
    mmgym_fps = float(out.split("mmgym: ")[1].split(" steps/s")[0])
    cartpole_fps = float(out.split("CartPole-v1: ")[1].split(" steps/s")[0])
    ratio = float(out.split("ratio mmgym / CartPole-v1 = ")[1].split()[0])
    assert mmgym_fps > 0 and cartpole_fps > 0
    assert ratio == pytest.approx(mmgym_fps / cartpole_fps, rel=2e-3)


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--chunk", "-1"]])
def test_interleaved_yardstick_rejects_empty_rounds(argv, capsys):
    from agents import yardstick

    with pytest.raises(SystemExit):
        yardstick.main(argv)
    assert argv[0] in capsys.readouterr().err
