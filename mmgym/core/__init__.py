"""The numba exchange engine: books, perpetuals, spot, margin, liquidation, fund, ADL."""

from .config import ConfigError, ExchangeConfig, MarketConfig
from .exchange import BookFullError, Exchange, validate_orders
from .params import Params, build_params
from .state import FUND, State, allocate_state

__all__ = [
    "BookFullError",
    "ConfigError",
    "Exchange",
    "ExchangeConfig",
    "FUND",
    "MarketConfig",
    "Params",
    "State",
    "allocate_state",
    "build_params",
    "validate_orders",
]
