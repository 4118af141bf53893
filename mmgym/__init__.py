"""mmgym: an exchange simulator and RL environments for market making in liquidation cascades."""

from .core import ConfigError, Exchange, ExchangeConfig, MarketConfig

__version__ = "0.1.0"

__all__ = ["ConfigError", "Exchange", "ExchangeConfig", "MarketConfig", "__version__"]
