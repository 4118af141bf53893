"""Hyperparameter checks that SB3 would otherwise only fail at model construction."""

import pytest

from agents.hyperparams import resolve
from mmgym.core.config import ConfigError


@pytest.mark.parametrize("algo", ["ppo", "recurrent_ppo"])
def test_on_policy_batches_hold_two_samples(algo):
    with pytest.raises(ConfigError, match=r"batch_size must be in \[2, "):
        resolve(algo, {"n_timesteps": 1000, "batch_size": 1})
    assert resolve(algo, {"n_timesteps": 1000, "batch_size": 2}).algo_kwargs["batch_size"] == 2


@pytest.mark.parametrize("value", ["auto", "auto_0.1", "auto_1e-3", 0.2])
def test_sac_entropy_coefficient_auto_forms(value):
    assert resolve("sac", {"n_timesteps": 1000, "ent_coef": value}).algo_kwargs["ent_coef"] == value


@pytest.mark.parametrize(
    "value", ["autox", "auto_", "auto_x", "auto_0", "auto_-1", "auto_inf", "0.1"]
)
def test_sac_entropy_coefficient_bad_strings(value):
    with pytest.raises(
        ConfigError, match=r"ent_coef must be a number, 'auto', 'auto_<x>' with x > 0"
    ):
        resolve("sac", {"n_timesteps": 1000, "ent_coef": value})


def test_sac_target_entropy_is_auto_or_a_number():
    assert resolve("sac", {"n_timesteps": 1000, "target_entropy": -2.0}).algo_kwargs == {
        "target_entropy": -2.0
    }
    for value in ("auto_0.1", "automatic"):  # SB3 reads only "auto" here
        with pytest.raises(ConfigError, match="target_entropy must be a number, 'auto', got"):
            resolve("sac", {"n_timesteps": 1000, "target_entropy": value})


@pytest.mark.parametrize(
    "settings, error",
    [
        ({"gradient_steps": 0}, r"gradient_steps must be -1 or in \[1, "),
        ({"gradient_steps": -2}, r"gradient_steps must be -1 or in \[1, "),
        ({"tau": 0.0}, r"tau must be in \(0.0, 1.0\], got 0.0"),
        ({"tau": 1.5}, r"tau must be in \(0.0, 1.0\], got 1.5"),
        (
            {"learning_starts": 1000},
            r"learning_starts must be in \[0, 999\] \(below n_timesteps 1000\) or SAC never "
            r"trains, got 1000$",
        ),
        (
            {"n_timesteps": 100},
            r"learning_starts must be in \[0, 99\] .* got 100 \(SB3's default\)",
        ),
    ],
)
def test_sac_settings_that_never_train_are_refused(settings, error):
    with pytest.raises(ConfigError, match=error):
        resolve("sac", {"n_timesteps": 1000, **settings})


def test_sac_settings_that_train():
    kwargs = {"gradient_steps": -1, "tau": 1.0, "learning_starts": 999}
    assert resolve("sac", {"n_timesteps": 1000, **kwargs}).algo_kwargs == kwargs
    assert resolve("sac", {"n_timesteps": 1000, "gradient_steps": 1}).algo_kwargs == {
        "gradient_steps": 1
    }
    # A resumed model's steps count: it trains from its first step here.
    resumed = resolve("sac", {"n_timesteps": 10, "learning_starts": 1000}, trained=991)
    assert resumed.algo_kwargs["learning_starts"] == 1000
    with pytest.raises(ConfigError, match=r"\[0, 1000\] \(below 990 steps already trained \+"):
        resolve("sac", {"n_timesteps": 11, "learning_starts": 1001}, trained=990)


@pytest.mark.parametrize(
    "policy_kwargs, error",
    [
        ({"shared_lstm": True}, "enable_critic_lstm must be false with shared_lstm: true"),
        (
            {"shared_lstm": True, "enable_critic_lstm": True},
            "enable_critic_lstm must be false with shared_lstm: true",
        ),
        (
            {"shared_lstm": True, "enable_critic_lstm": False, "share_features_extractor": False},
            "share_features_extractor must be true with shared_lstm: true, got false",
        ),
    ],
)
def test_recurrent_ppo_shared_lstm_needs_no_critic_lstm_and_shared_features(policy_kwargs, error):
    with pytest.raises(ConfigError, match=f"policy_kwargs.{error}"):
        resolve("recurrent_ppo", {"n_timesteps": 1000, "policy_kwargs": policy_kwargs})


@pytest.mark.parametrize(
    "policy_kwargs",
    [
        {"shared_lstm": True, "enable_critic_lstm": False},
        {"shared_lstm": True, "enable_critic_lstm": False, "share_features_extractor": True},
        {"shared_lstm": False, "share_features_extractor": False},
        {"enable_critic_lstm": False},
    ],
)
def test_recurrent_ppo_lstm_layouts_sb3_contrib_builds(policy_kwargs):
    hp = resolve("recurrent_ppo", {"n_timesteps": 1000, "policy_kwargs": policy_kwargs})
    assert hp.policy_kwargs == policy_kwargs
