"""Scripted market-maker firms: skewed ladders, widening, withdrawal and return.

Each step a firm first updates its stress (the largest of its signals over
its thresholds, see ``population.config.Makers``), then cancels last step's
quotes and, unless it has withdrawn, quotes a ladder in every market it
makes: around its fair price (the mark, or the index for a desk that
hedges on the index venues), shifted against its inventory, half-spread widened
with volatility and liquidation flow, sizes scaled by its return ramp.
"""

from __future__ import annotations

import math

from .._jit import inline_kernel, kernel
from ..core.book import find_order
from ..core.codes import BUY, CANCEL, IOC, PERP, POST_ONLY, SELL
from ..core.margin import equity_and_mm
from ..core.orders import band_ticks
from .orders import push

# A firm's stress signals, each over its threshold (``PopState.stress_parts``).
STRESS_SIGNALS = ("loss", "margin", "inventory", "volatility", "liquidations")


@inline_kernel
def _inventory_ratio(state, pp, e, a, k):
    ratio = (state.pos[e, a, k] - pp.inventory_base[k]) / pp.inventory_limit[k]
    if pp.limits_at_mark:
        # A USDT limit: the same coins are less risk once their price has fallen.
        ratio *= state.mark_price[e, k] / pp.index_start[k]
    return ratio


@inline_kernel
def firm_stress(ps, e, f):
    """Firm ``f``'s stress: the largest of its signals over their thresholds."""
    stress = ps.stress_parts[e, f, 0]
    for i in range(1, ps.stress_parts.shape[2]):
        stress = max(stress, ps.stress_parts[e, f, i])
    return stress


@kernel
def update_stress(params, state, pp, ps, e):
    """Recompute each firm's stress and its withdrawn / returning status."""
    n_markets = params.market_kind.shape[0]
    quoting = 0
    for f in range(pp.n_firms):
        a = pp.firm_start + f
        eq, mm = equity_and_mm(params, state, e, a)
        # The peak fades towards current equity: old losses stop frightening.
        peak = ps.peak_equity[e, f]
        ps.peak_equity[e, f] = max(eq, peak - pp.loss_alpha * (peak - eq))
        loss = (ps.peak_equity[e, f] - eq) / ps.peak_equity[e, f] / pp.threshold_loss[f]
        margin = 0.0
        if mm > 0.0:
            uni_mmr = eq / mm if eq > 0.0 else 0.0
            margin = pp.margin_floor[f] / max(uni_mmr, 1e-9)
        inventory = 0.0
        volatility = 0.0
        liquidations = 0.0
        for k in range(n_markets):
            if not pp.quoted[k]:
                continue
            inv = abs(_inventory_ratio(state, pp, e, a, k))
            vol = math.sqrt(ps.vol_signal[e, k]) / pp.base_volatility[k]
            liq = ps.liq_signal[e, k] / pp.liquidation_reference[k]
            inventory = max(inventory, inv / pp.threshold_inventory[f])
            volatility = max(volatility, vol / pp.threshold_volatility[f])
            liquidations = max(liquidations, liq / pp.threshold_liquidations[f])
        # In the order of STRESS_SIGNALS.
        ps.stress_parts[e, f, 0] = loss
        ps.stress_parts[e, f, 1] = margin
        ps.stress_parts[e, f, 2] = inventory
        ps.stress_parts[e, f, 3] = volatility
        ps.stress_parts[e, f, 4] = liquidations
        stress = firm_stress(ps, e, f)
        if pp.obliged:
            ps.away[e, f] = 0  # duties forbid leaving; stress only widens the quotes
            ps.ramp[e, f] = 1.0
        elif stress >= 1.0:
            ps.away[e, f] = 1
            ps.calm[e, f] = 0
            ps.ramp[e, f] = 0.0
        elif ps.away[e, f]:
            ps.calm[e, f] = ps.calm[e, f] + 1 if stress < pp.return_level else 0
            if ps.calm[e, f] >= pp.calm_steps:
                ps.away[e, f] = 0
        if not ps.away[e, f]:
            ps.ramp[e, f] = min(1.0, ps.ramp[e, f] + 1.0 / pp.ramp_steps)
            quoting += 1
    ps.quoting_share[e] = quoting / pp.n_firms if pp.n_firms > 0 else 0.0


@inline_kernel
def _flatten(params, state, pp, ps, e, a):
    """A withdrawn firm sheds excess inventory with IOC orders inside the price band."""
    for k in range(params.market_kind.shape[0]):
        if not pp.quoted[k]:
            continue
        excess = state.pos[e, a, k] - pp.inventory_base[k]
        lots = int(abs(excess) * pp.flatten_rate)
        if lots <= 0:
            continue
        lo, hi = band_ticks(params, state, e, k)
        if excess > 0:
            push(ps, e, k, a, IOC, SELL, lo, lots, 0, -1)
        else:
            push(ps, e, k, a, IOC, BUY, hi, lots, 0, -1)


@inline_kernel
def _quote_targets(params, state, pp, ps, e, f, a):
    """Target price of every ladder slot of firm ``f`` (0 = no quote) and its size per market."""
    n_markets = params.market_kind.shape[0]
    max_levels = ps.maker_orders.shape[4]
    stressed = firm_stress(ps, e, f) >= 1.0
    for k in range(n_markets):
        if not pp.quoted[k]:
            continue
        tick = params.tick_size[k]
        mark = state.mark_price[e, k]
        fair = mark + pp.fair_index_weight * (state.index_price[e, k] - mark)
        vol = math.sqrt(ps.vol_signal[e, k]) / pp.base_volatility[k]
        liq = ps.liq_signal[e, k] / pp.liquidation_reference[k]
        widening = 1.0 + pp.widen_volatility * max(vol - 1.0, 0.0)
        widening = min(widening + pp.widen_liquidations * liq, pp.max_widening)
        half = pp.half_spread[k] * widening
        # Lots per USDT of quote: fixed at the start price, or at the mark for a
        # desk quoting notional (more coins per level once the price has fallen),
        # in steps of 1/16 octave so mark noise does not requeue every quote.
        scale = 1.0
        if pp.quotes_at_mark:
            scale = 2.0 ** (round(16.0 * math.log2(pp.index_start[k] / mark)) / 16.0)
        lots = pp.level_lots[k] * scale * ps.ramp[e, f]
        if pp.obliged:
            cap = pp.obligation_half_spread
            if stressed:
                cap *= pp.obligation_multiplier
            half = min(half, cap)
            lots = max(lots, pp.obligation_lots[k] * scale)
        q = _inventory_ratio(state, pp, e, a, k)
        shift = -pp.skew * max(min(q, 1.0), -1.0) * half
        size = max(int(lots), 1)
        ps.maker_size[e, f, k] = size
        for i in range(max_levels):
            bid = 0
            ask = 0
            if i < pp.levels[k]:
                offset = half + i * pp.level_step[k]
                # Past its inventory limit a firm only quotes the side that reduces it.
                if q < 1.0 or pp.obliged:
                    bid = max(math.floor(fair * (1.0 + shift - offset) / tick), 0)
                if q > -1.0 or pp.obliged:
                    ask = math.ceil(fair * (1.0 + shift + offset) / tick)
                    if params.market_kind[k] != PERP and state.pos[e, a, k] < size * (i + 1):
                        ask = 0
            ps.maker_target[e, f, k, 0, i] = bid
            ps.maker_target[e, f, k, 1, i] = ask


@kernel
def maker_orders(params, state, pp, ps, e):
    """Write each firm's cancels and new quotes into the order buffer.

    A resting quote stays, keeping its place in the queue, while it is
    untouched, its size is still the firm's size and its price is within
    ``requote`` of the target; any other quote is cancelled and replaced.
    A firm's cancels go before its new quotes so it never meets itself.
    """
    n_markets = params.market_kind.shape[0]
    max_levels = ps.maker_orders.shape[4]
    for f in range(pp.n_firms):
        a = pp.firm_start + f
        away = ps.away[e, f]
        if not away:
            _quote_targets(params, state, pp, ps, e, f, a)
        for k in range(n_markets):
            if not pp.quoted[k]:
                continue
            tolerance = math.floor(state.mark_price[e, k] * pp.requote / params.tick_size[k])
            size = ps.maker_size[e, f, k]
            for s in range(2):
                for i in range(max_levels):
                    oid = ps.maker_orders[e, f, k, s, i]
                    if oid == 0:
                        continue
                    o = find_order(state, e, k, oid)
                    target = 0 if away else ps.maker_target[e, f, k, s, i]
                    keep = (
                        o >= 0
                        and target > 0
                        and state.order_qty[e, k, o] == size
                        and abs(state.order_price[e, k, o] - target) <= tolerance
                    )
                    if not keep:
                        if o >= 0:
                            push(ps, e, k, a, CANCEL, 0, 0, 0, oid, -1)
                        ps.maker_orders[e, f, k, s, i] = 0
        if away:
            _flatten(params, state, pp, ps, e, a)
            continue
        for k in range(n_markets):
            if not pp.quoted[k]:
                continue
            size = ps.maker_size[e, f, k]
            for s in range(2):
                side = BUY if s == 0 else SELL
                for i in range(max_levels):
                    price = ps.maker_target[e, f, k, s, i]
                    if price > 0 and ps.maker_orders[e, f, k, s, i] == 0:
                        tag = ((f * n_markets + k) * 2 + s) * max_levels + i
                        push(ps, e, k, a, POST_ONLY, side, price, size, 0, tag)


@kernel
def record_maker_orders(pp, ps, e):
    """Keep the ids of the quotes that now rest, in their ladder slots."""
    max_levels = ps.maker_orders.shape[4]
    n_markets = ps.maker_orders.shape[2]
    for r in range(ps.n_buffer[e]):
        tag = ps.buffer_tag[e, r]
        oid = ps.buffer_results[e, r, 1]
        if tag < 0 or oid == 0:
            continue
        i = tag % max_levels
        rest = tag // max_levels
        s = rest % 2
        k = (rest // 2) % n_markets
        f = rest // 2 // n_markets
        ps.maker_orders[e, f, k, s, i] = oid
