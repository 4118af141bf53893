"""A slow, obviously correct pure-Python twin of the population's step.

It decides what the index, the maker firms, the background traders, the
leveraged traders and the loopers do in a step, from the same state arrays
the kernels read, and hands the orders to the jitted exchange (whose own twin
is ``tests/naive.py``; the book, the price band and accounts' equity and
margin are read through it too).
Python ints and floats throughout; the random streams are SplitMix64 on
Python ints. ``tests/test_population_vs_naive.py`` steps this twin and the
fused kernel side by side and compares every array after every step.
"""

from __future__ import annotations

import math

import numpy as np

from mmgym.core.book import best_price, find_order
from mmgym.core.codes import (
    ASK,
    BID,
    BUY,
    CANCEL,
    CANCEL_ALL,
    IOC,
    LIMIT,
    MARKET,
    O_ACCOUNT,
    O_ENV,
    O_KIND,
    O_MARKET,
    O_PRICE,
    O_QTY,
    O_REF,
    O_SIDE,
    PERP,
    POST_ONLY,
    R_STATUS,
    REJECT_BOOK_FULL,
    S_LIQ_NOTIONAL_LONG,
    S_LIQ_NOTIONAL_SHORT,
    SELL,
)
from mmgym.core.margin import equity, equity_and_mm
from mmgym.core.orders import band_ticks, process_order
from mmgym.core.step import begin_step, end_step

MASK64 = (1 << 64) - 1
MAX_ARRIVALS = 64
TURNOVERS_PER_STEP = 32
REOPEN_MARGIN_USE = 0.9


# Random streams: SplitMix64, one counter per env.


def uniform(ps, e):
    z = (int(ps.streams[e]) + 0x9E3779B97F4A7C15) & MASK64
    ps.streams[e] = np.uint64(z)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return (z >> 11) / 2.0**53


def normal(ps, e):
    u1 = 1.0 - uniform(ps, e)
    u2 = uniform(ps, e)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def exponential(ps, e):
    return -math.log(1.0 - uniform(ps, e))


def pareto(ps, e, alpha):
    return (1.0 - uniform(ps, e)) ** (-1.0 / alpha)


def poisson(ps, e, lam):
    limit = math.exp(-lam)
    count = 0
    product = uniform(ps, e)
    while product > limit:
        count += 1
        product *= uniform(ps, e)
    return count


# Writing orders.


def push(ps, e, k, a, kind, side, price, lots, ref=0, tag=-1):
    n = int(ps.n_buffer[e])
    row = ps.buffer[e, n]
    row[O_ENV], row[O_MARKET], row[O_ACCOUNT], row[O_KIND] = e, k, a, kind
    row[O_SIDE], row[O_PRICE], row[O_QTY], row[O_REF] = side, price, lots, ref
    ps.buffer_tag[e, n] = tag
    ps.n_buffer[e] = n + 1


# The exogenous index.


def advance_index(pp, ps, e, t):
    n = ps.log_index.shape[1]
    common = 0.0
    for k in range(n):
        h = (1.0 - pp.index_reversion[k]) * ps.vol_state[e, k]
        h += pp.index_vol_of_vol[k] * normal(ps, e)
        ps.vol_state[e, k] = h
        r = pp.index_volatility[k] * math.exp(h) * normal(ps, e)
        if k == 0:
            common = r
        else:
            r += pp.index_beta[k] * common
        ps.log_index[e, k] += r
    for s in range(len(pp.shock_market)):
        k, start = int(pp.shock_market[s]), int(pp.shock_start[s])
        duration, rebound_duration = int(pp.shock_duration[s]), int(pp.shock_rebound_duration[s])
        if start <= t < start + duration:
            ps.shock_log[e, k] += pp.shock_size[s] / duration
        elif start + duration <= t < start + duration + rebound_duration:
            ps.shock_log[e, k] -= pp.shock_size[s] * pp.shock_rebound[s] / rebound_duration
    return np.array([math.exp(ps.log_index[e, k] + ps.shock_log[e, k]) for k in range(n)])


# Maker firms.


def inventory_ratio(state, pp, e, a, k):
    ratio = (int(state.pos[e, a, k]) - pp.inventory_base[k]) / pp.inventory_limit[k]
    if pp.limits_at_mark:
        ratio *= state.mark_price[e, k] / pp.index_start[k]
    return ratio


def update_stress(params, state, pp, ps, e):
    quoting = 0
    for f in range(pp.n_firms):
        a = pp.firm_start + f
        eq, mm = equity_and_mm(params, state, e, a)
        peak = float(ps.peak_equity[e, f])
        peak = max(eq, peak - pp.loss_alpha * (peak - eq))
        ps.peak_equity[e, f] = peak
        signals = [(peak - eq) / peak / pp.threshold_loss[f], 0.0, 0.0, 0.0, 0.0]
        if mm > 0.0:
            uni_mmr = eq / mm if eq > 0.0 else 0.0
            signals[1] = pp.margin_floor[f] / max(uni_mmr, 1e-9)
        for k in range(len(pp.quoted)):
            if pp.quoted[k]:
                inv = abs(inventory_ratio(state, pp, e, a, k))
                vol = math.sqrt(ps.vol_signal[e, k]) / pp.base_volatility[k]
                liq = ps.liq_signal[e, k] / pp.liquidation_reference[k]
                signals[2] = max(signals[2], inv / pp.threshold_inventory[f])
                signals[3] = max(signals[3], vol / pp.threshold_volatility[f])
                signals[4] = max(signals[4], liq / pp.threshold_liquidations[f])
        ps.stress_parts[e, f] = signals
        stress = max(signals)
        if pp.obliged:
            ps.away[e, f], ps.ramp[e, f] = 0, 1.0
        elif stress >= 1.0:
            ps.away[e, f], ps.calm[e, f], ps.ramp[e, f] = 1, 0, 0.0
        elif ps.away[e, f]:
            ps.calm[e, f] = ps.calm[e, f] + 1 if stress < pp.return_level else 0
            if ps.calm[e, f] >= pp.calm_steps:
                ps.away[e, f] = 0
        if not ps.away[e, f]:
            ps.ramp[e, f] = min(1.0, ps.ramp[e, f] + 1.0 / pp.ramp_steps)
            quoting += 1
    ps.quoting_share[e] = quoting / pp.n_firms if pp.n_firms else 0.0


def quote_targets(params, state, pp, ps, e, f, a):
    """Each ladder slot's target price (0 = none) and the quote size, per market."""
    stressed = max(ps.stress_parts[e, f]) >= 1.0
    for k in range(len(pp.quoted)):
        if not pp.quoted[k]:
            continue
        tick, mark = float(params.tick_size[k]), float(state.mark_price[e, k])
        fair = mark + pp.fair_index_weight * (state.index_price[e, k] - mark)
        vol = math.sqrt(ps.vol_signal[e, k]) / pp.base_volatility[k]
        liq = ps.liq_signal[e, k] / pp.liquidation_reference[k]
        widening = 1.0 + pp.widen_volatility * max(vol - 1.0, 0.0)
        widening = min(widening + pp.widen_liquidations * liq, pp.max_widening)
        half = pp.half_spread[k] * widening
        scale = 1.0
        if pp.quotes_at_mark:
            scale = 2.0 ** (round(16.0 * math.log2(pp.index_start[k] / mark)) / 16.0)
        lots = pp.level_lots[k] * scale * ps.ramp[e, f]
        if pp.obliged:
            cap = pp.obligation_half_spread * (pp.obligation_multiplier if stressed else 1.0)
            half = min(half, cap)
            lots = max(lots, pp.obligation_lots[k] * scale)
        q = inventory_ratio(state, pp, e, a, k)
        shift = -pp.skew * max(min(q, 1.0), -1.0) * half
        size = max(int(lots), 1)
        ps.maker_size[e, f, k] = size
        for i in range(ps.maker_orders.shape[4]):
            bid = ask = 0
            if i < pp.levels[k]:
                offset = half + i * pp.level_step[k]
                if q < 1.0 or pp.obliged:
                    bid = max(math.floor(fair * (1.0 + shift - offset) / tick), 0)
                if q > -1.0 or pp.obliged:
                    ask = math.ceil(fair * (1.0 + shift + offset) / tick)
                    spot = params.market_kind[k] != PERP
                    if spot and state.pos[e, a, k] < size * (i + 1):
                        ask = 0  # a spot ladder sells only coins it holds
            ps.maker_target[e, f, k, 0, i] = bid
            ps.maker_target[e, f, k, 1, i] = ask


def maker_orders(params, state, pp, ps, e):
    n_markets, levels = len(pp.quoted), ps.maker_orders.shape[4]
    for f in range(pp.n_firms):
        a = pp.firm_start + f
        away = bool(ps.away[e, f])
        if not away:
            quote_targets(params, state, pp, ps, e, f, a)
        for k in range(n_markets):
            if not pp.quoted[k]:
                continue
            tolerance = math.floor(state.mark_price[e, k] * pp.requote / params.tick_size[k])
            size = int(ps.maker_size[e, f, k])
            for s in range(2):
                for i in range(levels):
                    oid = int(ps.maker_orders[e, f, k, s, i])
                    if oid == 0:
                        continue
                    o = find_order(state, e, k, oid)
                    target = 0 if away else int(ps.maker_target[e, f, k, s, i])
                    keep = (
                        o >= 0
                        and target > 0
                        and int(state.order_qty[e, k, o]) == size
                        and abs(int(state.order_price[e, k, o]) - target) <= tolerance
                    )
                    if not keep:
                        if o >= 0:
                            push(ps, e, k, a, CANCEL, 0, 0, 0, oid)
                        ps.maker_orders[e, f, k, s, i] = 0
        if away:
            for k in range(n_markets):  # shed inventory inside the band
                if not pp.quoted[k]:
                    continue
                excess = int(state.pos[e, a, k]) - pp.inventory_base[k]
                lots = int(abs(excess) * pp.flatten_rate)
                if lots > 0:
                    lo, hi = band_ticks(params, state, e, k)
                    if excess > 0:
                        push(ps, e, k, a, IOC, SELL, lo, lots)
                    else:
                        push(ps, e, k, a, IOC, BUY, hi, lots)
            continue
        for k in range(n_markets):
            if not pp.quoted[k]:
                continue
            for s, side in ((0, BUY), (1, SELL)):
                for i in range(levels):
                    price = int(ps.maker_target[e, f, k, s, i])
                    if price > 0 and ps.maker_orders[e, f, k, s, i] == 0:
                        tag = ((f * n_markets + k) * 2 + s) * levels + i
                        size = int(ps.maker_size[e, f, k])
                        push(ps, e, k, a, POST_ONLY, side, price, size, 0, tag)


def record_maker_orders(ps, e):
    # A quote's tag is the flat index of its (firm, market, side, level) slot.
    slots = ps.maker_orders[e]
    for r in range(int(ps.n_buffer[e])):
        tag, oid = int(ps.buffer_tag[e, r]), int(ps.buffer_results[e, r, 1])
        if tag >= 0 and oid != 0:
            slots[np.unravel_index(tag, slots.shape)] = oid


# Background traders.


def flow_account(pp, k, role):
    return pp.flow_start + 4 * k + role


def heavy_size(ps, e, base, alpha):
    return max(1, int(base * min(pareto(ps, e, alpha), 100.0)))


def gap_trade(params, state, ps, e, k, a, gap, threshold, lots, capacity, held, reference):
    tick, pos = float(params.tick_size[k]), int(state.pos[e, a, k])
    net = pos - held  # trade since the start, held coins not counted
    lo, hi = band_ticks(params, state, e, k)
    if gap < -threshold and net < capacity:
        limit = min(math.floor(reference * (1.0 - threshold) / tick), hi)
        size = min(int(lots * min(-gap / threshold, 5.0)) + 1, int(capacity - net))
        if size > 0:
            push(ps, e, k, a, IOC, BUY, limit, size)
    elif gap > threshold and net > -capacity:
        room = capacity + net if params.market_kind[k] == PERP else min(capacity + net, pos)
        limit = max(math.ceil(reference * (1.0 + threshold) / tick), lo)
        size = min(int(lots * min(gap / threshold, 5.0)) + 1, int(room))
        if size > 0:
            push(ps, e, k, a, IOC, SELL, limit, size)


def background_flow(params, state, pp, ps, e, t):
    for k in range(len(params.market_kind)):
        tick, mark = float(params.tick_size[k]), float(state.mark_price[e, k])
        bid, ask = best_price(state, e, k, BID), best_price(state, e, k, ASK)
        noise = flow_account(pp, k, 0)
        for _ in range(min(poisson(ps, e, pp.noise_rate[k]), MAX_ARRIVALS)):
            side = BUY if uniform(ps, e) < 0.5 else SELL
            lots = heavy_size(ps, e, pp.noise_lots[k], pp.size_alpha[k])
            push(ps, e, k, noise, MARKET, side, 0, lots)
        if pp.limit_rate[k] > 0 and t % pp.limit_refresh[k] == 0:
            push(ps, e, k, noise, CANCEL_ALL, 0, 0, 0)
        excess_vol = math.sqrt(ps.mark_vol[e, k]) / pp.base_volatility[k] - 1.0
        offset = pp.limit_offset[k] * (1.0 + pp.limit_vol_scaling[k] * max(excess_vol, 0.0))
        for _ in range(min(poisson(ps, e, pp.limit_rate[k]), MAX_ARRIVALS)):
            side = BUY if uniform(ps, e) < 0.5 else SELL
            distance = offset * (0.2 + exponential(ps, e))
            if side == BUY:
                price = math.floor(mark * (1.0 - distance) / tick)
            else:
                price = math.ceil(mark * (1.0 + distance) / tick)
            lots = heavy_size(ps, e, pp.limit_lots[k], pp.size_alpha[k])
            push(ps, e, k, noise, LIMIT, side, price, lots)
        trend = ps.trend[e, k]
        if abs(trend) > pp.momentum_gap[k] and uniform(ps, e) < pp.momentum_rate[k]:
            lots = heavy_size(ps, e, pp.momentum_lots[k], pp.size_alpha[k])
            push(ps, e, k, flow_account(pp, k, 2), MARKET, BUY if trend > 0 else SELL, 0, lots)
        if bid < 0 and ask < 0:
            continue
        index = float(state.index_price[e, k])
        gap = 0.0
        if ask >= 0 and ask * tick < index:
            gap = ask * tick / index - 1.0
        elif bid >= 0 and bid * tick > index:
            gap = bid * tick / index - 1.0
        if pp.anchor_lots[k] > 0:
            gap_trade(
                params, state, ps, e, k, flow_account(pp, k, 1), gap,
                pp.anchor_gap[k], pp.anchor_lots[k], pp.anchor_capacity[k],
                pp.flow_holdings[k], index,
            )  # fmt: skip
        if pp.arb_lots[k] > 0:
            blocked = 0 <= pp.arbitrage_blocked_from <= t
            capacity = pp.blocked_capacity[k] if blocked else pp.arb_capacity[k]
            gap_trade(
                params, state, ps, e, k, flow_account(pp, k, 3), gap,
                pp.arb_gap[k], pp.arb_lots[k], capacity, pp.flow_holdings[k], index,
            )  # fmt: skip


# Leveraged traders and loopers.


def turnover_order(params, state, pp, ps, e, k, a, side, lots):
    if pp.turnover_slippage == math.inf:
        push(ps, e, k, a, MARKET, side, 0, lots)
        return
    lo, hi = band_ticks(params, state, e, k)
    mark_ticks = state.mark_price[e, k] / params.tick_size[k]
    if side == BUY:
        limit = min(math.ceil(mark_ticks * (1.0 + pp.turnover_slippage)), hi)
    else:
        limit = max(math.floor(mark_ticks * (1.0 - pp.turnover_slippage)), lo)
    push(ps, e, k, a, IOC, side, limit, lots)


def turnover_orders(params, state, pp, ps, e):
    for i in ps.rearm_list[e, : ps.n_rearm[e]].tolist():
        a, k = pp.lev_start + i, int(ps.lev_market[e, i])
        p = int(state.pos[e, a, k])
        if p != 0 and not state.in_liquidation[e, a]:
            direction = 1.0 if p > 0 else -1.0
            ps.stop_price[e, i] = state.entry[e, a, k] * (1.0 - direction * ps.stop_gap[e, i])
            ps.stop_list[e, ps.n_stops[e]] = i
            ps.n_stops[e] += 1
    ps.n_rearm[e] = 0
    if pp.turnover_rate == 0.0 or pp.n_lev == 0:
        return
    for _ in range(min(poisson(ps, e, pp.n_lev * pp.turnover_rate), TURNOVERS_PER_STEP)):
        i = min(int(uniform(ps, e) * pp.n_lev), pp.n_lev - 1)
        side = BUY if uniform(ps, e) < pp.long_share else SELL
        a = pp.lev_start + i
        if ps.hedged[e, i] or state.in_liquidation[e, a] or ps.turned_at[e, i] == state.step[e]:
            continue
        k = int(ps.lev_market[e, i])
        p = int(state.pos[e, a, k])
        if p != 0:
            turnover_order(params, state, pp, ps, e, k, a, SELL if p > 0 else BUY, abs(p))
        lots = reopen_lots(params, state, e, a, k)
        if lots > 0:
            turnover_order(params, state, pp, ps, e, k, a, side, lots)
            if ps.stop_gap[e, i] > 0.0:
                ps.rearm_list[e, ps.n_rearm[e]] = i
                ps.n_rearm[e] += 1
        ps.stop_price[e, i] = 0.0
        ps.turned_at[e, i] = state.step[e]


def reopen_lots(params, state, e, a, k):
    """The largest position whose initial margin, at the leverage its bracket allows, fits
    in 90% of equity, within the position limit."""
    margin = REOPEN_MARGIN_USE * equity(params, state, e, a)
    unit = state.mark_price[e, k] * params.lot_size[k]
    floors = [f for f in params.bracket_floor[k] if f < math.inf]
    best = 0
    for t, floor in enumerate(floors):
        leverage = min(state.leverage[e, a], params.bracket_max_leverage[k, t])
        lots = int(margin * leverage / unit)
        if t + 1 < len(floors):
            lots = min(lots, math.ceil(floors[t + 1] / unit) - 1)
        if lots * unit >= floor:
            best = max(best, lots)
    limit = params.position_limit[k]
    if limit < math.inf:
        best = min(best, int(limit / unit))
        while best > 0 and best * params.lot_size[k] * state.mark_price[e, k] > limit:
            best -= 1
    return best


def stop_orders(state, pp, ps, e):
    armed = []
    for i in ps.stop_list[e, : ps.n_stops[e]].tolist():
        a, k = pp.lev_start + i, int(ps.lev_market[e, i])
        p, stop, mark = int(state.pos[e, a, k]), float(ps.stop_price[e, i]), state.mark_price[e, k]
        if p == 0 or stop == 0.0:
            ps.stop_price[e, i] = 0.0
        elif (p > 0 and mark <= stop) or (p < 0 and mark >= stop):
            push(ps, e, k, a, MARKET, SELL if p > 0 else BUY, 0, abs(p))
            ps.stop_price[e, i] = 0.0
        else:
            armed.append(i)
    ps.stop_list[e, : len(armed)] = armed
    ps.n_stops[e] = len(armed)


def looper_orders(state, pp, ps, e):
    if pp.n_loop == 0 or state.index_price[e, 0] > pp.index_start[0] * (1.0 - pp.unwind_trigger):
        return
    k = pp.loop_market
    for a in range(pp.loop_start, pp.loop_start + pp.n_loop):
        held = int(state.pos[e, a, k]) - int(state.open_sell[e, a, k])
        if held > 0 and state.cash[e, a] < 0.0:
            push(ps, e, k, a, MARKET, SELL, 0, max(int(held * pp.unwind_rate), 1))


# Signals and the whole step.


def update_signals(params, state, pp, ps, e):
    alpha = pp.volatility_alpha
    for k in range(len(params.market_kind)):
        index, mark = float(state.index_price[e, k]), float(state.mark_price[e, k])
        r = math.log(index / ps.prev_index[e, k])
        ps.prev_index[e, k] = index
        ps.vol_signal[e, k] += alpha * (r * r - ps.vol_signal[e, k])
        r = math.log(mark / ps.prev_mark[e, k])
        ps.prev_mark[e, k] = mark
        ps.trend[e, k] += alpha * (r - ps.trend[e, k])
        ps.mark_vol[e, k] += alpha * (r * r - ps.mark_vol[e, k])
        stats = state.market_stats[e, k]
        liq = stats[S_LIQ_NOTIONAL_LONG] + stats[S_LIQ_NOTIONAL_SHORT]
        ps.liq_signal[e, k] += alpha * (liq - ps.liq_signal[e, k])


def population_step(params, state, pp, ps, e=0, external=None, external_results=None):
    """One step of env ``e``: the population's decisions here, each order
    processed and the step ended by the jitted exchange. ``external[e]`` rows
    (an agent's orders; rows of other envs skipped) go in first, as in the
    fused step."""
    t = int(state.step[e])
    index = advance_index(pp, ps, e, t)
    begin_step(params, state, e, index)
    if external is not None:
        for r in range(external.shape[1]):
            if external[e, r, O_ENV] == e:
                apply_row(params, state, ps, e, external[e], r, external_results[e])
    update_stress(params, state, pp, ps, e)
    ps.n_buffer[e] = 0
    maker_orders(params, state, pp, ps, e)
    background_flow(params, state, pp, ps, e, t)
    turnover_orders(params, state, pp, ps, e)
    stop_orders(state, pp, ps, e)
    looper_orders(state, pp, ps, e)
    for r in range(int(ps.n_buffer[e])):
        apply_row(params, state, ps, e, ps.buffer[e], r, ps.buffer_results[e])
    record_maker_orders(ps, e)
    end_step(params, state, e)
    update_signals(params, state, pp, ps, e)


def apply_row(params, state, ps, e, rows, r, results):
    """The exchange processes one order; a full book is counted."""
    process_order(params, state, rows, r, results)
    ps.n_orders[e] += 1
    if results[r, R_STATUS] == REJECT_BOOK_FULL:
        ps.book_full[e, rows[r, O_MARKET]] += 1
