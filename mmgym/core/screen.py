"""Margin screen: which accounts the per-step liquidation scan can safely skip.

Real venues do not re-margin every account on every tick; they re-check an
account when its positions change or when prices have moved far enough to
matter. Here each account keeps a *cushion*: the relative move of every margin
price (perp marks, spot collateral prices) away from the env's
``screen_reference`` that it survives for certain. The scan skips it while
the largest move since the reference is below its cushion, so the verdict is
exactly the one a full check would give.

The bound. Between two prices of market ``k`` an account's equity changes by
at most ``|q_k|`` per unit of price (``q_k`` its coins) and its maintenance
margin, piecewise linear in notional, by at most the highest MMR the notional
can reach times ``|q_k|``. With ``level`` the liquidation level (1 for cross,
the uniMMR level for unified), the surplus ``equity - level * MM`` at any
prices within ``move`` of the reference is at least

    surplus_now - sum_k w_k |p_k - ref_k| - move * sum_k w_k ref_k,
    w_k = |q_k| (1 + level * MMR_max,k)  (perps),  |q_k|  (unified collateral),

and the cushion is the ``move`` that keeps this above a rounding slack. The
USDT-debt charge of unified accounts does not depend on prices. Once any
price moves ``params.margin_screen`` from its reference, the reference is
reset and every account is checked in full.
"""

from __future__ import annotations

import math

from .._jit import inline_kernel
from .codes import PERP, UNIFIED
from .margin import equity_and_mm, tier

SLACK = 1e-9  # surplus kept back, relative to the account's size, for rounding


@inline_kernel
def margin_price(params, state, e, k):
    """The price margin is computed at: a perp's mark, a spot market's collateral price."""
    if params.market_kind[k] == PERP:
        return state.mark_price[e, k]
    return state.collateral_price[e, k]


@inline_kernel
def screen_move(params, state, e):
    """Largest relative move of a margin price since the reference; -1 checks every account.

    A rebase (a move past ``params.margin_screen``, or no reference yet) takes
    the current prices as the new reference and forgets every cushion. With
    the screen off (``margin_screen`` 0) no cushion is ever kept.
    """
    if params.margin_screen <= 0.0:
        return -1.0
    move = 0.0
    rebase = False
    for k in range(params.market_kind.shape[0]):
        ref = state.screen_reference[e, k]
        distance = abs(margin_price(params, state, e, k) - ref)
        # Written so that a zero or NaN reference also rebases.
        if distance <= params.margin_screen * ref:
            move = max(move, distance / ref)
        else:
            rebase = True
    if not rebase:
        return move
    for k in range(params.market_kind.shape[0]):
        state.screen_reference[e, k] = margin_price(params, state, e, k)
    for a in range(state.cushion.shape[1]):
        state.cushion[e, a] = -1.0
    return -1.0


@inline_kernel
def margin_cushion(params, state, e, a):
    """Account ``a``'s cushion (see the module docstring); -1 when it must be checked each step.

    Call only for an account that is not being liquidated.
    """
    unified = state.account_kind[e, a] == UNIFIED
    level = params.unified_liquidation_level if unified else 1.0
    eq, mm = equity_and_mm(params, state, e, a)
    exposure = 0.0
    drift = 0.0
    size = abs(state.cash[e, a]) + level * mm + 1.0
    perps = False
    for k in range(params.market_kind.shape[0]):
        p = state.pos[e, a, k]
        if p == 0:
            continue
        coins = abs(p * params.lot_size[k])
        ref = state.screen_reference[e, k]
        price = margin_price(params, state, e, k)
        if params.market_kind[k] == PERP:
            perps = True
            # MMRs never fall with the tier: the steepest is that of the largest notional.
            reach = coins * ref * (1.0 + params.margin_screen)
            weight = coins * (1.0 + level * params.bracket_mmr[k, tier(params, k, reach)])
            size += coins * (price + state.entry[e, a, k])
        elif unified:
            weight = coins
            size += coins * price
        else:
            continue  # a cross account's spot holdings are not margin
        exposure += weight * ref
        drift += weight * abs(price - ref)
    if not perps and mm <= 0.0:
        # No price can make MM positive; only a cross account's own negative
        # balance needs the scan (it is covered there).
        return -1.0 if (not unified) and state.cash[e, a] < 0.0 else math.inf
    spare = eq - level * mm - drift - SLACK * size
    if spare <= 0.0:
        return -1.0
    if exposure == 0.0:
        return math.inf
    return spare / exposure
