"""Scripted market-maker firms: skewed ladders, widening, withdrawal and return.

Each step a firm first updates its stress (the largest of its signals over
its thresholds, see ``population.config.Makers``), then cancels last step's
quotes and, unless it has withdrawn, quotes a ladder in every market it
makes: around the mark, shifted against its inventory, half-spread widened
with volatility and liquidation flow, sizes scaled by its return ramp.
"""

from __future__ import annotations

import math

from .._jit import inline_kernel, kernel
from ..core.codes import BUY, CANCEL, IOC, PERP, POST_ONLY, SELL
from ..core.margin import equity_and_mm
from ..core.orders import band_ticks
from .orders import push


@inline_kernel
def _inventory_ratio(state, pp, e, a, k):
    return (state.pos[e, a, k] - pp.inventory_base[k]) / pp.inventory_limit[k]


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
        stress = (ps.peak_equity[e, f] - eq) / ps.peak_equity[e, f] / pp.threshold_loss[f]
        if mm > 0.0:
            uni_mmr = eq / mm if eq > 0.0 else 0.0
            stress = max(stress, pp.margin_floor[f] / max(uni_mmr, 1e-9))
        for k in range(n_markets):
            if not pp.quoted[k]:
                continue
            inventory = abs(_inventory_ratio(state, pp, e, a, k))
            vol = math.sqrt(ps.vol_signal[e, k]) / pp.base_volatility[k]
            liq = ps.liq_signal[e, k] / pp.liquidation_reference[k]
            stress = max(stress, inventory / pp.threshold_inventory[f])
            stress = max(stress, vol / pp.threshold_volatility[f])
            stress = max(stress, liq / pp.threshold_liquidations[f])
        ps.stress[e, f] = stress
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


@kernel
def maker_orders(params, state, pp, ps, e):
    """Write each firm's cancels and new quotes into the order buffer."""
    n_markets = params.market_kind.shape[0]
    max_levels = ps.maker_orders.shape[4]
    for f in range(pp.n_firms):
        a = pp.firm_start + f
        for k in range(n_markets):
            for s in range(2):
                for i in range(max_levels):
                    oid = ps.maker_orders[e, f, k, s, i]
                    if oid != 0:
                        push(ps, e, k, a, CANCEL, 0, 0, 0, oid, -1)
                        ps.maker_orders[e, f, k, s, i] = 0
        if ps.away[e, f]:
            _flatten(params, state, pp, ps, e, a)
            continue
        stressed = ps.stress[e, f] >= 1.0
        for k in range(n_markets):
            if not pp.quoted[k]:
                continue
            tick = params.tick_size[k]
            mark = state.mark_price[e, k]
            vol = math.sqrt(ps.vol_signal[e, k]) / pp.base_volatility[k]
            liq = ps.liq_signal[e, k] / pp.liquidation_reference[k]
            widening = 1.0 + pp.widen_volatility * max(vol - 1.0, 0.0)
            widening = min(widening + pp.widen_liquidations * liq, pp.max_widening)
            half = pp.half_spread[k] * widening
            lots = pp.level_lots[k] * ps.ramp[e, f]
            if pp.obliged:
                cap = pp.obligation_half_spread
                if stressed:
                    cap *= pp.obligation_multiplier
                half = min(half, cap)
                lots = max(lots, pp.obligation_lots[k])
            q = _inventory_ratio(state, pp, e, a, k)
            shift = -pp.skew * max(min(q, 1.0), -1.0) * half
            size = max(int(lots), 1)
            for i in range(pp.levels[k]):
                offset = half + i * pp.level_step[k]
                # Past its inventory limit a firm only quotes the side that reduces it.
                if q < 1.0 or pp.obliged:
                    price = math.floor(mark * (1.0 + shift - offset) / tick)
                    if price > 0:
                        push(ps, e, k, a, POST_ONLY, BUY, price, size, 0, (f * n_markets + k) * 2)
                if q > -1.0 or pp.obliged:
                    price = math.ceil(mark * (1.0 + shift + offset) / tick)
                    if params.market_kind[k] == PERP or state.pos[e, a, k] >= size * (i + 1):
                        push(
                            ps,
                            e,
                            k,
                            a,
                            POST_ONLY,
                            SELL,
                            price,
                            size,
                            0,
                            (f * n_markets + k) * 2 + 1,
                        )


@kernel
def record_maker_orders(pp, ps, e):
    """Keep the ids of the quotes that now rest, to cancel them next step."""
    max_levels = ps.maker_orders.shape[4]
    n_markets = ps.maker_orders.shape[2]
    for r in range(ps.n_buffer[e]):
        tag = ps.buffer_tag[e, r]
        oid = ps.buffer_results[e, r, 1]
        if tag < 0 or oid == 0:
            continue
        s = tag % 2
        k = (tag // 2) % n_markets
        f = tag // 2 // n_markets
        for i in range(max_levels):
            if ps.maker_orders[e, f, k, s, i] == 0:
                ps.maker_orders[e, f, k, s, i] = oid
                break
