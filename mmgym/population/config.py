"""Validated configuration of the trading population and the exogenous index.

Every section is a frozen dataclass; ``from_mapping`` builds one from plain
data (parsed YAML), rejecting unknown keys and wrong types, and each
section's ``validate`` checks ranges. Errors are ``ConfigError`` naming the
field by its path, e.g. ``population.makers.firms``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

from ..core.config import ConfigError, check_fields, check_number


def from_mapping(cls, data, where: str):
    """Build dataclass ``cls`` from a mapping, recursively, and validate it."""
    if isinstance(data, cls):
        # Built in Python: checked field by field, nested sections too, as parsed data is.
        data = {f.name: getattr(data, f.name) for f in dataclasses.fields(cls)}
    check_fields(cls, data, where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _convert(hints[key], value, f"{where}.{key}")
    obj = cls(**kwargs)
    obj.validate(where)
    return obj


def _convert(hint, value, where):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)
    if origin is dict:
        _, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        return {str(k): _convert(value_type, v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        (item_type, _) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        return tuple(_convert(item_type, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        return check_number(where, value, integer=True)
    if hint is float:
        # Type only: each section's ``validate`` checks the range and where .inf is allowed.
        return check_number(where, value, allow_inf=True)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def _fraction(where, name, value, lo=0.0, hi=1.0):
    check_number(f"{where}.{name}", value, lo, hi)


@dataclass(frozen=True)
class IndexProcess:
    """Exogenous index of one market: log-returns with stochastic volatility.

    ``r_t = sigma_t * z_t + beta * r_market0_t``, ``sigma_t = volatility *
    exp(h_t)``, ``h_t = (1 - reversion) * h_{t-1} + vol_of_vol * w_t``. A spot
    collateral market's index is its conversion (redemption) value.
    """

    start: float = 100.0
    volatility: float = 0.0
    beta: float = 0.0
    vol_of_vol: float = 0.0
    reversion: float = 0.01

    def validate(self, where):
        check_number(f"{where}.start", self.start, 0.0, lo_open=True)
        check_number(f"{where}.volatility", self.volatility, 0.0, 0.1)
        check_number(f"{where}.beta", self.beta, -5.0, 5.0)
        check_number(f"{where}.vol_of_vol", self.vol_of_vol, 0.0, 1.0)
        check_number(f"{where}.reversion", self.reversion, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class Shock:
    """A scheduled log move of a market's index, e.g. a macro announcement."""

    market: str = ""
    start: int = 0
    duration: int = 1
    size: float = 0.0
    rebound: float = 0.0
    rebound_duration: int = 1

    def validate(self, where):
        check_number(f"{where}.start", self.start, 0, 10**9, integer=True)
        check_number(f"{where}.duration", self.duration, 1, 10**9, integer=True)
        check_number(f"{where}.size", self.size, -5.0, 5.0)
        check_number(f"{where}.rebound", self.rebound, 0.0, 1.0)
        check_number(f"{where}.rebound_duration", self.rebound_duration, 1, 10**9, integer=True)


@dataclass(frozen=True)
class Flow:
    """Background traders of one market (notional in USDT, rates per step).

    Noise traders send market orders (``noise_rate`` a step, Pareto sizes with
    tail ``size_alpha``) and limit orders near the touch that they refresh every
    ``limit_refresh`` steps. Fundamental traders buy below and sell above the
    index beyond ``anchor_bps``, up to ``anchor_capacity`` of position.
    Momentum traders follow the recent trend of the mark. Arbitrageurs trade
    the gap to the index beyond ``arb_bps`` with ``arb_capacity`` of
    inventory; when blocked they have ``blocked_capacity`` of it. On a spot
    market every role starts holding ``arb_capacity`` of coins, and the
    capacities bound what it buys or sells from there, either way. Limit
    orders sit further from the mark when this venue's mark is more volatile
    than usual (the makers' ``base_volatility``): their distance is multiplied
    by 1 + ``limit_vol_scaling`` x (volatility ratio - 1) while the ratio is above 1.
    """

    noise_rate: float = 0.5
    noise_notional: float = 1000.0
    size_alpha: float = 1.8
    limit_rate: float = 1.0
    limit_notional: float = 2000.0
    limit_offset_bps: float = 10.0
    limit_refresh: int = 60
    anchor_bps: float = 20.0
    anchor_notional: float = 5000.0
    anchor_capacity: float = 1e6
    momentum_rate: float = 0.2
    momentum_bps: float = 5.0
    momentum_notional: float = 2000.0
    arb_bps: float = 30.0
    arb_notional: float = 20_000.0
    arb_capacity: float = 1e6
    blocked_capacity: float = 1e5
    limit_vol_scaling: float = 0.0

    def validate(self, where):
        for name in ("noise_rate", "limit_rate", "momentum_rate"):
            _fraction(where, name, getattr(self, name), 0.0, 50.0)
        for name in (
            "noise_notional",
            "limit_notional",
            "anchor_notional",
            "anchor_capacity",
            "momentum_notional",
            "arb_notional",
            "arb_capacity",
            "blocked_capacity",
        ):
            check_number(f"{where}.{name}", getattr(self, name), 0.0, 1e12)
        for name in ("limit_offset_bps", "anchor_bps", "momentum_bps", "arb_bps"):
            check_number(f"{where}.{name}", getattr(self, name), 0.0, 10_000.0)
        check_number(f"{where}.size_alpha", self.size_alpha, 1.05, 10.0)
        check_number(f"{where}.limit_refresh", self.limit_refresh, 1, 10**6, integer=True)
        check_number(f"{where}.limit_vol_scaling", self.limit_vol_scaling, 0.0, 100.0)


@dataclass(frozen=True)
class Leveraged:
    """Leveraged traders, opened against basis desks at the start.

    ``weights`` gives each perpetual's share of traders; sizes are Pareto with
    median ``median_notional``; leverage is log-uniform on [``leverage_min``,
    ``leverage_max``]. ``hedged_share`` of traders are long the first perp and
    short ``hedge_market``; ``unified_share`` hold ``collateral_market``
    coins as part of their margin. Each trader is one account: a trader with
    a single position margins it in isolation (a cross account holding one
    position is an isolated one), a hedged trader margins both legs across.

    ``holding_period`` (seconds, mean) lets single-position traders turn
    over: at rate 1/holding_period each closes its position (if any) with a
    market order and opens a new one on a freshly drawn side (``long_share``),
    sized at 90% of its equity times its leverage, with a new stop if it has
    one. Stopped-out and liquidated traders come back the same way while they
    have equity left. ``.inf`` (the default) means positions are only closed
    by stops and liquidations, as in a few hours of the oct10 window.
    ``turnover_slippage`` (fraction of the mark) makes those two orders IOCs
    limited that far from the mark (within the price band), as execution
    algos cap slippage; what does not fill at once is dropped. ``.inf`` (the
    default) sends market orders.
    """

    count: int = 1000
    long_share: float = 0.6
    leverage_min: float = 2.0
    leverage_max: float = 50.0
    weights: dict[str, float] = field(default_factory=dict)
    median_notional: dict[str, float] = field(default_factory=dict)
    size_alpha: float = 1.5
    entry_dispersion: float = 0.01
    stop_loss_share: float = 0.3
    stop_distance: float = 0.05
    hedged_share: float = 0.0
    hedge_market: str = ""
    unified_share: float = 0.0
    collateral_market: str = ""
    collateral_share: float = 0.5
    desks: int = 4
    desk_leverage: float = 3.0
    holding_period: float = math.inf
    turnover_slippage: float = math.inf

    def validate(self, where):
        check_number(f"{where}.count", self.count, 0, 10**6, integer=True)
        _fraction(where, "long_share", self.long_share)
        check_number(f"{where}.leverage_min", self.leverage_min, 1.0, 125.0)
        check_number(f"{where}.leverage_max", self.leverage_max, self.leverage_min, 125.0)
        check_number(f"{where}.size_alpha", self.size_alpha, 1.05, 10.0)
        _fraction(where, "entry_dispersion", self.entry_dispersion, 0.0, 0.5)
        _fraction(where, "stop_loss_share", self.stop_loss_share)
        _fraction(where, "stop_distance", self.stop_distance, 0.0, 0.9)
        _fraction(where, "hedged_share", self.hedged_share)
        _fraction(where, "unified_share", self.unified_share)
        _fraction(where, "collateral_share", self.collateral_share)
        check_number(f"{where}.desks", self.desks, 1, 1000, integer=True)
        check_number(f"{where}.desk_leverage", self.desk_leverage, 1.0, 20.0)
        # .inf (the default) turns turnover off / sends market orders (docstring).
        check_number(f"{where}.holding_period", self.holding_period, 1.0, allow_inf=True)
        check_number(
            f"{where}.turnover_slippage", self.turnover_slippage, 0.0, lo_open=True, allow_inf=True
        )
        for name, w in self.weights.items():
            check_number(f"{where}.weights.{name}", w, 0.0, 1e6)
        if self.count and self.weights and sum(self.weights.values()) <= 0:
            # The shares are weights / sum: all zero would divide by zero.
            raise ConfigError(
                f"{where}.weights must have a positive sum when count > 0, got {self.weights}"
            )
        for name, n in self.median_notional.items():
            check_number(f"{where}.median_notional.{name}", n, 0.0, 1e12, lo_open=True)


@dataclass(frozen=True)
class Quoting:
    """How market-maker firms quote one market."""

    half_spread_bps: float = 5.0
    level_step_bps: float = 5.0
    levels: int = 5
    level_notional: float = 50_000.0
    inventory_limit: float = 1e6

    def validate(self, where):
        check_number(f"{where}.half_spread_bps", self.half_spread_bps, 0.0, 5000.0, lo_open=True)
        check_number(f"{where}.level_step_bps", self.level_step_bps, 0.0, 5000.0, lo_open=True)
        check_number(f"{where}.levels", self.levels, 1, 50, integer=True)
        check_number(f"{where}.level_notional", self.level_notional, 0.0, 1e12, lo_open=True)
        check_number(f"{where}.inventory_limit", self.inventory_limit, 0.0, 1e13, lo_open=True)


@dataclass(frozen=True)
class Makers:
    """Scripted market-maker firms (Avellaneda-Stoikov-style skew, stress withdrawal).

    Stress is the largest of five signals, each divided by the firm's
    threshold: drawdown of equity from its peak, which fades with half-life
    ``loss_halflife`` steps (``loss``), inventory over
    its limit (``inventory``), realised volatility of the index over
    ``base_volatility`` (``volatility``), liquidation notional per step over the book's usual
    depth (``liquidations``) and ``margin_floor`` over the firm's uniMMR
    (``margin``). A firm withdraws (cancels everything in every market) when
    stress reaches 1 and returns, sizes ramping up over ``ramp_steps``, once
    stress has stayed below ``return_level`` for ``calm_steps``. Thresholds
    are scaled per firm by factors spread over ``heterogeneity``. A withdrawn
    firm works its inventory back towards its starting holdings with IOC
    orders of ``flatten_rate`` of the excess a step. A resting quote is kept
    (with its queue place) while untouched and within ``requote_bps`` of its
    target price. ``level_notional`` and ``inventory_limit`` are converted to
    lots at the start price, unless ``quotes_at_mark`` (quote sizes) and
    ``limits_at_mark`` (inventory limits) make them notional at the current
    mark, as desks quote and limit their risk in USDT. The ladder is centred
    on ``mark + fair_index_weight * (index - mark)``: 0 quotes around the
    venue's own mark, 1 around the index, as a desk that prices from (and
    hedges on) the index venues does.
    """

    firms: int = 5
    capital: float = 2e6
    unified: bool = True
    collateral_market: str = ""
    collateral_share: float = 0.3
    quoting: dict[str, Quoting] = field(default_factory=dict)
    widen_volatility: float = 1.0
    widen_liquidations: float = 2.0
    max_widening: float = 10.0
    skew: float = 0.5
    base_volatility: dict[str, float] = field(default_factory=dict)
    volatility_halflife: float = 60.0
    loss: float = 0.05
    loss_halflife: float = 600.0
    flatten_rate: float = 0.05
    requote_bps: float = 0.0
    inventory: float = 1.0
    volatility: float = 4.0
    liquidations: float = 0.5
    margin_floor: float = 1.5
    heterogeneity: float = 0.5
    return_level: float = 0.5
    calm_steps: int = 300
    ramp_steps: int = 300
    quotes_at_mark: bool = False
    limits_at_mark: bool = False
    fair_index_weight: float = 0.0

    def validate(self, where):
        check_number(f"{where}.firms", self.firms, 0, 100, integer=True)
        check_number(f"{where}.capital", self.capital, 0.0, 1e13, lo_open=True)
        _fraction(where, "collateral_share", self.collateral_share, 0.0, 0.95)
        for name in ("widen_volatility", "widen_liquidations", "skew"):
            check_number(f"{where}.{name}", getattr(self, name), 0.0, 100.0)
        check_number(f"{where}.max_widening", self.max_widening, 1.0, 1000.0)
        check_number(f"{where}.volatility_halflife", self.volatility_halflife, 1.0, 1e6)
        check_number(f"{where}.loss_halflife", self.loss_halflife, 1.0, 1e7)
        _fraction(where, "flatten_rate", self.flatten_rate)
        check_number(f"{where}.requote_bps", self.requote_bps, 0.0, 1000.0)
        _fraction(where, "fair_index_weight", self.fair_index_weight, 0.0, 1.0)
        for name in ("loss", "inventory", "volatility", "liquidations"):
            check_number(f"{where}.{name}", getattr(self, name), 0.0, 1e6, lo_open=True)
        check_number(f"{where}.margin_floor", self.margin_floor, 1.0, 100.0)
        _fraction(where, "heterogeneity", self.heterogeneity, 0.0, 0.95)
        _fraction(where, "return_level", self.return_level, 0.0, 1.0)
        check_number(f"{where}.calm_steps", self.calm_steps, 1, 10**6, integer=True)
        check_number(f"{where}.ramp_steps", self.ramp_steps, 1, 10**6, integer=True)
        for name, v in self.base_volatility.items():
            check_number(f"{where}.base_volatility.{name}", v, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class Obligations:
    """Quoting duties for scripted makers (``mm_obligations``), relaxed under stress.

    While obliged, a firm never withdraws: it keeps both sides within
    ``max_spread_bps`` (times ``stress_multiplier`` when stressed) with at least
    ``min_notional`` a side. ``enabled`` is set from ``switches.mm_obligations``
    (``scenario.config.parse_scenario``); a scenario file must not set it.
    """

    enabled: bool = False
    max_spread_bps: float = 100.0
    min_notional: float = 10_000.0
    stress_multiplier: float = 3.0

    def validate(self, where):
        check_number(f"{where}.max_spread_bps", self.max_spread_bps, 0.0, 10_000.0, lo_open=True)
        check_number(f"{where}.min_notional", self.min_notional, 0.0, 1e12, lo_open=True)
        check_number(f"{where}.stress_multiplier", self.stress_multiplier, 1.0, 100.0)


@dataclass(frozen=True)
class Loopers:
    """Yield-stablecoin loopers: unified accounts holding ``market`` coins on USDT debt.

    Once the first market's index has fallen ``unwind_trigger`` from its start
    (risk-off), each looper sells ``unwind_rate`` of its holdings a step
    into the collateral book to repay debt.
    """

    count: int = 0
    market: str = ""
    equity: float = 100_000.0
    loop: float = 4.0
    unwind_trigger: float = 0.05
    unwind_rate: float = 0.01

    def validate(self, where):
        check_number(f"{where}.count", self.count, 0, 10**6, integer=True)
        check_number(f"{where}.equity", self.equity, 0.0, 1e12, lo_open=True)
        check_number(f"{where}.loop", self.loop, 1.0, 20.0)
        _fraction(where, "unwind_trigger", self.unwind_trigger)
        _fraction(where, "unwind_rate", self.unwind_rate)


@dataclass(frozen=True)
class Population:
    """Everybody who trades, and the exogenous index."""

    index: dict[str, IndexProcess] = field(default_factory=dict)
    shocks: tuple[Shock, ...] = ()
    flow: dict[str, Flow] = field(default_factory=dict)
    leveraged: Leveraged = field(default_factory=Leveraged)
    makers: Makers = field(default_factory=Makers)
    obligations: Obligations = field(default_factory=Obligations)
    loopers: Loopers = field(default_factory=Loopers)
    arbitrage_blocked_from: int = -1

    def validate(self, where):
        check_number(
            f"{where}.arbitrage_blocked_from", self.arbitrage_blocked_from, -1, 10**9, integer=True
        )
