"""Per-step statistics of every env and market."""

from __future__ import annotations

import math

from .._jit import kernel
from .book import best_price, depth_within
from .codes import (
    ASK,
    BID,
    E_ACCOUNTS_IN_LIQ,
    E_FEES,
    E_FUND_PAYOUT,
    E_FUND_UTILISATION_AT_ADL,
    E_INSURANCE_FUND,
    E_SOCIALISED_LOSS,
    S_ADL_NOTIONAL,
    S_BEST_ASK,
    S_BEST_BID,
    S_COLLATERAL_PRICE,
    S_DEPTH,
    S_DEPTH_ASK,
    S_DEPTH_BID,
    S_INDEX,
    S_LAST,
    S_MARK,
    S_MID,
    S_OPEN_INTEREST,
    S_SPREAD,
    S_VOLUME,
)
from .margin import equity
from .state import FUND


@kernel
def reset_flow_stats(state, e):
    """Zero the statistics that accumulate over a step (volume, liquidations, ADL)."""
    state.env_stats[e, E_FUND_UTILISATION_AT_ADL] = math.nan
    for k in range(state.market_stats.shape[1]):
        for s in range(S_VOLUME, S_ADL_NOTIONAL + 1):
            state.market_stats[e, k, s] = 0.0


@kernel
def record_stats(params, state, e):
    """Book, price and risk statistics at the end of a step.

    ``spread`` is (ask - bid) / mid; ``depth_*_1pct`` is the notional resting
    within 1% of the mid (of the last price when a side is empty).
    """
    stats = state.market_stats[e]
    for k in range(params.market_kind.shape[0]):
        tick = params.tick_size[k]
        tick_value = tick * params.lot_size[k]
        bid = best_price(state, e, k, BID)
        ask = best_price(state, e, k, ASK)
        stats[k, S_BEST_BID] = bid * tick if bid >= 0 else math.nan
        stats[k, S_BEST_ASK] = ask * tick if ask >= 0 else math.nan
        if bid >= 0 and ask >= 0:
            mid = 0.5 * (bid + ask) * tick
            stats[k, S_MID] = mid
            stats[k, S_SPREAD] = (ask - bid) * tick / mid
            reference = mid
        else:
            stats[k, S_MID] = math.nan
            stats[k, S_SPREAD] = math.nan
            reference = state.last_price[e, k]
        stats[k, S_DEPTH_BID] = depth_within(
            state, e, k, BID, math.ceil(reference * 0.99 / tick - 1e-9), tick_value
        )
        stats[k, S_DEPTH_ASK] = depth_within(
            state, e, k, ASK, math.floor(reference * 1.01 / tick + 1e-9), tick_value
        )
        stats[k, S_DEPTH] = stats[k, S_DEPTH_BID] + stats[k, S_DEPTH_ASK]
        stats[k, S_INDEX] = state.index_price[e, k]
        stats[k, S_MARK] = state.mark_price[e, k]
        stats[k, S_LAST] = state.last_price[e, k]
        stats[k, S_OPEN_INTEREST] = (
            state.open_interest[e, k] * params.lot_size[k] * state.mark_price[e, k]
        )
        stats[k, S_COLLATERAL_PRICE] = state.collateral_price[e, k]
    env = state.env_stats[e]
    env[E_INSURANCE_FUND] = equity(params, state, e, FUND)
    env[E_FUND_PAYOUT] = state.fund_payout[e]
    env[E_SOCIALISED_LOSS] = state.socialised_loss[e]
    env[E_FEES] = state.fees_collected[e]
    env[E_ACCOUNTS_IN_LIQ] = state.in_liquidation[e].sum()
