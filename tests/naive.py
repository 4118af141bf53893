"""A slow, obviously correct reference exchange in plain Python.

``NaiveExchange`` implements the rules of ``mmgym.core`` (one env) with dicts,
lists and Python numbers instead of preallocated numba arrays: a book is a
dict of price levels holding FIFO lists of orders, an account is a small
object. It shares no code with the engine's kernels; only the integer codes
and the configuration classes are imported. Floating-point expressions are
written in the same order as the engine's so that both produce the same
numbers (IEEE arithmetic is deterministic), which lets the tests compare them
at tight tolerances and catch any rule that differs.

Order ids follow the engine: ``id = seq * book_capacity + slot`` where ``seq``
counts resting orders per env (from 1) and ``slot`` comes from a per-book stack
of free slots, initialised to ``[N-1, ..., 0]`` and popped from the end; freed
slots are pushed back.
"""

from __future__ import annotations

import math

from mmgym.core.codes import (
    ACCEPTED,
    ADL_BINANCE,
    ADL_BITMEX,
    ADL_FORMULA_NAMES,
    ADL_HYPERLIQUID,
    BUY,
    CANCEL,
    CANCEL_ALL,
    CROSS,
    E_ACCOUNTS_IN_LIQ,
    E_FEES,
    E_FUND_PAYOUT,
    E_FUND_UTILISATION,
    E_FUND_UTILISATION_AT_ADL,
    E_INSURANCE_FUND,
    E_SOCIALISED_LOSS,
    ENV_STAT_NAMES,
    LIMIT,
    MARKET,
    MARKET_STAT_NAMES,
    POST_ONLY,
    REJECT_BALANCE,
    REJECT_BOOK_FULL,
    REJECT_HALTED,
    REJECT_IN_LIQUIDATION,
    REJECT_MARGIN,
    REJECT_POSITION_LIMIT,
    REJECT_POST_ONLY,
    REJECT_PRICE_BAND,
    REJECT_REDUCE_ONLY,
    REJECT_UNKNOWN_ORDER,
    S_ADL_COUNT,
    S_ADL_NOTIONAL,
    S_BEST_ASK,
    S_BEST_BID,
    S_COLLATERAL_PRICE,
    S_DEPTH,
    S_DEPTH_ASK,
    S_DEPTH_BID,
    S_INDEX,
    S_LAST,
    S_LIQ_COUNT_LONG,
    S_LIQ_COUNT_SHORT,
    S_LIQ_NOTIONAL_LONG,
    S_LIQ_NOTIONAL_SHORT,
    S_MARK,
    S_MID,
    S_OPEN_INTEREST,
    S_SPREAD,
    S_TAKEOVER_NOTIONAL,
    S_VOLUME,
    SELL,
    UNIFIED,
)
from mmgym.core.config import ExchangeConfig

FUND = 0
INF = math.inf
NAN = math.nan
DONE = 0  # position closed or account healthy
CAPPED = 1  # the step's liquidation budget ran out first


class NaiveBookFull(RuntimeError):
    """An order could not rest: no free slot or price level (raised after the whole step)."""

    def __init__(self, results):
        super().__init__("book full")
        self.results = results


def div(a, b):
    """``a / b`` with IEEE semantics (inf/nan instead of ZeroDivisionError)."""
    if b == 0.0:
        if a == 0.0 or a != a:
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)
    return a / b


def median3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


# ----------------------------------------------------------------------------- book


class Order:
    __slots__ = ("oid", "slot", "side", "price", "qty", "owner")

    def __init__(self, oid, slot, side, price, qty, owner):
        self.oid = oid
        self.slot = slot
        self.side = side
        self.price = price
        self.qty = qty
        self.owner = owner


class Level:
    """One price level: total lots and the orders in time priority."""

    __slots__ = ("price", "qty", "queue")

    def __init__(self, price):
        self.price = price
        self.qty = 0
        self.queue = []


class Book:
    """Price-time priority book of one market with a bounded order pool."""

    def __init__(self, capacity, max_levels):
        self.capacity = capacity
        self.max_levels = max_levels
        self.sides = {BUY: {}, SELL: {}}  # side of the resting orders -> {price: Level}
        self.free = list(range(capacity - 1, -1, -1))  # stack, popped from the end
        self.live = {}  # order id -> Order

    def best_level(self, side):
        levels = self.sides[side]
        if not levels:
            return None
        price = max(levels) if side == BUY else min(levels)
        return levels[price]

    def best(self, side):
        """Best price (ticks) of resting ``side`` orders, or -1."""
        level = self.best_level(side)
        return -1 if level is None else level.price

    def levels_best_first(self, side):
        levels = self.sides[side]
        return [levels[p] for p in sorted(levels, reverse=(side == BUY))]

    def can_rest(self, side, price):
        if not self.free:
            return False
        levels = self.sides[side]
        return len(levels) < self.max_levels or price in levels

    def rest(self, side, price, qty, owner, seq):
        levels = self.sides[side]
        if price not in levels:
            levels[price] = Level(price)
        level = levels[price]
        slot = self.free.pop()
        order = Order(seq * self.capacity + slot, slot, side, price, qty, owner)
        level.queue.append(order)
        level.qty += qty
        self.live[order.oid] = order
        return order

    def remove(self, order):
        levels = self.sides[order.side]
        level = levels[order.price]
        level.queue.remove(order)
        level.qty -= order.qty
        if not level.queue:
            del levels[order.price]
        del self.live[order.oid]
        self.free.append(order.slot)

    def match(self, side, limit, qty, taker):
        """Take up to ``qty`` lots at prices no worse than ``limit``.

        Returns ``(events, filled)``; an event is ``(maker, lots, price_ticks)``
        with negative lots for a resting order of ``taker`` cancelled by
        self-trade prevention.
        """
        events = []
        filled = 0
        opposite = -side
        while filled < qty:
            level = self.best_level(opposite)
            if level is None:
                break
            if (side == BUY and level.price > limit) or (side != BUY and level.price < limit):
                break
            for order in list(level.queue):
                if filled >= qty:
                    break
                if order.owner == taker:
                    events.append((order.owner, -order.qty, level.price))
                    self.remove(order)
                    continue
                take = min(qty - filled, order.qty)
                events.append((order.owner, take, level.price))
                filled += take
                if take == order.qty:
                    self.remove(order)
                else:
                    order.qty -= take
                    level.qty -= take
        return events, filled

    def orders_of(self, owner):
        """Live orders of ``owner`` in pool-slot order."""
        return sorted((o for o in self.live.values() if o.owner == owner), key=lambda o: o.slot)


# ------------------------------------------------------------------------- accounts


class Account:
    def __init__(self, n_markets):
        self.cash = 0.0
        self.pos = [0] * n_markets
        self.entry = [0.0] * n_markets
        self.leverage = 1.0
        self.kind = CROSS
        self.open_buy = [0] * n_markets
        self.open_sell = [0] * n_markets
        self.reserved_quote = 0.0
        self.in_liquidation = 0
        self.adl_quantile = [0] * n_markets
        self.fees_paid = 0.0
        self.realised_pnl = 0.0


class Market:
    """Constants and prices of one market, and its book."""

    def __init__(self, cfg, capacity, max_levels, window):
        self.perp = cfg.kind == "perp"
        self.tick = float(cfg.tick_size)
        self.lot = float(cfg.lot_size)
        self.band = float(cfg.price_band)
        self.maker_fee = float(cfg.maker_fee)
        self.taker_fee = float(cfg.taker_fee)
        self.liq_fee = float(cfg.liquidation_fee)
        self.floors = [float(b.floor) for b in cfg.brackets]
        self.mmrs = [float(b.mmr) for b in cfg.brackets]
        self.max_leverages = [float(b.max_leverage) for b in cfg.brackets]
        self.cums = [0.0]
        for t in range(1, len(self.floors)):
            self.cums.append(self.cums[-1] + self.floors[t] * (self.mmrs[t] - self.mmrs[t - 1]))
        self.ratio = float(cfg.collateral_ratio)
        self.book_weight = float(cfg.book_weight)
        self.liq_cap = float(cfg.liquidation_cap)
        self.unwind_cap = float(cfg.fund_unwind_cap)
        self.position_limit = float(cfg.position_limit)
        self.breaker = float(cfg.circuit_breaker)
        self.breaker_reference = 0.0
        self.halted_until = 0  # first step at which the market trades again
        self.index = 0.0
        self.mark = 0.0
        self.last = 0.0
        self.collateral = 0.0
        self.ring = [0.0] * window
        self.open_interest = 0
        self.liq_budget = 0.0
        self.unwind_budget = 0.0
        self.stats = [0.0] * len(MARKET_STAT_NAMES)
        self.book = Book(capacity, max_levels)

    def tier(self, notional):
        t = 0
        while t + 1 < len(self.floors) and notional >= self.floors[t + 1]:
            t += 1
        return t

    def position_mm(self, notional):
        t = self.tier(notional)
        return notional * self.mmrs[t] - self.cums[t]

    def band_ticks(self):
        lo = math.ceil(self.mark * (1.0 - self.band) / self.tick - 1e-9)
        hi = math.floor(self.mark * (1.0 + self.band) / self.tick + 1e-9)
        return max(lo, 1), hi


# ------------------------------------------------------------------------- exchange


class NaiveExchange:
    """One env of the exchange, advanced by ``step(orders, index_prices)``."""

    def __init__(self, config: ExchangeConfig):
        config = config.validated()
        self.config = config
        self.markets = [
            Market(m, config.book_capacity, config.max_levels, config.basis_window)
            for m in config.markets
        ]
        self.K = len(self.markets)
        self.accounts = [Account(self.K) for _ in range(config.n_accounts + 1)]
        self.accounts[FUND].cash = float(config.insurance_fund)
        self.window = config.basis_window
        self.fund_takeover_limit = float(config.fund_takeover_limit)
        self.unified_level = float(config.unified_liquidation_level)
        self.reduce_only_level = float(config.unified_reduce_only_level)
        self.borrow_mmr = float(config.borrow_mmr)
        self.borrow_imr = float(config.borrow_imr)
        self.adl_formula = ADL_FORMULA_NAMES.index(config.adl_formula)
        self.adl_refresh = config.adl_refresh_steps
        self.fill_capacity = config.fill_log_capacity
        self.breaker_window = config.breaker_window
        self.breaker_halt = config.breaker_halt
        self.seq = 1
        self.step_no = 0
        self.fees_collected = 0.0
        self.socialised_loss = 0.0
        self.fund_payout = 0.0
        self.env_stats = [0.0] * len(ENV_STAT_NAMES)
        self.env_stats[E_FUND_UTILISATION_AT_ADL] = NAN
        self.fill_log = []  # every fill ever: [step, market, maker, taker, price, qty, side, liq]

    # -- set-up ----------------------------------------------------------------------
    def open(self, index_prices):
        for m, p in zip(self.markets, index_prices, strict=True):
            p = float(p)
            m.index = m.mark = m.last = m.collateral = m.breaker_reference = p

    def deposit(self, account, cash=0.0, *, leverage=1.0, kind="cross", holdings=None):
        """Like ``Exchange.deposit`` but ``holdings`` is ``{market index: lots}``."""
        acc = self.accounts[account]
        acc.cash += float(cash)
        acc.leverage = float(leverage)
        acc.kind = UNIFIED if kind == "unified" else CROSS
        for k, lots in (holdings or {}).items():
            acc.pos[k] += int(lots)

    def fills(self):
        return self.fill_log[-self.fill_capacity :]

    # -- margin ----------------------------------------------------------------------
    def collateral_value(self, acc):
        if acc.kind != UNIFIED:
            return 0.0
        total = 0.0
        for k, m in enumerate(self.markets):
            if not m.perp and acc.pos[k] != 0:
                value = acc.pos[k] * m.lot * m.collateral
                total += value * m.ratio if value > 0 else value
        return total

    def wallet_balance(self, acc):
        w = acc.cash
        for k, m in enumerate(self.markets):
            if m.perp:
                w += acc.pos[k] * m.lot * acc.entry[k]
        return w

    def equity(self, acc):
        eq = acc.cash
        for k, m in enumerate(self.markets):
            if m.perp:
                eq += acc.pos[k] * m.lot * m.mark
        return eq + self.collateral_value(acc)

    def maintenance_margin(self, acc):
        mm = 0.0
        for k, m in enumerate(self.markets):
            if m.perp and acc.pos[k] != 0:
                mm += m.position_mm(abs(acc.pos[k]) * m.lot * m.mark)
        if acc.kind == UNIFIED:
            debt = -self.wallet_balance(acc)
            if debt > 0:
                mm += debt * self.borrow_mmr
        return mm

    def is_liquidatable(self, acc):
        mm = self.maintenance_margin(acc)
        if mm <= 0.0:
            return False
        eq = self.equity(acc)
        if acc.kind == UNIFIED:
            return eq < self.unified_level * mm
        return eq < mm

    @staticmethod
    def exposure(acc, k, extra_buy, extra_sell):
        long_side = acc.pos[k] + acc.open_buy[k] + extra_buy
        short_side = acc.pos[k] - acc.open_sell[k] - extra_sell
        return max(abs(long_side), abs(short_side))

    def initial_margin(self, acc, k_extra, extra_buy, extra_sell):
        # Exposure at the account's leverage, or at its bracket's lower maximum.
        at_account_leverage = 0.0
        at_bracket_leverage = 0.0
        for k, m in enumerate(self.markets):
            if not m.perp:
                continue
            if k == k_extra:
                lots = self.exposure(acc, k, extra_buy, extra_sell)
            else:
                lots = self.exposure(acc, k, 0, 0)
            notional = lots * m.lot * m.mark
            bracket_leverage = m.max_leverages[m.tier(notional)]
            if bracket_leverage < acc.leverage:
                at_bracket_leverage += notional / bracket_leverage
            else:
                at_account_leverage += notional
        return at_account_leverage / acc.leverage + at_bracket_leverage

    def reduce_only(self, acc):
        if acc.kind != UNIFIED:
            return False
        mm = self.maintenance_margin(acc)
        return mm > 0.0 and self.equity(acc) < self.reduce_only_level * mm

    def free_margin(self, acc, k, extra_buy, extra_sell, spend, gain):
        reserved = acc.reserved_quote
        free = self.equity(acc) + gain - spend - reserved
        free -= self.initial_margin(acc, k, extra_buy, extra_sell)
        if acc.kind == UNIFIED:
            debt = -(self.wallet_balance(acc) - spend - reserved)
            if debt > 0:
                free -= debt * self.borrow_imr
        return free

    def open_loss(self, k, side, lots, limit, kind):
        """Loss against the mark as the order fills: at its limit, or for a market order
        at the levels it would sweep (own resting orders counted as fills)."""
        m = self.markets[k]
        mark = m.mark / m.tick
        value = m.lot * m.tick
        if kind != MARKET:
            return lots * max(0.0, side * (limit - mark)) * value
        left, loss = lots, 0.0
        for level in m.book.levels_best_first(-side):
            if side * (level.price - limit) > 0 or left == 0:
                break
            take = min(left, level.qty)
            loss += take * max(0.0, side * (level.price - mark))
            left -= take
        return loss * value

    def margin_status(self, acc, k, side, lots, limit, kind):
        m = self.markets[k]
        if m.perp:
            extra_buy = lots if side == BUY else 0
            extra_sell = lots if side != BUY else 0
            after = self.exposure(acc, k, extra_buy, extra_sell)
            if after <= self.exposure(acc, k, 0, 0):
                return ACCEPTED
            if after * m.lot * m.mark > m.position_limit:
                return REJECT_POSITION_LIMIT
            if self.reduce_only(acc):
                return REJECT_REDUCE_ONLY
            free = self.free_margin(acc, k, extra_buy, extra_sell, 0.0, 0.0)
            if free < self.open_loss(k, side, lots, limit, kind):
                return REJECT_MARGIN
            return ACCEPTED
        if side != BUY:
            return REJECT_BALANCE if acc.pos[k] - acc.open_sell[k] < lots else ACCEPTED
        if self.reduce_only(acc):
            return REJECT_REDUCE_ONLY
        cost = lots * m.lot * limit * m.tick
        gain = lots * m.lot * m.collateral * m.ratio if acc.kind == UNIFIED else 0.0
        unspendable = 0.0  # a cross account's unrealised profit pays for no coins
        if acc.kind != UNIFIED:
            unspendable = max(0.0, self.equity(acc) - self.wallet_balance(acc))
        if self.free_margin(acc, k, 0, 0, cost, gain) < unspendable:
            return REJECT_MARGIN
        return ACCEPTED

    # -- settlement ------------------------------------------------------------------
    def apply_position(self, a, k, delta, price):
        acc, m = self.accounts[a], self.markets[k]
        old = acc.pos[k]
        new = old + delta
        if m.perp:
            entry = acc.entry[k]
            if old == 0 or (old > 0) == (delta > 0):
                acc.entry[k] = div(abs(old) * entry + abs(delta) * price, abs(new))
            else:
                closed = min(abs(old), abs(delta))
                sign = 1.0 if old > 0 else -1.0
                acc.realised_pnl += sign * closed * m.lot * (price - entry)
                if new == 0:
                    acc.entry[k] = 0.0
                elif (new > 0) != (old > 0):
                    acc.entry[k] = price
            m.open_interest += max(new, 0) - max(old, 0)
        acc.pos[k] = new

    def transfer(self, k, buyer, seller, price, lots):
        notional = price * lots * self.markets[k].lot
        self.accounts[buyer].cash -= notional
        self.accounts[seller].cash += notional
        self.apply_position(buyer, k, lots, price)
        self.apply_position(seller, k, -lots, price)
        return notional

    def charge_fee(self, a, amount):
        acc = self.accounts[a]
        acc.cash -= amount
        acc.fees_paid += amount
        self.fees_collected += amount

    def release_resting(self, k, owner, side, lots, price_ticks):
        acc, m = self.accounts[owner], self.markets[k]
        if side == BUY:
            acc.open_buy[k] -= lots
            if not m.perp:
                acc.reserved_quote -= price_ticks * m.tick * lots * m.lot
        else:
            acc.open_sell[k] -= lots

    def hold_resting(self, k, owner, side, lots, price_ticks):
        acc, m = self.accounts[owner], self.markets[k]
        if side == BUY:
            acc.open_buy[k] += lots
            if not m.perp:
                acc.reserved_quote += price_ticks * m.tick * lots * m.lot
        else:
            acc.open_sell[k] += lots

    def settle(self, k, events, taker, side, liquidation):
        m = self.markets[k]
        notional = 0.0
        for maker, lots, price_ticks in events:
            if lots < 0:
                self.release_resting(k, maker, -side, -lots, price_ticks)
                continue
            self.release_resting(k, maker, -side, lots, price_ticks)
            price = price_ticks * m.tick
            if side == BUY:
                value = self.transfer(k, taker, maker, price, lots)
            else:
                value = self.transfer(k, maker, taker, price, lots)
            self.charge_fee(maker, m.maker_fee * value)
            if not liquidation:
                self.charge_fee(taker, m.taker_fee * value)
            notional += value
            m.last = price
            m.stats[S_VOLUME] += value
            self.fill_log.append(
                [self.step_no, k, maker, taker, price_ticks, lots, side, int(bool(liquidation))]
            )
        return notional

    def cancel_order(self, k, order):
        self.release_resting(k, order.owner, order.side, order.qty, order.price)
        self.markets[k].book.remove(order)

    def cancel_all_in_market(self, k, a):
        acc = self.accounts[a]
        if acc.open_buy[k] == 0 and acc.open_sell[k] == 0:
            return
        for order in self.markets[k].book.orders_of(a):
            self.cancel_order(k, order)

    def cancel_all(self, a):
        for k in range(self.K):
            self.cancel_all_in_market(k, a)

    # -- order entry -----------------------------------------------------------------
    def process(self, row):
        _env, k, a, kind, side, price, lots, ref = (int(x) for x in row)
        m, acc = self.markets[k], self.accounts[a]
        if kind == CANCEL:
            order = m.book.live.get(ref) if ref > 0 else None
            if order is None or order.owner != a:
                return [REJECT_UNKNOWN_ORDER, 0, 0]
            self.cancel_order(k, order)
            return [ACCEPTED, 0, 0]
        if kind == CANCEL_ALL:
            self.cancel_all_in_market(k, a)
            return [ACCEPTED, 0, 0]
        if acc.in_liquidation:
            return [REJECT_IN_LIQUIDATION, 0, 0]
        if self.halted(m):
            return [REJECT_HALTED, 0, 0]
        lo, hi = m.band_ticks()
        if kind == MARKET:
            limit = hi if side == BUY else lo
        else:
            limit = price
            if limit < lo or limit > hi:
                return [REJECT_PRICE_BAND, 0, 0]
        if kind == POST_ONLY:
            best = m.book.best(SELL if side == BUY else BUY)
            would_take = best >= 0 and (best <= limit if side == BUY else best >= limit)
            if would_take:
                return [REJECT_POST_ONLY, 0, 0]
        status = self.margin_status(acc, k, side, lots, limit, kind)
        if status != ACCEPTED:
            return [status, 0, 0]
        events, filled = m.book.match(side, limit, lots, a)
        self.settle(k, events, a, side, False)
        result = [ACCEPTED, 0, filled]
        remaining = lots - filled
        if remaining > 0 and kind in (LIMIT, POST_ONLY):
            if m.book.can_rest(side, limit):
                order = m.book.rest(side, limit, remaining, a, self.seq)
                self.seq += 1
                self.hold_resting(k, a, side, remaining, limit)
                result[1] = order.oid
            else:
                result[0] = REJECT_BOOK_FULL
        return result

    # -- prices ----------------------------------------------------------------------
    @staticmethod
    def book_price(m, bid, ask):
        """The mid; with one side empty, the last trade unless the remaining quote undercuts it."""
        if bid >= 0 and ask >= 0:
            return 0.5 * (bid + ask) * m.tick
        if ask >= 0:
            return min(m.last, ask * m.tick)
        if bid >= 0:
            return max(m.last, bid * m.tick)
        return m.last

    def update_prices(self):
        slot = self.step_no % self.window
        samples = min(self.step_no + 1, self.window)
        for m in self.markets:
            bid = m.book.best(BUY)
            ask = m.book.best(SELL)
            m.ring[slot] = self.book_price(m, bid, ask) - m.index
            total = 0.0
            for x in m.ring:
                total += x
            basis = total / samples
            m.mark = median3(m.index, m.index + basis, m.last)
            if not m.perp:
                w = m.book_weight
                m.collateral = w * m.last + (1.0 - w) * m.index

    def halted(self, m):
        return self.step_no < m.halted_until

    def update_breakers(self):
        """Halt a market whose mark left the band around its reference; the reference is
        re-taken when trading resumes and at each window boundary (after the comparison)."""
        t = self.step_no
        for m in self.markets:
            if m.breaker <= 0.0 or self.halted(m):
                continue
            if t == m.halted_until:
                m.breaker_reference = m.mark
            elif abs(m.mark / m.breaker_reference - 1.0) > m.breaker:
                m.halted_until = t + self.breaker_halt
                m.breaker_reference = m.mark
            elif t % self.breaker_window == 0:
                m.breaker_reference = m.mark

    # -- liquidation -----------------------------------------------------------------
    def bankruptcy_price(self, a, k):
        acc, m = self.accounts[a], self.markets[k]
        lots = acc.pos[k] * m.lot
        others = self.equity(acc) - lots * m.mark
        return max(-others / lots, m.tick)  # no lower than the book's lowest price

    def record_liquidation(self, k, long_side, notional):
        stats = self.markets[k].stats
        stats[S_LIQ_NOTIONAL_LONG if long_side else S_LIQ_NOTIONAL_SHORT] += notional

    def send_ioc(self, a, k, side, lots, limit):
        m = self.markets[k]
        events, filled = m.book.match(side, limit, lots, a)
        notional = self.settle(k, events, a, side, True)
        m.liq_budget -= notional
        return filled, notional

    def clearance_fee(self, a, k, notional):
        acc = self.accounts[a]
        fee = min(self.markets[k].liq_fee * notional, max(self.equity(acc), 0.0))
        if fee > 0.0:
            acc.cash -= fee
            self.accounts[FUND].cash += fee

    def fund_capacity(self, k, side, lots):
        m, fund = self.markets[k], self.accounts[FUND]
        unit = m.lot * m.mark
        limit = max(self.fund_takeover_limit * self.wallet_balance(fund), 0.0)
        held_elsewhere = 0.0
        for j, mj in enumerate(self.markets):
            if mj.perp and j != k:
                held_elsewhere += abs(fund.pos[j]) * mj.lot * mj.mark
        max_abs = max(math.floor((limit - held_elsewhere) / unit), 0)
        held = fund.pos[k] * side
        room = max_abs - held if held >= 0 else -held + max_abs
        return min(max(room, 0), lots)

    def fund_utilisation(self):
        """Net notional the fund holds over what it may hold (1 when it may hold nothing)."""
        limit = self.fund_takeover_limit * self.wallet_balance(self.accounts[FUND])
        held = 0.0
        for k, m in enumerate(self.markets):
            if m.perp:
                held += abs(self.accounts[FUND].pos[k]) * m.lot * m.mark
        return 1.0 if limit <= 0.0 else held / limit

    def close_at_bankruptcy(self, a, k):
        m = self.markets[k]
        p = self.accounts[a].pos[k]
        side = 1 if p > 0 else -1
        lots = abs(p)
        price = self.bankruptcy_price(a, k)
        rest = lots
        while rest > 0 and (taken := self.fund_capacity(k, side, rest)) > 0:
            if side > 0:
                value = self.transfer(k, FUND, a, price, taken)
            else:
                value = self.transfer(k, a, FUND, price, taken)
            m.stats[S_TAKEOVER_NOTIONAL] += value
            rest -= taken
        if rest > 0:
            u, seen = self.fund_utilisation(), self.env_stats[E_FUND_UTILISATION_AT_ADL]
            if math.isnan(seen) or u < seen:
                self.env_stats[E_FUND_UTILISATION_AT_ADL] = u
            if self.adl_formula == ADL_HYPERLIQUID:
                price = m.mark
            self.deleverage(a, k, rest, price)
        self.record_liquidation(k, side > 0, lots * m.lot * price)

    def liquidate_position(self, a, k, partial):
        m = self.markets[k]
        p = self.accounts[a].pos[k]
        if p == 0:
            return DONE
        if self.halted(m):
            return CAPPED  # no liquidation flow into a halted market
        unit = m.lot * m.mark
        lots = abs(p)
        if partial:
            t = m.tier(lots * unit)
            if t > 0:
                keep = math.ceil(m.floors[t] / unit) - 1
                lots = max(lots - max(keep, 0), 1)
        budget = max(math.floor(m.liq_budget / unit), 0) if m.liq_budget < INF else lots
        send = min(lots, budget)
        if send <= 0:
            return CAPPED
        price = self.bankruptcy_price(a, k)
        # Unified accounts trade only inside the band; beyond it they are not bankrupt.
        lo, hi = m.band_ticks()
        banded = self.accounts[a].kind == UNIFIED
        if p > 0:
            limit = math.ceil(price / m.tick - 1e-9)
            bankrupt = not banded or limit >= lo
            filled, notional = self.send_ioc(a, k, SELL, send, limit if bankrupt else lo)
        else:
            limit = math.floor(price / m.tick + 1e-9)
            bankrupt = not banded or limit <= hi
            filled, notional = self.send_ioc(a, k, BUY, send, limit if bankrupt else hi)
        self.record_liquidation(k, p > 0, notional)
        self.clearance_fee(a, k, notional)
        if filled > 0 or (filled < send and bankrupt):  # counted when it trades
            m.stats[S_LIQ_COUNT_LONG if p > 0 else S_LIQ_COUNT_SHORT] += 1.0
        if filled < send:
            if not bankrupt:
                return CAPPED
            self.close_at_bankruptcy(a, k)
            return DONE
        return CAPPED if send < lots else DONE

    def largest_position(self, acc):
        best, best_mm = -1, -1.0
        for k, m in enumerate(self.markets):
            if m.perp and acc.pos[k] != 0:
                mm = m.position_mm(abs(acc.pos[k]) * m.lot * m.mark)
                if mm > best_mm:
                    best, best_mm = k, mm
        return best

    def has_perps(self, acc):
        return any(m.perp and acc.pos[k] != 0 for k, m in enumerate(self.markets))

    def holds_collateral(self, acc):
        return any(not m.perp and acc.pos[k] > 0 for k, m in enumerate(self.markets))

    def sell_collateral(self, a):
        acc = self.accounts[a]
        debt = -self.wallet_balance(acc)
        if debt <= 0.0:
            return
        total = 0.0
        for k, m in enumerate(self.markets):
            if not m.perp and acc.pos[k] > 0:
                total += acc.pos[k] * m.lot * m.collateral
        if total <= 0.0:
            return
        for k, m in enumerate(self.markets):
            held = acc.pos[k]
            if m.perp or held <= 0 or self.halted(m):
                continue
            unit = m.lot * m.collateral
            share = held * unit / total
            lots = min(held, math.ceil(debt * share / unit))
            if m.liq_budget < INF:
                lots = min(lots, max(math.floor(m.liq_budget / unit), 0))
            if lots <= 0:
                continue
            lo, _ = m.band_ticks()
            filled, notional = self.send_ioc(a, k, SELL, lots, lo)
            if filled > 0:
                m.stats[S_LIQ_COUNT_LONG] += 1.0
            self.record_liquidation(k, True, notional)
            self.clearance_fee(a, k, notional)

    def cover_negative_balance(self, a):
        acc = self.accounts[a]
        deficit = -acc.cash
        if deficit <= 0.0:
            return
        paid = min(deficit, max(self.equity(self.accounts[FUND]), 0.0))
        self.accounts[FUND].cash -= paid
        self.fund_payout += paid
        self.socialised_loss += deficit - paid
        acc.cash = 0.0

    def liquidate_cross(self, a):
        acc = self.accounts[a]
        for _ in range(self.K):
            if not self.is_liquidatable(acc):
                break
            k = self.largest_position(acc)
            if k < 0:
                break
            if self.liquidate_position(a, k, True) == CAPPED:
                return
            if not self.is_liquidatable(acc):
                break
            if self.liquidate_position(a, k, False) == CAPPED:
                return
        if not self.has_perps(acc):
            self.cover_negative_balance(a)

    def liquidate_unified(self, a):
        acc = self.accounts[a]
        capped = False
        for k, m in enumerate(self.markets):
            if m.perp and self.liquidate_position(a, k, False) == CAPPED:
                capped = True
        if capped or self.has_perps(acc):
            return
        self.sell_collateral(a)
        if self.wallet_balance(acc) >= 0.0:
            acc.in_liquidation = 0
        elif not self.holds_collateral(acc):
            self.cover_negative_balance(a)
            acc.in_liquidation = 0

    def run_liquidations(self):
        for a in range(1, len(self.accounts)):
            acc = self.accounts[a]
            unified = acc.kind == UNIFIED
            if unified and acc.in_liquidation:
                self.cancel_all(a)
                self.liquidate_unified(a)
            elif self.is_liquidatable(acc):
                self.cancel_all(a)
                acc.in_liquidation = 1
                if unified:
                    self.liquidate_unified(a)
                else:
                    self.liquidate_cross(a)
                    acc.in_liquidation = 1 if self.is_liquidatable(acc) else 0
            else:
                acc.in_liquidation = 0
                if not unified and acc.cash < 0.0 and not self.has_perps(acc):
                    self.cover_negative_balance(a)

    def unwind_fund(self):
        fund = self.accounts[FUND]
        for k, m in enumerate(self.markets):
            p = fund.pos[k]
            if not m.perp or p == 0 or self.halted(m):
                continue
            unit = m.lot * m.mark
            lots = abs(p)
            if m.unwind_budget < INF:
                lots = min(lots, max(math.floor(m.unwind_budget / unit), 0))
            if lots <= 0:
                continue
            lo, hi = m.band_ticks()
            side = SELL if p > 0 else BUY
            events, _ = m.book.match(side, lo if p > 0 else hi, lots, FUND)
            m.unwind_budget -= self.settle(k, events, FUND, side, True)

    # -- auto-deleveraging -----------------------------------------------------------
    def adl_rank(self, b, k):
        acc, m = self.accounts[b], self.markets[k]
        p = acc.pos[k]
        mark, entry = m.mark, acc.entry[k]
        sign = 1.0 if p > 0 else -1.0
        notional = abs(p) * m.lot * mark
        eq = self.equity(acc)
        if self.adl_formula == ADL_BITMEX:
            pnl_pct = div(sign * (mark - entry), entry)
            if eq <= 0.0:
                return INF if pnl_pct > 0 else 0.0
            leverage = notional / eq
            return pnl_pct * leverage if pnl_pct > 0 else div(pnl_pct, leverage)
        if self.adl_formula == ADL_BINANCE:
            wb = self.wallet_balance(acc)
            upnl = sign * abs(p) * m.lot * (mark - entry)
            pnl_pct = max(0.0, upnl) / max(1.0, wb)
            margin_ratio = self.maintenance_margin(acc) / eq if eq > 0.0 else 0.0
            return pnl_pct * margin_ratio
        ratio = div(mark, entry) if p > 0 else entry / mark
        if eq <= 0.0:
            return INF
        return ratio * notional / eq

    def deleverage(self, a, k, lots, price):
        side = 1 if self.accounts[a].pos[k] > 0 else -1
        m = self.markets[k]
        ranks = {}
        for b in range(len(self.accounts)):
            if b not in (a, FUND) and self.accounts[b].pos[k] * side < 0:
                ranks[b] = self.adl_rank(b, k)
        while lots > 0:
            best, best_rank = -1, -INF
            for b in sorted(ranks):
                if ranks[b] > best_rank:
                    best, best_rank = b, ranks[b]
            if best < 0:
                break
            take = min(lots, abs(self.accounts[best].pos[k]))
            if side > 0:
                value = self.transfer(k, best, a, price, take)
            else:
                value = self.transfer(k, a, best, price, take)
            self.cancel_all(best)
            m.stats[S_ADL_COUNT] += 1.0
            m.stats[S_ADL_NOTIONAL] += value
            del ranks[best]
            lots -= take
        return lots

    def refresh_quantiles(self):
        for k, m in enumerate(self.markets):
            if not m.perp:
                continue
            for acc in self.accounts:
                acc.adl_quantile[k] = 0
            for side in (1, -1):
                holders = [
                    b for b in range(1, len(self.accounts)) if self.accounts[b].pos[k] * side > 0
                ]
                if not holders:
                    continue
                ranks = {b: self.adl_rank(b, k) for b in holders}
                # NaNs sort last, as in numpy.
                ordered = sorted(ranks.values(), key=lambda x: (x != x, x if x == x else 0.0))
                n = len(ordered)
                for b in holders:
                    at_most = sum(1 for x in ordered if x <= ranks[b])  # NaN: none
                    self.accounts[b].adl_quantile[k] = max(0, min(4, (5 * at_most - 1) // n))

    # -- statistics ------------------------------------------------------------------
    def depth_within(self, m, side, bound):
        tick_value = m.tick * m.lot
        total = 0.0
        for level in m.book.levels_best_first(side):
            if (side == BUY and level.price < bound) or (side != BUY and level.price > bound):
                break
            total += level.price * tick_value * level.qty
        return total

    def record_stats(self):
        for m in self.markets:
            s, tick = m.stats, m.tick
            bid, ask = m.book.best(BUY), m.book.best(SELL)
            s[S_BEST_BID] = bid * tick if bid >= 0 else NAN
            s[S_BEST_ASK] = ask * tick if ask >= 0 else NAN
            if bid >= 0 and ask >= 0:
                mid = 0.5 * (bid + ask) * tick
                s[S_MID] = mid
                s[S_SPREAD] = (ask - bid) * tick / mid
                reference = mid
            else:
                s[S_MID] = NAN
                s[S_SPREAD] = NAN
                reference = m.last
            s[S_DEPTH_BID] = self.depth_within(m, BUY, math.ceil(reference * 0.99 / tick - 1e-9))
            s[S_DEPTH_ASK] = self.depth_within(m, SELL, math.floor(reference * 1.01 / tick + 1e-9))
            s[S_DEPTH] = s[S_DEPTH_BID] + s[S_DEPTH_ASK]
            s[S_INDEX] = m.index
            s[S_MARK] = m.mark
            s[S_LAST] = m.last
            s[S_OPEN_INTEREST] = m.open_interest * m.lot * m.mark
            s[S_COLLATERAL_PRICE] = m.collateral
        env = self.env_stats
        env[E_INSURANCE_FUND] = self.equity(self.accounts[FUND])
        env[E_FUND_PAYOUT] = self.fund_payout
        env[E_SOCIALISED_LOSS] = self.socialised_loss
        env[E_FEES] = self.fees_collected
        env[E_ACCOUNTS_IN_LIQ] = float(sum(acc.in_liquidation for acc in self.accounts))

    # -- the step --------------------------------------------------------------------
    def step(self, orders=(), index_prices=None):
        """Process ``orders`` (rows of 8 ints) at the new ``index_prices``; returns result rows.

        Raises ``NaiveBookFull`` after the whole step if an order could not rest.
        """
        for k, m in enumerate(self.markets):
            if index_prices is not None:
                m.index = float(index_prices[k])
            m.liq_budget = m.liq_cap
            m.unwind_budget = m.unwind_cap
            for s in range(S_VOLUME, S_ADL_NOTIONAL + 1):
                m.stats[s] = 0.0
        self.env_stats[E_FUND_UTILISATION_AT_ADL] = NAN
        results = [self.process(row) for row in orders]
        self.update_prices()
        self.update_breakers()
        self.run_liquidations()
        self.env_stats[E_FUND_UTILISATION] = self.fund_utilisation()  # before the unwind
        self.unwind_fund()
        if self.step_no % self.adl_refresh == 0:
            self.refresh_quantiles()
        self.record_stats()
        self.step_no += 1
        if any(r[0] == REJECT_BOOK_FULL for r in results):
            raise NaiveBookFull(results)
        return results
