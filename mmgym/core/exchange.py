"""Python front end of the engine: validated input, kernel calls, readable output."""

from __future__ import annotations

import math

import numpy as np

from .codes import (
    ASK,
    BID,
    CANCEL,
    CROSS,
    ENV_STAT_NAMES,
    MARKET,
    MARKET_STAT_NAMES,
    ORDER_COLUMNS,
    ORDER_KIND_NAMES,
    PERP,
    R_STATUS,
    REJECT_BOOK_FULL,
    RESULT_COLUMNS,
    UNIFIED,
)
from .config import ExchangeConfig
from .params import build_params
from .state import allocate_state, open_markets
from .step import advance

_COLUMN_NAMES = ("env", "market", "account", "kind", "side", "price", "qty", "ref")


class BookFullError(RuntimeError):
    """A resting order found no free slot or price level in its book."""


def check_book_room(book_full: np.ndarray, config: ExchangeConfig) -> None:
    """Raise ``BookFullError`` if any env's market counted an order its full book refused.

    ``book_full`` is int[E, K]; the population's step counts what it cannot
    raise itself (it runs inside one compiled call).
    """
    if book_full.any():
        e, k = np.argwhere(book_full)[0]
        raise BookFullError(
            f"book full: env {e} market {config.markets[k].name} refused {book_full[e, k]} "
            f"orders for want of room (book_capacity={config.book_capacity} orders, "
            f"max_levels={config.max_levels} per side); raise them in the config"
        )


def validate_orders(orders, n_envs: int, n_markets: int, n_accounts: int) -> np.ndarray:
    """Check an order batch and return it as a C-contiguous int64 array.

    Columns: env, market, account (1..n_accounts), kind (see ``ORDER_KIND_NAMES``),
    side (+1 buy, -1 sell), price (ticks), qty (lots), ref (order id to cancel).
    """
    arr = np.asarray(orders)
    if arr.size == 0:
        return np.zeros((0, ORDER_COLUMNS), np.int64)
    if arr.ndim != 2 or arr.shape[1] != ORDER_COLUMNS:
        raise ValueError(f"orders must have shape (n, {ORDER_COLUMNS}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"orders must be integers (ticks and lots), got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    kind = arr[:, 3]
    trading = kind <= MARKET
    needs_price = trading & (kind != MARKET)
    checks = (
        (0, arr[:, 0], 0, n_envs - 1, None),
        (1, arr[:, 1], 0, n_markets - 1, None),
        (2, arr[:, 2], 1, n_accounts, None),
        (3, kind, 0, len(ORDER_KIND_NAMES) - 1, None),
        (6, arr[:, 6], 1, np.iinfo(np.int64).max // 4, trading),
        (5, arr[:, 5], 1, np.iinfo(np.int64).max // 4, needs_price),
        (7, arr[:, 7], 1, np.iinfo(np.int64).max, kind == CANCEL),
    )
    for col, values, lo, hi, mask in checks:
        bad = (values < lo) | (values > hi)
        if mask is not None:
            bad &= mask
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"orders[{row}].{_COLUMN_NAMES[col]} must be in [{lo}, {hi}], got {values[row]}"
            )
    bad_side = trading & (np.abs(arr[:, 4]) != 1)
    if bad_side.any():
        row = int(np.argmax(bad_side))
        raise ValueError(f"orders[{row}].side must be +1 (buy) or -1 (sell), got {arr[row, 4]}")
    return arr


class Exchange:
    """``n_envs`` independent exchanges of one configuration, stepped together.

    Account 0 of every env is the insurance fund; traders are accounts
    ``1 .. config.n_accounts``. Prices in orders are integer ticks and
    quantities integer lots of the market; everything reported is in USDT and
    coins.
    """

    def __init__(self, config: ExchangeConfig | None = None, n_envs: int = 1):
        self.config = (config or ExchangeConfig()).validated()
        self.params = build_params(self.config)
        self.state = allocate_state(self.config, n_envs)
        self.n_envs = int(n_envs)
        self.deposited_cash = self.state.cash.sum(axis=1)
        self.deposited_holdings = np.zeros((self.n_envs, self.config.n_markets))
        self._empty_results = np.zeros((0, RESULT_COLUMNS), np.int64)

    # -- set-up -------------------------------------------------------------------------
    def _index_array(self, prices, name: str) -> np.ndarray:
        arr = np.asarray(prices, dtype=np.float64)
        shape = (self.n_envs, self.config.n_markets)
        if arr.shape == shape[1:]:
            arr = np.broadcast_to(arr, shape)
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape[1:]} or {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr) & (arr > 0)):
            raise ValueError(f"{name} must be finite and > 0")
        # Always a writable C array: numba compiles a second specialisation for read-only ones.
        return np.require(arr, np.float64, ("C", "W", "O"))

    def open(self, index_prices) -> None:
        """Set every market's index, mark, last and collateral price before trading starts."""
        open_markets(self.state, self._index_array(index_prices, "index_prices"))

    def deposit(
        self,
        account: int,
        cash: float = 0.0,
        *,
        leverage: float = 1.0,
        kind: str = "cross",
        holdings: dict | None = None,
        env: int | None = None,
    ) -> None:
        """Credit ``cash`` USDT (and spot ``holdings`` {market: coins}) to an account.

        ``kind`` is ``"cross"`` or ``"unified"``; ``leverage`` (1 to 1000) sets
        initial margin; each call sets both. ``env=None`` applies to every env.
        """
        if not 1 <= int(account) <= self.config.n_accounts:
            raise ValueError(f"account must be in [1, {self.config.n_accounts}], got {account}")
        if not math.isfinite(cash) or cash < 0:
            raise ValueError(f"cash must be finite and >= 0, got {cash}")
        if not math.isfinite(leverage) or not 1.0 <= leverage <= 1000.0:
            raise ValueError(f"leverage must be in [1, 1000], got {leverage}")
        if kind not in ("cross", "unified"):
            raise ValueError(f"kind must be 'cross' or 'unified', got {kind!r}")
        envs = slice(None) if env is None else self._env(env)
        s = self.state
        s.cash[envs, account] += cash
        self.deposited_cash[envs] += cash
        s.leverage[envs, account] = leverage
        s.account_kind[envs, account] = UNIFIED if kind == "unified" else CROSS
        s.cushion[envs, account] = -1.0  # the margin screen must check it afresh
        for market, coins in (holdings or {}).items():
            k = self._market(market)
            if self.params.market_kind[k] == PERP:
                raise ValueError(f"holdings: {self.config.markets[k].name} is a perpetual")
            lots = coins / self.params.lot_size[k]
            if not math.isfinite(lots) or lots < 0 or abs(lots - round(lots)) > 1e-9:
                raise ValueError(f"holdings[{market!r}] must be >= 0 whole lots, got {coins}")
            s.pos[envs, account, k] += round(lots)
            self.deposited_holdings[envs, k] += round(lots)

    # -- stepping -----------------------------------------------------------------------
    def step(self, orders=None, index_prices=None) -> np.ndarray:
        """Advance every env by one step; returns (status, order id, filled lots) per order.

        Raises ``BookFullError`` if an order could not rest because its book is at
        capacity (the order's fills up to then stand).
        """
        index = (
            self.state.index_price.copy()
            if index_prices is None
            else self._index_array(index_prices, "index_prices")
        )
        if orders is None:
            batch = np.zeros((0, ORDER_COLUMNS), np.int64)
            results = self._empty_results
        else:
            batch = validate_orders(
                orders, self.n_envs, self.config.n_markets, self.config.n_accounts
            )
            results = np.zeros((len(batch), RESULT_COLUMNS), np.int64)
        advance(self.params, self.state, batch, results, index)
        full = np.flatnonzero(results[:, R_STATUS] == REJECT_BOOK_FULL)
        if full.size:
            row = batch[full[0]]
            raise BookFullError(
                f"book full: env {row[0]} market {self.config.markets[row[1]].name} has no room "
                f"for order {int(full[0])} (book_capacity={self.config.book_capacity} orders, "
                f"max_levels={self.config.max_levels} per side); raise them in the config"
            )
        return results

    # -- reading ------------------------------------------------------------------------
    def _env(self, env) -> int:
        if not 0 <= int(env) < self.n_envs:
            raise ValueError(f"env must be in [0, {self.n_envs - 1}], got {env}")
        return int(env)

    def _market(self, market) -> int:
        if isinstance(market, str):
            return self.config.market_index(market)
        if not 0 <= int(market) < self.config.n_markets:
            raise ValueError(f"market must be in [0, {self.config.n_markets - 1}], got {market}")
        return int(market)

    def _whole(self, market, value: float, what: str, unit: str, sizes) -> int:
        k = self._market(market)
        n = value / sizes[k]
        if not math.isfinite(n) or n < 1 or abs(n - round(n)) > 1e-6:
            raise ValueError(
                f"{what} {value} is not a positive multiple of {unit} "
                f"{sizes[k]} for {self.config.markets[k].name}"
            )
        return round(n)

    def ticks(self, market, price: float) -> int:
        """A price in USDT as whole ticks of ``market`` (must lie on the tick grid)."""
        return self._whole(market, price, "price", "tick size", self.params.tick_size)

    def lots(self, market, qty: float) -> int:
        """A quantity in coins as whole lots of ``market``."""
        return self._whole(market, qty, "qty", "lot size", self.params.lot_size)

    def book(self, market, env: int = 0) -> dict:
        """Price levels, best first: ``{"bids": [(price, coins)], "asks": [...]}``."""
        k, e, s = self._market(market), self._env(env), self.state
        tick, lot = self.params.tick_size[k], self.params.lot_size[k]
        out = {}
        for name, slot in (("bids", BID), ("asks", ASK)):
            n = s.n_levels[e, k, slot]
            prices = s.level_price[e, k, slot, :n][::-1] * tick
            qty = s.level_qty[e, k, slot, :n][::-1] * lot
            out[name] = list(zip(prices.tolist(), qty.tolist(), strict=False))
        return out

    def fills(self, env: int = 0) -> np.ndarray:
        """The fill log's rows still held, oldest first (columns: see ``codes.F_*``)."""
        e = self._env(env)
        total = int(self.state.n_fills[e])
        capacity = self.state.fills.shape[1]
        if total <= capacity:
            return self.state.fills[e, :total].copy()
        start = total % capacity
        return np.concatenate([self.state.fills[e, start:], self.state.fills[e, :start]])

    def market_stats(self, env: int = 0) -> dict:
        """Last step's statistics per market: ``{name: {stat: value}}``."""
        e = self._env(env)
        return {
            m.name: dict(
                zip(MARKET_STAT_NAMES, self.state.market_stats[e, k].tolist(), strict=False)
            )
            for k, m in enumerate(self.config.markets)
        }

    def env_stats(self, env: int = 0) -> dict:
        """Last step's env-wide statistics (insurance fund, socialised loss, ...)."""
        return dict(
            zip(ENV_STAT_NAMES, self.state.env_stats[self._env(env)].tolist(), strict=False)
        )

    def invariants(self) -> dict:
        """Worst conservation errors over envs.

        ``position_imbalance``: largest |sum of positions| of a perpetual (lots);
        ``holdings_drift``: largest change of a spot asset's total (lots);
        ``cash_drift``: largest |cash + fees - socialised loss - deposits| (USDT).
        """
        s, perp = self.state, self.params.market_kind == PERP
        totals = s.pos.sum(axis=1)
        cash = s.cash.sum(axis=1) + s.fees_collected - s.socialised_loss - self.deposited_cash
        return {
            "position_imbalance": int(np.abs(totals[:, perp]).max(initial=0)),
            "holdings_drift": float(
                np.abs(totals[:, ~perp] - self.deposited_holdings[:, ~perp]).max(initial=0)
            ),
            "cash_drift": float(np.abs(cash).max()),
        }
