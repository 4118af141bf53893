"""Equity, tiered maintenance margin, initial margin and the liquidation trigger.

Formulas follow MECHANICS.md sections 1, 2 and 6. PnL is always evaluated at
the mark price. Unified accounts add their spot holdings at
``min(x * P * ratio, x * P)`` and carry a maintenance charge on USDT debt.
"""

from __future__ import annotations

from .._jit import inline_kernel, kernel
from .codes import PERP, UNIFIED


@inline_kernel
def tier(params, k, notional):
    """Index of the bracket of market ``k`` containing ``notional``.

    Floors ascend (padding tiers have infinite floors), so the index is the
    number of higher floors reached: counted without branches, which the
    random sizes met in a margin scan would mispredict.
    """
    t = 0
    floors = params.bracket_floor[k]
    for j in range(1, floors.shape[0]):
        t += notional >= floors[j]
    return t


@inline_kernel
def position_mm(params, k, notional):
    """Maintenance margin of a position of ``notional`` USDT: notional * MMR - cum."""
    t = tier(params, k, notional)
    return notional * params.bracket_mmr[k, t] - params.bracket_cum[k, t]


@inline_kernel
def collateral_value(params, state, e, a):
    """Haircut value of a unified account's spot holdings (0 for cross accounts)."""
    if state.account_kind[e, a] != UNIFIED:
        return 0.0
    total = 0.0
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] != PERP and state.pos[e, a, k] != 0:
            value = state.pos[e, a, k] * params.lot_size[k] * state.collateral_price[e, k]
            total += value * params.collateral_ratio[k] if value > 0 else value
    return total


@inline_kernel
def wallet_balance(params, state, e, a):
    """The venue's wallet balance: cash plus the cost of open perp positions."""
    w = state.cash[e, a]
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] == PERP:
            w += state.pos[e, a, k] * params.lot_size[k] * state.entry[e, a, k]
    return w


@inline_kernel
def equity(params, state, e, a):
    """Margin balance: wallet balance + uPnL at mark (+ haircut collateral if unified)."""
    eq = state.cash[e, a]
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] == PERP:
            eq += state.pos[e, a, k] * params.lot_size[k] * state.mark_price[e, k]
    return eq + collateral_value(params, state, e, a)


@inline_kernel
def equity_and_mm(params, state, e, a):
    """Equity and total maintenance margin in one pass over the markets.

    Unified accounts add ``borrow_mmr`` on USDT debt (a negative wallet balance).
    """
    unified = state.account_kind[e, a] == UNIFIED
    eq = state.cash[e, a]
    wallet = state.cash[e, a]
    collateral = 0.0  # added after the perps, as ``equity`` adds it
    mm = 0.0
    for k in range(params.market_kind.shape[0]):
        p = state.pos[e, a, k]
        if p == 0:
            continue
        lots = p * params.lot_size[k]
        if params.market_kind[k] == PERP:
            eq += lots * state.mark_price[e, k]
            wallet += lots * state.entry[e, a, k]
            mm += position_mm(params, k, abs(lots) * state.mark_price[e, k])
        elif unified:
            value = lots * state.collateral_price[e, k]
            collateral += value * params.collateral_ratio[k] if value > 0 else value
    if unified and wallet < 0.0:
        mm -= wallet * params.borrow_mmr
    return eq + collateral, mm


@inline_kernel
def maintenance_margin(params, state, e, a):
    """Total maintenance margin (see ``equity_and_mm``)."""
    return equity_and_mm(params, state, e, a)[1]


@inline_kernel
def is_liquidatable(params, state, e, a):
    """Cross: equity < MM. Unified: uniMMR = equity / MM below the liquidation level."""
    eq, mm = equity_and_mm(params, state, e, a)
    if mm <= 0.0:
        return False
    if state.account_kind[e, a] == UNIFIED:
        return eq < params.unified_liquidation_level * mm
    return eq < mm


@inline_kernel
def liquidation_check(params, state, e, a):
    """``is_liquidatable`` and whether the account holds any perp, for the per-step scan.

    Written without data-dependent branches: the scan meets a random mix of
    flat, long and short, cross and unified accounts, and mispredicted branches
    were most of its cost. Empty positions add exact zeros, so the verdict is
    the same as ``is_liquidatable``'s.
    """
    unified = state.account_kind[e, a] == UNIFIED
    eq = state.cash[e, a]
    wallet = state.cash[e, a]
    collateral = 0.0  # added after the perps, as ``equity`` adds it
    mm = 0.0
    perps = False
    for k in range(params.market_kind.shape[0]):
        p = state.pos[e, a, k]
        lots = p * params.lot_size[k]
        if params.market_kind[k] == PERP:
            perps |= p != 0
            eq += lots * state.mark_price[e, k]
            wallet += lots * state.entry[e, a, k]
            mm += position_mm(params, k, abs(lots) * state.mark_price[e, k])
        else:
            value = lots * state.collateral_price[e, k]
            counted = value * params.collateral_ratio[k] if value > 0 else value
            collateral += counted if unified else 0.0
    eq += collateral
    mm -= wallet * params.borrow_mmr if unified & (wallet < 0.0) else 0.0
    level = params.unified_liquidation_level if unified else 1.0
    return (mm > 0.0) & (eq < level * mm), perps


@inline_kernel
def exposure(state, e, a, k, extra_buy, extra_sell):
    """Worst-case |position| in lots if all resting (plus extra) orders on one side fill."""
    long_side = state.pos[e, a, k] + state.open_buy[e, a, k] + extra_buy
    short_side = state.pos[e, a, k] - state.open_sell[e, a, k] - extra_sell
    return max(abs(long_side), abs(short_side))


@inline_kernel
def initial_margin(params, state, e, a, k_extra, extra_buy, extra_sell):
    """Initial margin of perp exposure incl. resting orders and an extra order in ``k_extra``.

    Exposure is margined at the account's leverage, or at its bracket's
    maximum leverage where that is lower (MECHANICS.md section 1): a position
    grows past a bracket's cap only with the margin the lower leverage asks.
    """
    leverage = state.leverage[e, a]
    notional = 0.0
    capped = 0.0
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] != PERP:
            continue
        if k == k_extra:
            lots = exposure(state, e, a, k, extra_buy, extra_sell)
        else:
            lots = exposure(state, e, a, k, 0, 0)
        value = lots * params.lot_size[k] * state.mark_price[e, k]
        allowed = params.bracket_max_leverage[k, tier(params, k, value)]
        if allowed < leverage:
            capped += value / allowed
        else:
            notional += value
    # Summed before the division, so an account within its brackets gets the
    # same figure to the last bit as the uncapped formula.
    return notional / leverage + capped


@kernel
def count_liquidatable(params, state, e):
    """How many accounts of env ``e`` are below their maintenance requirement."""
    count = 0
    for a in range(1, state.cash.shape[1]):
        count += liquidation_check(params, state, e, a)[0]
    return count
