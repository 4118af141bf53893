"""The learning algorithms train.py offers, by name (sb3-contrib only when asked for)."""

from __future__ import annotations

from stable_baselines3 import PPO, SAC

from mmgym.core.config import ConfigError, check_choice

from .hyperparams import ALGOS


def algorithm_class(algo: str):
    """The SB3 class of ``algo``; ConfigError when it needs a package that is missing."""
    check_choice("algo", algo, ALGOS)
    if algo == "recurrent_ppo":
        try:
            from sb3_contrib import RecurrentPPO
        except ImportError:
            raise ConfigError(
                "algo recurrent_ppo needs sb3-contrib, which is not installed "
                "(pip install sb3-contrib)"
            ) from None
        return RecurrentPPO
    return {"ppo": PPO, "sac": SAC}[algo]
