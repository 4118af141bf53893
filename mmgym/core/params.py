"""Immutable kernel parameters built from a validated ``ExchangeConfig``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .brackets import maintenance_amounts
from .codes import ADL_FORMULA_NAMES, PERP, SPOT
from .config import ExchangeConfig


class Params(NamedTuple):
    """Constants of an episode; per-market arrays have length K, brackets K x T."""

    market_kind: np.ndarray  # int64[K], PERP or SPOT
    tick_size: np.ndarray  # float64[K]
    lot_size: np.ndarray  # float64[K]
    price_band: np.ndarray  # float64[K], fraction of mark
    maker_fee: np.ndarray  # float64[K], negative = rebate
    taker_fee: np.ndarray  # float64[K]
    liquidation_fee: np.ndarray  # float64[K], clearance fee to the fund
    bracket_floor: np.ndarray  # float64[K, T], +inf padding
    bracket_mmr: np.ndarray  # float64[K, T]
    bracket_cum: np.ndarray  # float64[K, T]
    bracket_max_leverage: np.ndarray  # float64[K, T]
    collateral_ratio: np.ndarray  # float64[K], spot markets only
    book_weight: np.ndarray  # float64[K], weight of own book price in collateral price
    liquidation_cap: np.ndarray  # float64[K], liquidation notional sent to the book per step
    fund_unwind_cap: np.ndarray  # float64[K], fund unwind notional per step
    position_limit: np.ndarray  # float64[K], max position notional per account
    circuit_breaker: np.ndarray  # float64[K], halt band (0 = off)
    breaker_window: int
    breaker_halt: int
    basis_window: int
    fund_takeover_limit: float  # max net notional the fund holds, as a multiple of its balance
    unified_liquidation_level: float
    unified_reduce_only_level: float
    borrow_mmr: float
    borrow_imr: float
    adl_formula: int
    adl_refresh_steps: int
    margin_screen: float


def build_params(config: ExchangeConfig) -> Params:
    """Kernel parameters for ``config`` (validated first)."""
    config = config.validated()
    markets = config.markets
    n_tiers = max(len(m.brackets) for m in markets)
    floor = np.full((len(markets), n_tiers), np.inf)
    mmr = np.zeros((len(markets), n_tiers))
    cum = np.zeros((len(markets), n_tiers))
    max_leverage = np.zeros((len(markets), n_tiers))
    for k, market in enumerate(markets):
        rows = market.brackets
        floor[k, : len(rows)] = [row.floor for row in rows]
        mmr[k, : len(rows)] = [row.mmr for row in rows]
        cum[k, : len(rows)] = maintenance_amounts(rows)
        max_leverage[k, : len(rows)] = [row.max_leverage for row in rows]
        # Padding tiers repeat the last tier so a scan never reads zeros.
        mmr[k, len(rows) :] = rows[-1].mmr
        cum[k, len(rows) :] = cum[k, len(rows) - 1]
        max_leverage[k, len(rows) :] = rows[-1].max_leverage

    def per_market(attr):
        return np.array([float(getattr(m, attr)) for m in markets])

    return Params(
        market_kind=np.array([PERP if m.kind == "perp" else SPOT for m in markets], np.int64),
        tick_size=per_market("tick_size"),
        lot_size=per_market("lot_size"),
        price_band=per_market("price_band"),
        maker_fee=per_market("maker_fee"),
        taker_fee=per_market("taker_fee"),
        liquidation_fee=per_market("liquidation_fee"),
        bracket_floor=floor,
        bracket_mmr=mmr,
        bracket_cum=cum,
        bracket_max_leverage=max_leverage,
        collateral_ratio=per_market("collateral_ratio"),
        book_weight=per_market("book_weight"),
        liquidation_cap=per_market("liquidation_cap"),
        fund_unwind_cap=per_market("fund_unwind_cap"),
        position_limit=per_market("position_limit"),
        circuit_breaker=per_market("circuit_breaker"),
        breaker_window=int(config.breaker_window),
        breaker_halt=int(config.breaker_halt),
        basis_window=int(config.basis_window),
        fund_takeover_limit=float(config.fund_takeover_limit),
        unified_liquidation_level=float(config.unified_liquidation_level),
        unified_reduce_only_level=float(config.unified_reduce_only_level),
        borrow_mmr=float(config.borrow_mmr),
        borrow_imr=float(config.borrow_imr),
        adl_formula=ADL_FORMULA_NAMES.index(config.adl_formula),
        adl_refresh_steps=int(config.adl_refresh_steps),
        margin_screen=float(config.margin_screen),
    )
