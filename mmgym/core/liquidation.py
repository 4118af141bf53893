"""The liquidation engine and the insurance fund (MECHANICS.md sections 2, 4 and 6).

Each step, every account under its maintenance requirement is handled in
account order:

* its open orders are cancelled;
* cross accounts: for each position, largest maintenance margin first, an IOC
  order limited at the bankruptcy price cuts the position to just below its
  current bracket's floor; if the account is still unhealthy the rest follows;
* unified accounts (uniMMR below the liquidation level) are taken over until
  done: every perp position is closed and the spot collateral is sold
  pro-rata into its own books, down to the price band, until the USDT debt
  is repaid. Their perp orders, too, stop at the band: while the bankruptcy
  price lies beyond it the account still has equity, so what the band
  cannot fill waits for the next step instead of going to the fund;
* the clearance fee (a share of the notional filled in the book, never more
  than what the account has left) goes to the fund;
* whatever an IOC cannot fill above the bankruptcy price is taken over by the
  fund at that price, up to its takeover limit, and the rest is
  auto-deleveraged;
* a negative balance left with no position (by the liquidation, or by a cross
  account's own closing order) is reset to zero by the fund; what the fund
  cannot pay is written off as socialised loss.

The book flow of liquidations and of the fund's unwinding is capped per step
and market (``liquidation_cap``, ``fund_unwind_cap``), so cascades unfold over
several steps; an account cut short by the cap stays in liquidation.
"""

from __future__ import annotations

import math

from .._jit import inline_kernel, kernel
from .accounts import cancel_all, settle_matches, transfer
from .adl import deleverage
from .book import match
from .codes import (
    ADL_HYPERLIQUID,
    BUY,
    E_FUND_UTILISATION_AT_ADL,
    PERP,
    S_LIQ_COUNT_LONG,
    S_LIQ_COUNT_SHORT,
    S_LIQ_NOTIONAL_LONG,
    S_LIQ_NOTIONAL_SHORT,
    S_TAKEOVER_NOTIONAL,
    SELL,
    UNIFIED,
)
from .margin import (
    equity,
    is_liquidatable,
    liquidation_check,
    position_mm,
    tier,
    wallet_balance,
)
from .orders import band_ticks
from .screen import margin_cushion, screen_move
from .state import FUND

DONE = 0  # the position is closed or the account is healthy
CAPPED = 1  # the step's liquidation budget ran out first


@kernel
def bankruptcy_price(params, state, e, a, k):
    """Price of market ``k`` at which account ``a``'s equity is zero, other prices at mark.

    Floored at one tick, the lowest price the book trades at: a cross account's
    equity can exceed one position's notional, and no price then zeroes it.
    """
    lots = state.pos[e, a, k] * params.lot_size[k]
    others = equity(params, state, e, a) - lots * state.mark_price[e, k]
    return max(-others / lots, params.tick_size[k])


@kernel
def _record_liquidation(state, e, k, long_side, notional):
    if long_side:
        state.market_stats[e, k, S_LIQ_NOTIONAL_LONG] += notional
    else:
        state.market_stats[e, k, S_LIQ_NOTIONAL_SHORT] += notional


@kernel
def _send_ioc(params, state, e, a, k, side, lots, limit):
    """Liquidation or fund order into the book; returns (filled lots, notional)."""
    n, filled = match(state, e, k, side, limit, lots, a)
    notional = settle_matches(params, state, e, k, n, a, side, True)
    state.liq_budget[e, k] -= notional
    return filled, notional


@kernel
def _clearance_fee(params, state, e, a, k, notional):
    fee = min(params.liquidation_fee[k] * notional, max(equity(params, state, e, a), 0.0))
    if fee > 0.0:
        state.cash[e, a] -= fee
        state.cash[e, FUND] += fee
        state.cushion[e, a] = -1.0


@kernel
def fund_capacity(params, state, e, k, side, lots):
    """Lots of a ``side`` (+1 long) position the fund may take over in market ``k``.

    The fund may hold net notional up to ``fund_takeover_limit`` times its
    wallet balance (MECHANICS.md section 4), summed over markets; taking a
    position that reduces its own is always allowed.
    """
    unit = params.lot_size[k] * state.mark_price[e, k]
    limit = max(params.fund_takeover_limit * wallet_balance(params, state, e, FUND), 0.0)
    held_elsewhere = 0.0
    for j in range(params.market_kind.shape[0]):
        if params.market_kind[j] == PERP and j != k:
            held_elsewhere += (
                abs(state.pos[e, FUND, j]) * params.lot_size[j] * state.mark_price[e, j]
            )
    max_abs = max(math.floor((limit - held_elsewhere) / unit), 0)
    held = state.pos[e, FUND, k] * side  # > 0: the fund already holds this side
    room = max_abs - held if held >= 0 else -held + max_abs
    return min(max(room, 0), lots)


@kernel
def fund_utilisation(params, state, e):
    """Net notional the fund holds over what it may hold (1 = no room left)."""
    limit = params.fund_takeover_limit * wallet_balance(params, state, e, FUND)
    held = 0.0
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] == PERP:
            held += abs(state.pos[e, FUND, k]) * params.lot_size[k] * state.mark_price[e, k]
    if limit <= 0.0:
        return 1.0
    return held / limit


@kernel
def _record_utilisation_at_adl(params, state, e):
    """Keep the step's lowest fund utilisation at the moment ADL starts.

    The end-of-step reading can differ: later trades of the step move the
    marks, and the fund's unwinding realises PnL into its balance.
    """
    u = fund_utilisation(params, state, e)
    seen = state.env_stats[e, E_FUND_UTILISATION_AT_ADL]
    if math.isnan(seen) or u < seen:
        state.env_stats[e, E_FUND_UTILISATION_AT_ADL] = u


@kernel
def close_at_bankruptcy(params, state, e, a, k):
    """Hand account ``a``'s whole position in ``k`` to the fund, the rest to ADL."""
    p = state.pos[e, a, k]
    side = 1 if p > 0 else -1
    lots = abs(p)
    price = bankruptcy_price(params, state, e, a, k)
    rest = lots
    while rest > 0:
        # Closing part of the fund's own opposite position realises its PnL,
        # which moves its balance and so its limit: take again.
        taken = fund_capacity(params, state, e, k, side, rest)
        if taken == 0:
            break
        if side > 0:
            value = transfer(params, state, e, k, FUND, a, price, taken)
        else:
            value = transfer(params, state, e, k, a, FUND, price, taken)
        state.market_stats[e, k, S_TAKEOVER_NOTIONAL] += value
        rest -= taken
    if rest > 0:
        _record_utilisation_at_adl(params, state, e)
        if params.adl_formula == ADL_HYPERLIQUID:
            price = state.mark_price[e, k]  # Hyperliquid closes at the previous mark
        deleverage(params, state, e, a, k, rest, price)
    _record_liquidation(state, e, k, side > 0, lots * params.lot_size[k] * price)


@kernel
def liquidate_position(params, state, e, a, k, partial):
    """IOC at the bankruptcy price, to just below the current bracket if ``partial``."""
    p = state.pos[e, a, k]
    if p == 0:
        return DONE
    if state.step[e] < state.halted_until[e, k]:
        return CAPPED  # a halted market takes no liquidation flow: wait for the reopen
    unit = params.lot_size[k] * state.mark_price[e, k]
    lots = abs(p)
    if partial:
        t = tier(params, k, lots * unit)
        if t > 0:
            keep = math.ceil(params.bracket_floor[k, t] / unit) - 1
            lots = max(lots - max(keep, 0), 1)
    budget = (
        max(math.floor(state.liq_budget[e, k] / unit), 0)
        if state.liq_budget[e, k] < math.inf
        else lots
    )
    send = min(lots, budget)
    if send <= 0:
        return CAPPED
    price = bankruptcy_price(params, state, e, a, k)
    tick = params.tick_size[k]
    # A unified account is sold within the price band: beyond it the account
    # still has equity, which a takeover at the bankruptcy price would confiscate.
    banded = state.account_kind[e, a] == UNIFIED
    lo, hi = band_ticks(params, state, e, k)
    if p > 0:
        limit = math.ceil(price / tick - 1e-9)
        bankrupt = not banded or limit >= lo
        filled, notional = _send_ioc(params, state, e, a, k, SELL, send, limit if bankrupt else lo)
    else:
        limit = math.floor(price / tick + 1e-9)
        bankrupt = not banded or limit <= hi
        filled, notional = _send_ioc(params, state, e, a, k, BUY, send, limit if bankrupt else hi)
    _record_liquidation(state, e, k, p > 0, notional)
    _clearance_fee(params, state, e, a, k, notional)
    takeover = filled < send and bankrupt
    if filled > 0 or takeover:
        # A liquidation is counted when it trades, in the book or by takeover:
        # an order the band left unfilled is sent again at the next step.
        state.market_stats[e, k, S_LIQ_COUNT_LONG if p > 0 else S_LIQ_COUNT_SHORT] += 1.0
    if filled < send:
        if not bankrupt:
            return CAPPED  # the band is exhausted: sell on at the next step
        # The book is exhausted down to the bankruptcy price: the engine takes over.
        close_at_bankruptcy(params, state, e, a, k)
        return DONE
    return CAPPED if send < lots else DONE


@kernel
def _largest_position(params, state, e, a):
    best = -1
    best_mm = -1.0
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] == PERP and state.pos[e, a, k] != 0:
            notional = abs(state.pos[e, a, k]) * params.lot_size[k] * state.mark_price[e, k]
            mm = position_mm(params, k, notional)
            if mm > best_mm:
                best = k
                best_mm = mm
    return best


@kernel
def _has_perps(params, state, e, a):
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] == PERP and state.pos[e, a, k] != 0:
            return True
    return False


@kernel
def _sell_collateral(params, state, e, a):
    """Sell a unified account's spot holdings pro-rata by value until its debt is repaid."""
    debt = -wallet_balance(params, state, e, a)
    if debt <= 0.0:
        return DONE
    total = 0.0
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] != PERP and state.pos[e, a, k] > 0:
            total += state.pos[e, a, k] * params.lot_size[k] * state.collateral_price[e, k]
    if total <= 0.0:
        return DONE
    result = DONE
    for k in range(params.market_kind.shape[0]):
        held = state.pos[e, a, k]
        if params.market_kind[k] == PERP or held <= 0:
            continue
        if state.step[e] < state.halted_until[e, k]:
            result = CAPPED
            continue
        unit = params.lot_size[k] * state.collateral_price[e, k]
        share = held * unit / total
        lots = min(held, math.ceil(debt * share / unit))
        if state.liq_budget[e, k] < math.inf:
            lots = min(lots, max(math.floor(state.liq_budget[e, k] / unit), 0))
        if lots <= 0:
            result = CAPPED
            continue
        lo, _ = band_ticks(params, state, e, k)
        filled, notional = _send_ioc(params, state, e, a, k, SELL, lots, lo)
        if filled > 0:
            state.market_stats[e, k, S_LIQ_COUNT_LONG] += 1.0
        _record_liquidation(state, e, k, True, notional)
        _clearance_fee(params, state, e, a, k, notional)
    return result


@kernel
def _holds_collateral(params, state, e, a):
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] != PERP and state.pos[e, a, k] > 0:
            return True
    return False


@kernel
def cover_negative_balance(params, state, e, a):
    """Reset a negative balance of an account without positions: fund first, then write-off."""
    deficit = -state.cash[e, a]
    if deficit <= 0.0:
        return
    paid = min(deficit, max(equity(params, state, e, FUND), 0.0))
    state.cash[e, FUND] -= paid
    state.fund_payout[e] += paid
    state.socialised_loss[e] += deficit - paid
    state.cash[e, a] = 0.0
    state.cushion[e, a] = -1.0


@kernel
def _liquidate_cross(params, state, e, a):
    for _ in range(params.market_kind.shape[0]):
        if not is_liquidatable(params, state, e, a):
            break
        k = _largest_position(params, state, e, a)
        if k < 0:
            break
        if liquidate_position(params, state, e, a, k, True) == CAPPED:
            return
        if not is_liquidatable(params, state, e, a):
            break
        if liquidate_position(params, state, e, a, k, False) == CAPPED:
            return
    if not _has_perps(params, state, e, a):
        cover_negative_balance(params, state, e, a)


@kernel
def _liquidate_unified(params, state, e, a):
    capped = False
    for k in range(params.market_kind.shape[0]):
        is_perp = params.market_kind[k] == PERP
        if is_perp and liquidate_position(params, state, e, a, k, False) == CAPPED:
            capped = True
    if capped or _has_perps(params, state, e, a):
        return
    _sell_collateral(params, state, e, a)
    if wallet_balance(params, state, e, a) >= 0.0:
        state.in_liquidation[e, a] = 0
    elif not _holds_collateral(params, state, e, a):
        cover_negative_balance(params, state, e, a)
        state.in_liquidation[e, a] = 0


@inline_kernel
def _check_account(params, state, e, a):
    """The full margin check of one account, and its liquidation if it fails."""
    unified = state.account_kind[e, a] == UNIFIED
    if unified & (state.in_liquidation[e, a] != 0):
        cancel_all(params, state, e, a)
        _liquidate_unified(params, state, e, a)
        return
    liquidatable, perps = liquidation_check(params, state, e, a)
    if liquidatable:
        cancel_all(params, state, e, a)
        state.in_liquidation[e, a] = 1
        if unified:
            _liquidate_unified(params, state, e, a)
        else:
            _liquidate_cross(params, state, e, a)
            state.in_liquidation[e, a] = 1 if is_liquidatable(params, state, e, a) else 0
    else:
        state.in_liquidation[e, a] = 0
        if (not unified) & (state.cash[e, a] < 0.0) & (not perps):
            # A trader's own closing order lost more than the account held.
            cover_negative_balance(params, state, e, a)


@kernel
def run_liquidations(params, state, e):
    """Check every trader account at mark and liquidate those under maintenance.

    Accounts whose cushion covers the price moves since the screen's reference
    are skipped: a full check would find them safe (see ``core/screen.py``).
    """
    move = screen_move(params, state, e)
    for a in range(1, state.cash.shape[1]):
        if state.cushion[e, a] > move:
            continue
        _check_account(params, state, e, a)
        if state.in_liquidation[e, a] == 0 and params.margin_screen > 0.0:
            state.cushion[e, a] = margin_cushion(params, state, e, a)
        else:
            state.cushion[e, a] = -1.0


@kernel
def unwind_fund(params, state, e):
    """The fund sends IOC orders, within the price band, to shed positions it took over."""
    for k in range(params.market_kind.shape[0]):
        p = state.pos[e, FUND, k]
        if params.market_kind[k] != PERP or p == 0 or state.step[e] < state.halted_until[e, k]:
            continue
        unit = params.lot_size[k] * state.mark_price[e, k]
        lots = abs(p)
        if state.unwind_budget[e, k] < math.inf:
            lots = min(lots, max(math.floor(state.unwind_budget[e, k] / unit), 0))
        if lots <= 0:
            continue
        lo, hi = band_ticks(params, state, e, k)
        n, _ = match(state, e, k, SELL if p > 0 else BUY, lo if p > 0 else hi, lots, FUND)
        state.unwind_budget[e, k] -= settle_matches(
            params, state, e, k, n, FUND, SELL if p > 0 else BUY, True
        )
