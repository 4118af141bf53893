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
