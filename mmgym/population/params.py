"""Population parameters and state as NamedTuples of arrays (see ``build.py``)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PopParams(NamedTuple):
    """Constants of the population; per-market arrays have length K, per-firm F."""

    # Account layout.
    firm_start: int
    n_firms: int
    lev_start: int
    n_lev: int
    loop_start: int
    n_loop: int
    flow_start: int  # per market k: noise, anchor, momentum, arbitrage at flow_start + 4k + i
    # Exogenous index.
    index_volatility: np.ndarray
    index_beta: np.ndarray
    index_vol_of_vol: np.ndarray
    index_reversion: np.ndarray
    shock_market: np.ndarray  # int64[S]
    shock_start: np.ndarray
    shock_duration: np.ndarray
    shock_size: np.ndarray
    shock_rebound: np.ndarray
    shock_rebound_duration: np.ndarray
    # Background flow (sizes in lots, distances as fractions of price).
    noise_rate: np.ndarray
    noise_lots: np.ndarray
    size_alpha: np.ndarray
    limit_rate: np.ndarray
    limit_lots: np.ndarray
    limit_offset: np.ndarray
    limit_refresh: np.ndarray
    limit_vol_scaling: np.ndarray  # offset widening per unit of excess mark volatility
    anchor_gap: np.ndarray
    anchor_lots: np.ndarray
    anchor_capacity: np.ndarray
    momentum_rate: np.ndarray
    momentum_gap: np.ndarray
    momentum_lots: np.ndarray
    arb_gap: np.ndarray
    arb_lots: np.ndarray
    arb_capacity: np.ndarray
    blocked_capacity: np.ndarray
    flow_holdings: np.ndarray  # lots each background role starts with (spot: coins to sell)
    arbitrage_blocked_from: int
    # Market makers.
    quoted: np.ndarray  # bool[K]
    half_spread: np.ndarray
    level_step: np.ndarray
    levels: np.ndarray  # int64[K]
    level_lots: np.ndarray
    inventory_limit: np.ndarray  # lots
    inventory_base: np.ndarray  # lots held at the start (spot collateral), skew is around it
    base_volatility: np.ndarray
    liquidation_reference: np.ndarray  # usual quoted notional per market
    widen_volatility: float
    widen_liquidations: float
    max_widening: float
    skew: float
    volatility_alpha: float
    loss_alpha: float
    flatten_rate: float
    requote: float  # fraction of price a resting quote may drift from its target
    fair_index_weight: float  # ladder centre: mark + weight * (index - mark)
    quotes_at_mark: bool  # quote sizes notional at the mark, else lots at the start price
    limits_at_mark: bool  # inventory limits notional at the mark, else lots at the start
    threshold_loss: np.ndarray  # float64[F]
    threshold_inventory: np.ndarray
    threshold_volatility: np.ndarray
    threshold_liquidations: np.ndarray
    margin_floor: np.ndarray
    return_level: float
    calm_steps: int
    ramp_steps: int
    obliged: bool
    obligation_half_spread: float
    obligation_lots: np.ndarray
    obligation_multiplier: float
    # Leveraged traders' turnover.
    turnover_rate: float  # chance per trader and step of closing and reopening (0 = never)
    long_share: float  # chance a reopened position is long
    turnover_slippage: float  # IOC limit of turnover orders, fraction of the mark (inf = market)
    # Loopers.
    loop_market: int
    unwind_trigger: float
    unwind_rate: float
    index_start: np.ndarray


class PopState(NamedTuple):
    """What changes: random streams, index, maker firms, signals, stops, order buffer."""

    streams: np.ndarray  # uint64[E]
    log_index: np.ndarray  # float64[E, K], diffusion part
    shock_log: np.ndarray  # float64[E, K], cumulative scheduled move
    vol_state: np.ndarray  # float64[E, K], h of the stochastic volatility
    away: np.ndarray  # int64[E, F], 1 while a firm has withdrawn
    calm: np.ndarray  # int64[E, F], consecutive calm steps while away
    ramp: np.ndarray  # float64[E, F], size multiplier 0..1
    peak_equity: np.ndarray  # float64[E, F]
    stress_parts: np.ndarray  # float64[E, F, 5], each signal over its threshold (STRESS_SIGNALS)
    maker_orders: np.ndarray  # int64[E, F, K, 2, Lmax], resting ids (0 = none)
    maker_target: np.ndarray  # int64[E, F, K, 2, Lmax], target price in ticks (0 = none)
    maker_size: np.ndarray  # int64[E, F, K], lots per quote
    prev_index: np.ndarray  # float64[E, K]
    prev_mark: np.ndarray  # float64[E, K]
    vol_signal: np.ndarray  # float64[E, K], EWMA of squared index returns
    liq_signal: np.ndarray  # float64[E, K], EWMA of liquidation notional
    trend: np.ndarray  # float64[E, K], EWMA of mark returns
    mark_vol: np.ndarray  # float64[E, K], EWMA of squared mark returns
    stop_price: np.ndarray  # float64[E, n_lev], 0 = none or done
    lev_market: np.ndarray  # int64[E, n_lev], the market a stop watches
    stop_list: np.ndarray  # int64[E, n_lev], traders whose stop is still armed, in order
    n_stops: np.ndarray  # int64[E], length of that list
    stop_gap: np.ndarray  # float64[E, n_lev], stop distance of a trader with a stop, else 0
    hedged: np.ndarray  # bool[E, n_lev], two-legged traders (they do not turn over)
    turned_at: np.ndarray  # int64[E, n_lev], step of a trader's last turnover (-1 = none)
    rearm_list: np.ndarray  # int64[E, n_lev], reopened traders whose stop is set next step
    n_rearm: np.ndarray  # int64[E], length of that list
    quoting_share: np.ndarray  # float64[E]
    buffer: np.ndarray  # int64[E, M, 8], this step's population orders
    buffer_results: np.ndarray  # int64[E, M, 3]
    buffer_tag: np.ndarray  # int64[E, M], maker slot of a quote row or -1
    n_buffer: np.ndarray  # int64[E]
    n_orders: np.ndarray  # int64[E], orders applied so far (population and external)
    book_full: np.ndarray  # int64[E, K], orders that could not rest: their book was full
