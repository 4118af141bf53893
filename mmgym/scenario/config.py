"""Scenario files: exchange, population, length and counterfactual switches.

A scenario is a YAML mapping (``configs/<name>.yaml``) with keys ``name``,
``description``, ``steps``, ``dt``, ``start_clock``, ``exchange`` (an
``ExchangeConfig`` without ``n_accounts``, which the population sets),
``population`` and ``switches``.

``dt`` is the seconds a step stands for. The population's rates, half-lives,
step counts and shock times are per step (only ``holding_period`` is in
seconds), so ``dt`` sets the clock that the summary's minute windows and the
report read: a scenario run at another ``dt`` is a faster or slower market on
that clock, not the same market sampled more coarsely.

The switches apply to any scenario:

* ``collateral_pricing``: ``internal_book`` | ``conversion`` | a weight in [0, 1]
  on the internal book, for every spot (collateral) market;
* ``mm_obligations``: scripted makers must keep quoting (max spread, min size,
  presence), relaxed x3 under stress;
* ``circuit_breaker``: a band (fraction, 0 = off) halting a market that moves
  more than that within the breaker window;
* ``position_limits``: maximum position notional per account and market (USDT,
  ``.inf`` = none): orders past it are refused and leveraged traders open
  within it (the basis desks that take their other side are exempt);
* ``adl_formula``: ``bitmex`` | ``binance`` | ``hyperliquid``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import yaml_loader
from ..core.codes import ADL_FORMULA_NAMES
from ..core.config import ConfigError, ExchangeConfig, check_choice, check_number
from ..population.config import Population, from_mapping


def _config_dir() -> Path:
    """The scenario and hyperparameter files: the copy a wheel installs with the
    package (``mmgym/_configs``), else the source checkout's ``configs/``."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "_configs"
    return installed if installed.is_dir() else package.parent / "configs"


CONFIG_DIR = _config_dir()
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
        # .inf (the default) means no limit.
        check_number(
            f"{where}.position_limits", self.position_limits, 0.0, lo_open=True, allow_inf=True
        )
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
        # A time of day: NaN, inf or a day and more would break the time axes.
        if not 0.0 <= value < 86400.0:
            raise ConfigError(f"start_clock must be in [0, 86400) seconds, got {value!r}")
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
    if not path.is_file():
        raise ConfigError(f"scenario {str(path)!r} is not a file")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml_loader.load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
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
                if node.get(part) is None:
                    node[part] = {}  # a section the file leaves out: unknown names fail later
                if not isinstance(node[part], dict):
                    raise ConfigError(f"override {key!r}: {part!r} is not a section")
                node = node[part]
            node[leaf] = value
        else:
            raise ConfigError(
                f"unknown override {key!r}; use a switch {sorted(switch_names)}, a top-level "
                f"key {list(TOP_KEYS)} or a dotted path"
            )
    return data


# Per-market and exchange fields that a switch sets for every market: a scenario
# gives them under ``switches`` only, so that a switch can never be overwritten.
MARKET_SWITCHES = {
    "collateral_pricing": "collateral_pricing",
    "circuit_breaker": "circuit_breaker",
    "position_limit": "position_limits",
}


def parse_scenario(data: dict) -> Scenario:
    """Validate a raw scenario mapping."""
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown scenario field(s) {unknown}; allowed: {list(TOP_KEYS)}")
    for key in ("name", "steps", "exchange", "population"):
        if key not in data:
            raise ConfigError(f"scenario field {key!r} is required")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{key} must be a string, got {data[key]!r}")
    switches = from_mapping(Switches, data.get("switches", {}), "switches")
    exchange = dict(data["exchange"]) if isinstance(data["exchange"], dict) else data["exchange"]
    if not isinstance(exchange, dict):
        raise ConfigError("exchange must be a mapping")
    if "n_accounts" in exchange:
        raise ConfigError("exchange.n_accounts is set by the population; remove it")
    if "adl_formula" in exchange:
        raise ConfigError("exchange.adl_formula is set by a switch: use switches.adl_formula")
    exchange["adl_formula"] = switches.adl_formula
    if not isinstance(exchange.get("markets", []), list):
        raise ConfigError(f"exchange.markets must be a list, got {exchange['markets']!r}")
    markets = []
    for k, m in enumerate(exchange.get("markets", [])):
        m = dict(m) if isinstance(m, dict) else m
        if isinstance(m, dict):
            for key, switch in MARKET_SWITCHES.items():
                if key in m:
                    raise ConfigError(
                        f"exchange.markets[{k}].{key} is set by a switch for every market: "
                        f"use switches.{switch}"
                    )
            if m.get("kind") == "spot":
                m["collateral_pricing"] = switches.collateral_pricing
            m["circuit_breaker"] = switches.circuit_breaker
            m["position_limit"] = switches.position_limits
        markets.append(m)
    exchange["markets"] = markets
    exchange_config = ExchangeConfig.from_dict(exchange)
    raw_population = data["population"]
    obligations = raw_population.get("obligations") if isinstance(raw_population, dict) else None
    if isinstance(obligations, dict) and "enabled" in obligations:
        raise ConfigError(
            "population.obligations.enabled is set by a switch: use switches.mm_obligations"
        )
    population = from_mapping(Population, data["population"], "population")
    # The switch alone turns obligations on or off.
    obligations = dataclasses.replace(population.obligations, enabled=switches.mm_obligations)
    population = dataclasses.replace(population, obligations=obligations)
    _check_market_names(population, exchange_config)
    _check_sizes(population, exchange_config)
    dt = check_number("dt", data.get("dt", 1.0), 0.0, 3600.0, lo_open=True)
    _check_turnover(population.leveraged, dt)
    _check_position_limit(switches.position_limits, population, exchange_config)
    _check_loopers(population.loopers, exchange_config)
    return Scenario(
        name=data["name"],
        description=data.get("description", ""),
        # Two steps at least: the summary compares the run with its start.
        steps=check_number("steps", data["steps"], 2, 10**7, integer=True),
        dt=dt,
        start_clock=_clock(data.get("start_clock", 0)),
        exchange=exchange_config,
        population=population,
        switches=switches,
    )


# Turnovers a step may draw on average: a step carries out 32
# (population.traders.TURNOVERS_PER_STEP), which a Poisson draw of mean 8
# exceeds about once in 3 * 10**10 steps.
MAX_TURNOVERS_PER_STEP = 8.0


def _check_turnover(leveraged, dt) -> None:
    """Turnovers per step within what a step carries out, so none are dropped."""
    lowest = leveraged.count * dt / MAX_TURNOVERS_PER_STEP
    if leveraged.holding_period < lowest:
        raise ConfigError(
            f"population.leveraged.holding_period must be at least {lowest:g} s with "
            f"{leveraged.count} traders and dt {dt:g} (at most {MAX_TURNOVERS_PER_STEP:g} "
            f"turnovers a step on average), got {leveraged.holding_period!r}"
        )


def _check_position_limit(limit, population, exchange) -> None:
    """Leveraged traders open within the limit: it must allow one lot of each perpetual."""
    if not population.leveraged.count:
        return
    for market in exchange.markets:
        lot_value = market.lot_size * population.index[market.name].start
        if market.kind == "perp" and limit < lot_value:
            raise ConfigError(
                f"switches.position_limits must be at least one lot of {market.name} at "
                f"its start price, {lot_value:g} USDT, got {limit!r}"
            )


def _check_loopers(loopers, exchange) -> None:
    """A looper must start above its liquidation level (uniMMR), as every account does."""
    if loopers.count == 0:
        return
    ratio = next(m.collateral_ratio for m in exchange.markets if m.name == loopers.market)
    # Per unit of equity: coins worth `loop`, debt `loop - 1`, counted at `ratio`.
    level = exchange.unified_liquidation_level * exchange.borrow_mmr
    if 1.0 - ratio + level <= 0.0:
        return  # coins counted in full and no margin on debt: no loop is liquidated
    most = (1.0 + level) / (1.0 - ratio + level)
    if loopers.loop >= most:
        raise ConfigError(
            f"population.loopers.loop must be below {most:.3g}, where a looper would start at "
            f"its liquidation level (collateral ratio {ratio:g}, borrow MMR "
            f"{exchange.borrow_mmr:g}), got {loopers.loop!r}"
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
    for name in makers.base_volatility:
        need(f"population.makers.base_volatility.{name}", name, names)
    # Without firms there is no collateral to place (as in ``population.build``).
    if makers.firms and makers.unified and makers.collateral_share > 0:
        need("population.makers.collateral_market", makers.collateral_market, spots)
    if population.loopers.count:
        need("population.loopers.market", population.loopers.market, spots)


# Prices are integer ticks, exact in float64 up to 2**53. At MIN_LOT_NOTIONAL
# USDT a lot, a 1e14 USDT position is 1e18 lots, still within int64 (9.2e18);
# a lot worth more than MAX_LOT_NOTIONAL exceeds the orders the population
# sends, so nothing would trade.
MAX_TICKS = 2**53
MIN_LOT_NOTIONAL = 1e-4
MAX_LOT_NOTIONAL = 1e6


def _check_sizes(population: Population, exchange: ExchangeConfig) -> None:
    """Tick and lot sizes against each market's index start price."""
    for k, market in enumerate(exchange.markets):
        start = population.index[market.name].start
        where = f"exchange.markets[{k}]"
        # At least one tick inside the price band, else no limit order fits.
        lo, hi = start / MAX_TICKS, start * market.price_band
        if not lo <= market.tick_size <= hi:
            raise ConfigError(
                f"{where}.tick_size must be in [{lo:.3g}, {hi:.3g}] (start price / 2**53 to "
                f"start price x price_band, start {start:g}), got {market.tick_size!r}"
            )
        lo, hi = MIN_LOT_NOTIONAL / start, MAX_LOT_NOTIONAL / start
        if not lo <= market.lot_size <= hi:
            raise ConfigError(
                f"{where}.lot_size must be in [{lo:.3g}, {hi:.3g}] (a lot worth "
                f"{MIN_LOT_NOTIONAL:g} to {MAX_LOT_NOTIONAL:g} USDT at start price {start:g}), "
                f"got {market.lot_size!r}"
            )
