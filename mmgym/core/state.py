"""Mutable exchange state: preallocated arrays with a leading env axis.

One kernel call advances every env in the state, so the same code serves a
single exchange and a batch of a thousand. Prices in the book are integer
ticks and quantities integer lots; cash is float64 USDT.

Accounting. ``cash`` is the USDT an account holds net of what it paid for its
perpetual positions: a fill of ``q`` at price ``x`` moves ``q * x`` from the
buyer's cash to the seller's, so cash is conserved by every trade. The
venue's *wallet balance* is ``cash + sum(pos * entry)`` and the margin balance
(equity) is ``cash + sum(pos * mark)``. Spot holdings live in ``pos`` too, in
lots of the spot market, and count as margin only for unified accounts.

Margin screen. The per-step liquidation scan skips an account whose
``cushion`` (see ``core/screen.py``) covers the price moves since
``screen_reference``. Kernels that change an account's cash or positions set
its cushion to -1; code outside the kernels that writes ``cash``, ``pos``,
``entry`` or ``account_kind`` of a stepped state must do the same
(``forget_cushions``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .codes import E_FUND_UTILISATION_AT_ADL, ENV_STAT_NAMES, FILL_COLUMNS, MARKET_STAT_NAMES
from .config import ExchangeConfig

FUND = 0  # account index of the insurance fund in every env


class State(NamedTuple):
    """Everything that changes during an episode (E envs, K markets, A accounts)."""

    # Price levels per book side; bids ascending and asks descending, so the best
    # level is always the last used slot and inserts near the top shift little.
    level_price: np.ndarray  # int64[E, K, 2, L]
    level_qty: np.ndarray  # int64[E, K, 2, L], total resting lots
    level_head: np.ndarray  # int64[E, K, 2, L], first order slot (time priority)
    level_tail: np.ndarray  # int64[E, K, 2, L]
    n_levels: np.ndarray  # int64[E, K, 2]
    # Order pool per book: a slot is free when order_id == 0. The pool arrays are
    # strided views of one array of 64-byte records (see ``_order_records``).
    order_id: np.ndarray  # int64[E, K, N]
    order_price: np.ndarray  # int64[E, K, N]
    order_qty: np.ndarray  # int64[E, K, N], remaining lots
    order_owner: np.ndarray  # int64[E, K, N]
    order_side: np.ndarray  # int64[E, K, N], BUY or SELL
    order_next: np.ndarray  # int64[E, K, N], -1 ends the FIFO
    order_prev: np.ndarray  # int64[E, K, N]
    free_slots: np.ndarray  # int64[E, K, N], stack of free slots
    n_free: np.ndarray  # int64[E, K]
    next_order_seq: np.ndarray  # int64[E]
    # Accounts.
    cash: np.ndarray  # float64[E, A]
    pos: np.ndarray  # int64[E, A, K], perp position or spot holding, lots
    entry: np.ndarray  # float64[E, A, K], average entry price of perp positions
    leverage: np.ndarray  # float64[E, A], initial-margin leverage
    account_kind: np.ndarray  # int64[E, A], CROSS or UNIFIED
    open_buy: np.ndarray  # int64[E, A, K], resting buy lots
    open_sell: np.ndarray  # int64[E, A, K], resting sell lots
    reserved_quote: np.ndarray  # float64[E, A], cash held by resting spot buys
    in_liquidation: np.ndarray  # int64[E, A], 1 while the engine is closing the account
    adl_quantile: np.ndarray  # int64[E, A, K], 0..4 lights, 4 = first in line
    fees_paid: np.ndarray  # float64[E, A], net trading fees (negative = rebates)
    realised_pnl: np.ndarray  # float64[E, A]
    cushion: np.ndarray  # float64[E, A], price move the account surely survives (-1: check it)
    # Markets.
    index_price: np.ndarray  # float64[E, K], exogenous
    mark_price: np.ndarray  # float64[E, K]
    last_price: np.ndarray  # float64[E, K]
    collateral_price: np.ndarray  # float64[E, K], spot markets
    basis_ring: np.ndarray  # float64[E, K, W], recent (mid - index) samples
    open_interest: np.ndarray  # int64[E, K], long lots
    liq_budget: np.ndarray  # float64[E, K], liquidation notional still allowed this step
    unwind_budget: np.ndarray  # float64[E, K]
    breaker_reference: np.ndarray  # float64[E, K], mark the circuit breaker compares to
    halted_until: np.ndarray  # int64[E, K], first step trading resumes
    screen_reference: np.ndarray  # float64[E, K], margin prices the cushions are measured from
    # Env totals.
    fees_collected: np.ndarray  # float64[E]
    socialised_loss: np.ndarray  # float64[E], negative balances written off
    fund_payout: np.ndarray  # float64[E], paid by the fund to reset negative balances
    step: np.ndarray  # int64[E]
    # Statistics of the last step.
    market_stats: np.ndarray  # float64[E, K, len(MARKET_STAT_NAMES)]
    env_stats: np.ndarray  # float64[E, len(ENV_STAT_NAMES)]
    # Fill log ring buffer.
    fills: np.ndarray  # int64[E, F, FILL_COLUMNS]
    n_fills: np.ndarray  # int64[E], total fills ever written
    # Scratch space so kernels never allocate.
    match_slot: np.ndarray  # int64[E, N], resting orders touched by one incoming order
    match_qty: np.ndarray  # int64[E, N]
    match_price: np.ndarray  # int64[E, N]
    match_owner: np.ndarray  # int64[E, N]
    rank_scratch: np.ndarray  # float64[E, 2, A], sorted ADL ranks and each account's rank

    def __reduce__(self):
        # Pickled (or deep-copied) field by field, the order pool's views would come
        # back as separate arrays: another numba type (a second compilation of every
        # kernel) and the records' cache-line layout lost.
        return _restore_state, (self._asdict(),)


ORDER_FIELDS = 8  # order_id .. order_prev, then free_slots: one cache line per slot
POOL_FIELDS = (
    "order_id",
    "order_price",
    "order_qty",
    "order_owner",
    "order_side",
    "order_next",
    "order_prev",
    "free_slots",
)


def _restore_state(values: dict) -> State:
    """A ``State`` from its fields, the order pool's again views of one record array."""
    pool = _order_records(*values["order_id"].shape)
    for i, name in enumerate(POOL_FIELDS):
        pool[..., i] = values[name]
        values[name] = pool[..., i]
    return State(**values)


def _order_records(e: int, k: int, n: int) -> np.ndarray:
    """Zeroed int64[E, K, N, ORDER_FIELDS], each slot's record on its own cache line.

    Matching, cancelling and the makers' checks read several fields of one
    order; as columns of separate arrays each field was a cache miss of its own.
    """
    size = e * k * n * ORDER_FIELDS
    raw = np.zeros(size + 8, np.int64)
    start = (-raw.ctypes.data % 64) // 8
    return raw[start : start + size].reshape(e, k, n, ORDER_FIELDS)


def allocate_state(config: ExchangeConfig, n_envs: int) -> State:
    """Zeroed state for ``n_envs`` exchanges of ``config`` (accounts empty, books empty)."""
    if int(n_envs) != n_envs or n_envs < 1:
        raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
    e, k, a = int(n_envs), config.n_markets, config.n_accounts + 1
    n, levels = config.book_capacity, config.max_levels

    def i64(*shape):
        return np.zeros(shape, np.int64)

    def f64(*shape):
        return np.zeros(shape, np.float64)

    pool = _order_records(e, k, n)
    pool[..., 5:7] = -1  # order_next, order_prev
    pool[..., 7] = np.arange(n - 1, -1, -1)  # free_slots: pop from the end, slot 0 first
    state = State(
        level_price=i64(e, k, 2, levels),
        level_qty=i64(e, k, 2, levels),
        level_head=np.full((e, k, 2, levels), -1, np.int64),
        level_tail=np.full((e, k, 2, levels), -1, np.int64),
        n_levels=i64(e, k, 2),
        **{name: pool[..., i] for i, name in enumerate(POOL_FIELDS)},
        n_free=np.full((e, k), n, np.int64),
        next_order_seq=np.ones(e, np.int64),
        cash=f64(e, a),
        pos=i64(e, a, k),
        entry=f64(e, a, k),
        leverage=np.full((e, a), 1.0),
        account_kind=i64(e, a),
        open_buy=i64(e, a, k),
        open_sell=i64(e, a, k),
        reserved_quote=f64(e, a),
        in_liquidation=i64(e, a),
        adl_quantile=i64(e, a, k),
        fees_paid=f64(e, a),
        realised_pnl=f64(e, a),
        cushion=np.full((e, a), -1.0),
        index_price=f64(e, k),
        mark_price=f64(e, k),
        last_price=f64(e, k),
        collateral_price=f64(e, k),
        basis_ring=f64(e, k, config.basis_window),
        open_interest=i64(e, k),
        liq_budget=f64(e, k),
        unwind_budget=f64(e, k),
        breaker_reference=f64(e, k),
        halted_until=i64(e, k),
        screen_reference=f64(e, k),
        fees_collected=f64(e),
        socialised_loss=f64(e),
        fund_payout=f64(e),
        step=i64(e),
        market_stats=f64(e, k, len(MARKET_STAT_NAMES)),
        env_stats=f64(e, len(ENV_STAT_NAMES)),
        fills=i64(e, config.fill_log_capacity, FILL_COLUMNS),
        n_fills=i64(e),
        match_slot=i64(e, n),
        match_qty=i64(e, n),
        match_price=i64(e, n),
        match_owner=i64(e, n),
        rank_scratch=f64(e, 2, a),
    )
    state.cash[:, FUND] = config.insurance_fund
    state.env_stats[:, E_FUND_UTILISATION_AT_ADL] = np.nan  # no ADL yet
    return state


def open_markets(state: State, prices: np.ndarray) -> None:
    """Set index, mark, last, collateral and breaker reference prices ([E, K]) before trading."""
    for arr in (
        state.index_price,
        state.mark_price,
        state.last_price,
        state.collateral_price,
        state.breaker_reference,
    ):
        arr[:] = prices


def forget_cushions(state: State) -> None:
    """Make the next liquidation scan check every account (after writing accounts from outside)."""
    state.cushion[:] = -1.0
