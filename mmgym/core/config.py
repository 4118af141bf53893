"""Validated exchange configuration.

``ExchangeConfig.from_dict`` turns plain data (as read from YAML) into frozen
dataclasses, rejecting unknown keys, wrong types and out-of-range values with
a ``ConfigError`` that names the offending field and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from .brackets import BTCUSDT_BRACKETS, SMALL_ALT_BRACKETS, Bracket, validate_brackets
from .codes import ADL_FORMULA_NAMES


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def check_number(
    name, value, lo=-math.inf, hi=math.inf, *, integer=False, lo_open=False, allow_inf=False
):
    """Return ``value`` as a plain float (int if ``integer``) if it lies in the allowed
    range, else raise ConfigError naming ``name`` and the range.

    Any real number is accepted, numpy scalars included, but not booleans. NaN is
    rejected, and so is infinity unless ``allow_inf`` (for fields where ``.inf``
    documents "no limit"; it must then lie in the range too).
    """
    kind = "an integer" if integer else "a number"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be {kind}, got {value!r}{_yaml_hint(value)}")
    if isinstance(value, numbers.Integral):
        value = int(value)
    else:
        value = float(value)
        if math.isnan(value) or (math.isinf(value) and not allow_inf):
            raise ConfigError(f"{name} must be finite, got {value!r}")
        if integer and not value.is_integer():
            raise ConfigError(f"{name} must be {kind}, got {value!r}")
    below = value <= lo if lo_open else value < lo
    if below or value > hi:
        left = "(" if lo_open else "["
        raise ConfigError(f"{name} must be in {left}{lo}, {hi}], got {value!r}")
    return int(value) if integer else float(value)


def _yaml_hint(value) -> str:
    """How to write a number that YAML read as text (PyYAML reads ``2e6`` as a string)."""
    if isinstance(value, str) and value.strip().lstrip("+-").lower() in ("inf", "infinity"):
        return " (YAML writes infinity as .inf)"
    if not isinstance(value, str) or "e" not in value.lower():
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    written = repr(number)
    if "e" in written and "." not in written:  # 1e-07 is text to YAML too
        written = written.replace("e", ".0e")
    return (
        f" (YAML reads {value!r} as text: write {written}; in exponent form a number "
        "needs a dot and a signed exponent, as in 2.0e+6)"
    )


def check_flag(name, value) -> bool:
    """Return ``value`` as a bool if it is one (numpy's included), else raise ConfigError."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name, value, allowed):
    """Return ``value`` if it is one of ``allowed``, else raise ConfigError."""
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


COLLATERAL_PRICING = ("internal_book", "conversion")
BRACKET_PRESETS = {"btcusdt": BTCUSDT_BRACKETS, "small_alt": SMALL_ALT_BRACKETS}


@dataclass(frozen=True)
class MarketConfig:
    """One market: a linear USDT-margined perpetual or a spot pair against USDT.

    For a spot market the base asset is a collateral asset: unified accounts
    count their holdings at ``collateral_price * collateral_ratio``, where the
    collateral price blends the market's own book (last trade) with its
    conversion (index) value: ``w * last + (1 - w) * index`` and ``w`` is 1 for
    ``internal_book``, 0 for ``conversion`` or the number given.

    ``position_limit`` caps each account's position notional (orders that would
    exceed it are rejected); ``liquidation_cap`` and ``fund_unwind_cap`` cap the
    notional that liquidations and the fund's unwinds send to the book per step;
    all three default to ``inf`` (none). ``circuit_breaker`` > 0 halts the market for
    ``breaker_halt`` steps when its mark moves more than that fraction from the
    reference taken every ``breaker_window`` steps.
    """

    name: str
    kind: str = "perp"
    tick_size: float = 0.1
    lot_size: float = 0.001
    price_band: float = 0.05
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    liquidation_fee: float = 0.0125
    brackets: tuple[Bracket, ...] = BTCUSDT_BRACKETS
    collateral_ratio: float = 0.9
    collateral_pricing: str | float = "internal_book"
    liquidation_cap: float = math.inf
    fund_unwind_cap: float = math.inf
    position_limit: float = math.inf
    circuit_breaker: float = 0.0

    @property
    def book_weight(self) -> float:
        """Weight of the internal book price in the collateral price."""
        if self.collateral_pricing == "internal_book":
            return 1.0
        if self.collateral_pricing == "conversion":
            return 0.0
        return float(self.collateral_pricing)

    def validated(self, where: str) -> MarketConfig:
        """Return a copy with every field checked; ``where`` prefixes error messages."""
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{where}.name must be a non-empty string, got {self.name!r}")
        check_choice(f"{where}.kind", self.kind, ("perp", "spot"))
        check_number(f"{where}.tick_size", self.tick_size, 0.0, lo_open=True)
        check_number(f"{where}.lot_size", self.lot_size, 0.0, lo_open=True)
        check_number(f"{where}.price_band", self.price_band, 0.0, 1.0, lo_open=True)
        check_number(f"{where}.maker_fee", self.maker_fee, -0.01, 0.01)
        check_number(f"{where}.taker_fee", self.taker_fee, 0.0, 0.01)
        if self.maker_fee + self.taker_fee < 0:
            raise ConfigError(f"{where}.maker_fee rebate must not exceed taker_fee")
        check_number(f"{where}.liquidation_fee", self.liquidation_fee, 0.0, 0.1)
        brackets = self.brackets
        if isinstance(brackets, str):
            brackets = BRACKET_PRESETS[check_choice(f"{where}.brackets", brackets, BRACKET_PRESETS)]
        try:
            brackets = validate_brackets(brackets, f"{where}.brackets")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        check_number(f"{where}.collateral_ratio", self.collateral_ratio, 0.0, 1.0)
        pricing = self.collateral_pricing
        if isinstance(pricing, str):
            check_choice(f"{where}.collateral_pricing", pricing, COLLATERAL_PRICING)
        else:
            check_number(f"{where}.collateral_pricing", pricing, 0.0, 1.0)
        # .inf (the default) means no cap / no limit.
        check_number(
            f"{where}.liquidation_cap", self.liquidation_cap, 0.0, lo_open=True, allow_inf=True
        )
        check_number(f"{where}.fund_unwind_cap", self.fund_unwind_cap, 0.0, allow_inf=True)
        check_number(
            f"{where}.position_limit", self.position_limit, 0.0, lo_open=True, allow_inf=True
        )
        check_number(f"{where}.circuit_breaker", self.circuit_breaker, 0.0, 1.0)
        return dataclasses.replace(self, brackets=brackets)


@dataclass(frozen=True)
class ExchangeConfig:
    """Everything that is constant over an episode of one exchange.

    Account 0 is the insurance fund; accounts ``1 .. n_accounts`` are traders.
    """

    markets: tuple[MarketConfig, ...] = field(
        default_factory=lambda: (MarketConfig("BTCUSDT", tick_size=1.0, lot_size=0.001),)
    )
    n_accounts: int = 16
    book_capacity: int = 1024
    max_levels: int = 256
    basis_window: int = 30
    fund_takeover_limit: float = 1.0
    unified_liquidation_level: float = 1.05
    # Below this uniMMR a unified account may only reduce (MECHANICS.md section 6).
    unified_reduce_only_level: float = 1.2
    borrow_mmr: float = 0.05
    borrow_imr: float = 0.10
    adl_formula: str = "binance"
    adl_refresh_steps: int = 30
    # Relative move of a margin price after which the liquidation scan checks
    # every account afresh; below it, accounts with enough cushion are skipped
    # (``core/screen.py``). 0 checks every account every step.
    margin_screen: float = 0.01
    fill_log_capacity: int = 4096
    insurance_fund: float = 1_000_000.0
    breaker_window: int = 300
    breaker_halt: int = 300

    @property
    def n_markets(self) -> int:
        """Number of markets."""
        return len(self.markets)

    def market_index(self, name: str) -> int:
        """Index of the market called ``name``."""
        for k, market in enumerate(self.markets):
            if market.name == name:
                return k
        raise ConfigError(f"unknown market {name!r}; markets are {[m.name for m in self.markets]}")

    def validated(self) -> ExchangeConfig:
        """Return a copy with every field checked."""
        if not self.markets:
            raise ConfigError("markets must list at least one market")
        markets = tuple(m.validated(f"markets[{k}]") for k, m in enumerate(self.markets))
        names = [m.name for m in markets]
        if len(set(names)) != len(names):
            raise ConfigError(f"markets: names must be unique, got {names}")
        check_number("n_accounts", self.n_accounts, 1, 10_000_000, integer=True)
        check_number("book_capacity", self.book_capacity, 2, 10_000_000, integer=True)
        check_number("max_levels", self.max_levels, 1, 1_000_000, integer=True)
        check_number("basis_window", self.basis_window, 1, 100_000, integer=True)
        check_number("fund_takeover_limit", self.fund_takeover_limit, 0.0, 1000.0)
        check_number("unified_liquidation_level", self.unified_liquidation_level, 1.0, 10.0)
        check_number(
            "unified_reduce_only_level",
            self.unified_reduce_only_level,
            self.unified_liquidation_level,
            10.0,
        )
        check_number("borrow_mmr", self.borrow_mmr, 0.0, 1.0)
        check_number("borrow_imr", self.borrow_imr, self.borrow_mmr, 1.0)
        check_choice("adl_formula", self.adl_formula, ADL_FORMULA_NAMES)
        check_number("adl_refresh_steps", self.adl_refresh_steps, 1, 10_000_000, integer=True)
        check_number("margin_screen", self.margin_screen, 0.0, 0.5)
        check_number("fill_log_capacity", self.fill_log_capacity, 1, 100_000_000, integer=True)
        check_number("insurance_fund", self.insurance_fund, 0.0)
        check_number("breaker_window", self.breaker_window, 1, 10_000_000, integer=True)
        check_number("breaker_halt", self.breaker_halt, 1, 10_000_000, integer=True)
        return dataclasses.replace(self, markets=markets)

    @classmethod
    def from_dict(cls, data: dict) -> ExchangeConfig:
        """Build and validate a config from plain data, e.g. parsed YAML."""
        check_fields(cls, data, "exchange")
        kwargs = dict(data)
        if "markets" in kwargs:
            if not isinstance(kwargs["markets"], (list, tuple)):
                raise ConfigError(f"markets must be a list of markets, got {kwargs['markets']!r}")
            kwargs["markets"] = tuple(
                _market_from_dict(m, f"markets[{k}]") for k, m in enumerate(kwargs["markets"])
            )
        return cls(**kwargs).validated()


def check_fields(cls, data, where: str) -> None:
    """Raise ConfigError unless ``data`` is a mapping whose keys are fields of dataclass ``cls``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown} in {where}; allowed: {sorted(known)}")


def _market_from_dict(data, where: str) -> MarketConfig:
    check_fields(MarketConfig, data, where)
    if "name" not in data:
        raise ConfigError(f"{where}.name is required")
    return MarketConfig(**data)
