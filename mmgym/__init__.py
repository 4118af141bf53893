"""mmgym: an exchange simulator and RL environments for market making in liquidation cascades."""

from gymnasium.envs.registration import register, registry

from .core import ConfigError, Exchange, ExchangeConfig, MarketConfig

__version__ = "0.1.0"

ENV_ID = "mmgym/MarketMaking-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="mmgym.env.market_making:MarketMakingEnv",
        vector_entry_point="mmgym.env.vector:make_vector_env",
    )


def make_sb3_vec_env(n_envs: int = 8, monitor: bool = True, **kwargs):
    """Stable-Baselines3 VecEnv of ``n_envs`` market-making envs (see ``mmgym.env.sb3``)."""
    from .env.sb3 import make_sb3_vec_env as make

    return make(n_envs, monitor, **kwargs)


def make_shared_sb3_vec_env(n_envs: int = 2, n_agents: int = 2, monitor: bool = True, **kwargs):
    """SB3 VecEnv of ``n_envs`` exchanges x ``n_agents`` makers sharing one policy
    (see ``mmgym.env.sb3_shared``)."""
    from .env.sb3_shared import make_shared_sb3_vec_env as make

    return make(n_envs, n_agents, monitor, **kwargs)


def parallel_env(n_agents: int = 2, scenario="calm", regime="freedom", render_mode=None, **kwargs):
    """PettingZoo ParallelEnv with ``n_agents`` learning market makers
    (see ``mmgym.env.parallel.parallel_env``)."""
    from .env.parallel import parallel_env as make

    return make(n_agents, scenario, regime, render_mode, **kwargs)


__all__ = [
    "ENV_ID",
    "ConfigError",
    "Exchange",
    "ExchangeConfig",
    "MarketConfig",
    "__version__",
    "make_sb3_vec_env",
    "make_shared_sb3_vec_env",
    "parallel_env",
]
