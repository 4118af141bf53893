"""Scenario files: exchange, population, length and counterfactual switches.

A scenario is a YAML mapping (``configs/<name>.yaml``) with keys ``name``,
``description``, ``steps``, ``dt``, ``start_clock``, ``exchange`` (an
``ExchangeConfig`` without ``n_accounts``, which the population sets),
``population`` and ``switches``. The switches apply to any scenario:

* ``collateral_pricing``: ``internal_book`` | ``conversion`` | a weight in [0, 1]
  on the internal book, for every spot (collateral) market;
* ``mm_obligations``: scripted makers must keep quoting (max spread, min size,
  presence), relaxed x3 under stress;
* ``circuit_breaker``: a band (fraction, 0 = off) halting a market that moves
  more than that within the breaker window;
* ``position_limits``: maximum position notional per account and market (USDT,
  ``.inf`` = none);
* ``adl_formula``: ``bitmex`` | ``binance`` | ``hyperliquid``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.codes import ADL_FORMULA_NAMES
from ..core.config import ConfigError, ExchangeConfig, check_choice, check_number
from ..population.config import Population, from_mapping

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
TOP_KEYS = (
    "name",
    "description",
    "steps",
    "dt",
    "start_clock",
    "exchange",
    "population",
    "switches",
)


@dataclass(frozen=True)
class Switches:
    """Counterfactual switches (see the module docstring)."""

    collateral_pricing: str | float = "internal_book"
    mm_obligations: bool = False
    circuit_breaker: float = 0.0
    position_limits: float = math.inf
    adl_formula: str = "binance"

    def validate(self, where):
        pricing = self.collateral_pricing
        if isinstance(pricing, str):
            check_choice(f"{where}.collateral_pricing", pricing, ("internal_book", "conversion"))
        else:
            check_number(f"{where}.collateral_pricing", pricing, 0.0, 1.0)
        if not isinstance(self.mm_obligations, bool):
            raise ConfigError(f"{where}.mm_obligations must be true or false")
        check_number(f"{where}.circuit_breaker", self.circuit_breaker, 0.0, 1.0)
        check_number(f"{where}.position_limits", self.position_limits, 0.0, math.inf, lo_open=True)
        check_choice(f"{where}.adl_formula", self.adl_formula, ADL_FORMULA_NAMES)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the exchange, the population, the length and switches."""

    name: str
    description: str
    steps: int
    dt: float
    start_clock: float  # seconds after midnight UTC of step 0, for time axes
    exchange: ExchangeConfig
    population: Population
    switches: Switches = field(default_factory=Switches)


def _clock(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.count(":") == 1:
        hours, minutes = value.split(":")
        if hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60:
            return int(hours) * 3600.0 + int(minutes) * 60.0
    raise ConfigError(f"start_clock must be 'HH:MM' or seconds, got {value!r}")


def load_raw(name_or_path) -> dict:
    """The raw mapping of a scenario given by name (``configs/<name>.yaml``) or path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.exists() else []
        raise ConfigError(f"unknown scenario {name_or_path!r}; known: {names}")
    with open(path) as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a scenario must be a mapping")
    return data


def apply_overrides(data: dict, overrides: dict) -> dict:
    """Merge ``overrides`` into a raw scenario: switch names go to ``switches``, top-level
    keys replace, and dotted keys (``"population.makers.firms"``) set nested values."""
    data = copy.deepcopy(data)
    switch_names = {f.name for f in dataclasses.fields(Switches)}
    for key, value in overrides.items():
        if key in switch_names:
            data.setdefault("switches", {})[key] = value
        elif key in TOP_KEYS:
            data[key] = value
        elif "." in key:
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"override {key!r}: {part!r} is not a section")
                node = node[part]
            node[leaf] = value
        else:
            raise ConfigError(
                f"unknown override {key!r}; use a switch {sorted(switch_names)}, a top-level "
                f"key {list(TOP_KEYS)} or a dotted path"
            )
    return data


def parse_scenario(data: dict) -> Scenario:
    """Validate a raw scenario mapping."""
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown scenario field(s) {unknown}; allowed: {list(TOP_KEYS)}")
    for key in ("name", "steps", "exchange", "population"):
        if key not in data:
            raise ConfigError(f"scenario field {key!r} is required")
    switches = from_mapping(Switches, data.get("switches", {}), "switches")
    exchange = dict(data["exchange"]) if isinstance(data["exchange"], dict) else data["exchange"]
    if not isinstance(exchange, dict):
        raise ConfigError("exchange must be a mapping")
    if "n_accounts" in exchange:
        raise ConfigError("exchange.n_accounts is set by the population; remove it")
    exchange["adl_formula"] = switches.adl_formula
    markets = []
    for m in exchange.get("markets", []):
        m = dict(m) if isinstance(m, dict) else m
        if isinstance(m, dict):
            if m.get("kind") == "spot":
                m["collateral_pricing"] = switches.collateral_pricing
            m["circuit_breaker"] = switches.circuit_breaker
            m["position_limit"] = switches.position_limits
        markets.append(m)
    exchange["markets"] = markets
    exchange_config = ExchangeConfig.from_dict(exchange)
    population = from_mapping(Population, data["population"], "population")
    if switches.mm_obligations:
        obligations = dataclasses.replace(population.obligations, enabled=True)
        population = dataclasses.replace(population, obligations=obligations)
    _check_market_names(population, exchange_config)
    return Scenario(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        steps=check_number("steps", data["steps"], 1, 10**7, integer=True),
        dt=check_number("dt", data.get("dt", 1.0), 0.0, 3600.0, lo_open=True),
        start_clock=_clock(data.get("start_clock", 0)),
        exchange=exchange_config,
        population=population,
        switches=switches,
    )


def _check_market_names(population: Population, exchange: ExchangeConfig) -> None:
    names = [m.name for m in exchange.markets]
    perps = [m.name for m in exchange.markets if m.kind == "perp"]
    spots = [m.name for m in exchange.markets if m.kind == "spot"]

    def need(where, name, allowed):
        if name not in allowed:
            raise ConfigError(f"{where} must name one of {allowed}, got {name!r}")

    if names and exchange.markets[0].kind != "perp":
        raise ConfigError("exchange.markets[0] must be a perpetual (the major)")
    for name in population.index:
        need(f"population.index.{name}", name, names)
    for name in names:
        if name not in population.index:
            raise ConfigError(f"population.index needs an entry for market {name!r}")
    for i, shock in enumerate(population.shocks):
        need(f"population.shocks[{i}].market", shock.market, names)
    for name in population.flow:
        need(f"population.flow.{name}", name, names)
    lev = population.leveraged
    for name in lev.weights:
        need("population.leveraged.weights", name, perps)
    for name in lev.median_notional:
        need("population.leveraged.median_notional", name, perps)
    for name in lev.weights:
        if name not in lev.median_notional:
            raise ConfigError(f"population.leveraged.median_notional needs {name!r}")
    if lev.count and not lev.weights:
        raise ConfigError("population.leveraged.weights must name at least one perpetual")
    if lev.hedged_share > 0:
        need("population.leveraged.hedge_market", lev.hedge_market, perps[1:])
    if lev.unified_share > 0:
        need("population.leveraged.collateral_market", lev.collateral_market, spots)
    makers = population.makers
    for name in makers.quoting:
        need(f"population.makers.quoting.{name}", name, names)
    if makers.unified and makers.collateral_share > 0:
        need("population.makers.collateral_market", makers.collateral_market, spots)
    if population.loopers.count:
        need("population.loopers.market", population.loopers.market, spots)
