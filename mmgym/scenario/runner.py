"""Running a scenario: build, step with the population, collect timeline and summary."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..core.codes import (
    ENV_STAT_NAMES,
    MARKET_STAT_NAMES,
    ORDER_COLUMNS,
    PERP,
    RESULT_COLUMNS,
)
from ..core.config import ConfigError, check_number
from ..core.exchange import check_book_room
from ..population.build import build_params, make_exchange, populate
from ..population.makers import STRESS_SIGNALS
from ..population.step import run_episode
from .config import Scenario, apply_overrides, load_raw, parse_scenario
from .summary import summarise


class Logs(NamedTuple):
    """Per-step records written by the episode kernel."""

    market: np.ndarray  # float64[E, T, K, len(MARKET_STAT_NAMES)]
    env: np.ndarray  # float64[E, T, len(ENV_STAT_NAMES)]
    quoting: np.ndarray  # float64[E, T]
    maker_away: np.ndarray  # int64[E, T, F]
    maker_stress: np.ndarray  # float64[E, T, F, len(STRESS_SIGNALS)]
    totals: np.ndarray  # int64[E, T, K], each market's sum of positions or holdings
    cash: np.ndarray  # float64[E, T]


@dataclass
class ScenarioResult:
    """What ``run`` returns.

    ``timeline``: ``time`` (seconds after midnight UTC), per-market keys (each a
    dict ``{market: array}``): ``mid``, ``best_bid``, ``best_ask``, ``spread``,
    ``depth_1pct``, ``depth_bid_1pct``, ``depth_ask_1pct``, ``index``, ``mark``,
    ``last``, ``open_interest``, ``volume``, ``liq_count`` (long + short:
    liquidation orders that traded, in the book or taken over by the fund; on
    a spot market, a unified account's collateral sold),
    ``liq_count_long``, ``liq_count_short``, ``liq_notional_long``,
    ``liq_notional_short``, ``takeover_notional``, ``adl_count``,
    ``adl_notional``, ``collateral_price``; env keys (arrays):
    ``insurance_fund``, ``fund_payout``, ``socialised_loss``, ``fees_collected``,
    ``accounts_in_liquidation``, ``fund_utilisation`` (the fund's net notional
    over its takeover limit, after the step's liquidations),
    ``fund_utilisation_at_adl`` (the lowest reading when an ADL started in the
    step, NaN without ADL), ``mm_quoting`` (share of scripted firms quoting).
    Per firm (bool or float64[T, F], one column per firm): ``mm_away``
    (withdrawn) and ``mm_stress`` ({signal: each of a firm's stress signals
    over its threshold}, signals ``population.makers.STRESS_SIGNALS``; the
    firm withdraws when the largest reaches 1).
    ``summary``: floats (see ``summary.summarise``). ``invariants``: the worst
    position imbalance (lots), spot holdings' drift from their deposits (lots)
    and cash drift (USDT) seen at any step of the run.
    ``seconds``: wall time of the episode kernel; ``orders``: orders it applied.
    """

    scenario: Scenario
    seed: int
    timeline: dict
    summary: dict
    invariants: dict
    seconds: float
    orders: int


def load_scenario(name_or_config, **overrides) -> Scenario:
    """A validated scenario from a name, a path, a raw mapping or a ``Scenario``."""
    if isinstance(name_or_config, Scenario):
        if overrides:
            raise ValueError("overrides need a scenario name, path or mapping")
        return name_or_config
    if isinstance(name_or_config, Mapping):
        raw = _plain(name_or_config)
    elif isinstance(name_or_config, (str, os.PathLike)):
        raw = load_raw(name_or_config)
    else:
        raise ConfigError(
            "scenario must be a name, a path, a mapping or a Scenario, "
            f"got {type(name_or_config).__name__} {name_or_config!r}"
        )
    return parse_scenario(apply_overrides(raw, overrides))


def _plain(value):
    """Nested mappings and sequences (a config library's, say) as dicts and lists."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def build(scenario: Scenario, seeds):
    """Exchange, population parameters and state for one env per seed."""
    generators = [np.random.default_rng(seed) for seed in seeds]
    ex = make_exchange(scenario, len(generators))
    pop_state = populate(ex, scenario, generators)
    return ex, build_params(scenario), pop_state


def run(name_or_config, seed: int = 0, **overrides) -> ScenarioResult:
    """Run a scenario with its scripted population for one seed."""
    import time

    # None would draw an unrepeatable seed; True is not a seed.
    seed = check_number("seed", seed, 0, 2**63 - 1, integer=True)
    scenario = load_scenario(name_or_config, **overrides)
    ex, pp, ps = build(scenario, [seed])
    steps, k = scenario.steps, scenario.exchange.n_markets
    firms = ps.stress_parts.shape[1]
    logs = Logs(
        market=np.zeros((1, steps, k, len(MARKET_STAT_NAMES))),
        env=np.zeros((1, steps, len(ENV_STAT_NAMES))),
        quoting=np.zeros((1, steps)),
        maker_away=np.zeros((1, steps, firms), np.int64),
        maker_stress=np.zeros((1, steps, firms, len(STRESS_SIGNALS))),
        totals=np.zeros((1, steps, k), np.int64),
        cash=np.zeros((1, steps)),
    )
    no_orders = np.zeros((1, 0, ORDER_COLUMNS), np.int64)
    no_results = np.zeros((1, 0, RESULT_COLUMNS), np.int64)
    t0 = time.perf_counter()
    run_episode(ex.params, ex.state, pp, ps, steps, no_orders, no_results, np.zeros(k), logs)
    seconds = time.perf_counter() - t0
    check_book_room(ps.book_full, scenario.exchange)
    timeline = make_timeline(scenario, logs, 0)
    perp = ex.params.market_kind == PERP
    totals = logs.totals[0]
    invariants = {
        "position_imbalance": int(np.abs(totals[:, perp]).max(initial=0)),
        "cash_drift": float(np.abs(logs.cash[0] - ex.deposited_cash[0]).max()),
        "holdings_drift": float(
            np.abs(totals[:, ~perp] - ex.deposited_holdings[0, ~perp]).max(initial=0)
        ),
    }
    return ScenarioResult(
        scenario,
        seed,
        timeline,
        summarise(scenario, timeline),
        invariants,
        seconds,
        int(ps.n_orders[0]),
    )


def make_timeline(scenario: Scenario, logs: Logs, e: int) -> dict:
    """Timeline dict of env ``e`` (see ``ScenarioResult``)."""
    names = [m.name for m in scenario.exchange.markets]
    steps = logs.market.shape[1]
    timeline = {"time": scenario.start_clock + scenario.dt * np.arange(steps)}
    for i, stat in enumerate(MARKET_STAT_NAMES):
        timeline[stat] = {n: logs.market[e, :, k, i].copy() for k, n in enumerate(names)}
    timeline["liq_count"] = {
        n: timeline["liq_count_long"][n] + timeline["liq_count_short"][n] for n in names
    }
    for i, stat in enumerate(ENV_STAT_NAMES):
        timeline[stat] = logs.env[e, :, i].copy()
    timeline["mm_quoting"] = logs.quoting[e].copy()
    timeline["mm_away"] = logs.maker_away[e].astype(bool)
    timeline["mm_stress"] = {
        signal: logs.maker_stress[e, :, :, i].copy() for i, signal in enumerate(STRESS_SIGNALS)
    }
    return timeline
