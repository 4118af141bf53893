"""Auto-deleveraging: ranking opposite positions and closing them (MECHANICS.md section 5)."""

from __future__ import annotations

import math

from .._jit import kernel
from .accounts import cancel_all, transfer
from .codes import ADL_BINANCE, ADL_BITMEX, PERP, S_ADL_COUNT, S_ADL_NOTIONAL
from .margin import equity, maintenance_margin, wallet_balance
from .state import FUND


@kernel
def adl_rank(params, state, e, b, k):
    """Priority of account ``b``'s position in market ``k`` to be auto-deleveraged.

    bitmex: ``PnL% * effective leverage`` if in profit else ``PnL% / effective
    leverage``; binance: ``max(0, uPnL) / max(1, WB) * MM / (WB + uPnL)``;
    hyperliquid: ``(mark/entry for longs, entry/mark for shorts) * notional / equity``.
    """
    p = state.pos[e, b, k]
    mark = state.mark_price[e, k]
    entry = state.entry[e, b, k]
    sign = 1.0 if p > 0 else -1.0
    notional = abs(p) * params.lot_size[k] * mark
    eq = equity(params, state, e, b)
    if params.adl_formula == ADL_BITMEX:
        pnl_pct = sign * (mark - entry) / entry
        if eq <= 0.0:
            return math.inf if pnl_pct > 0 else 0.0
        leverage = notional / eq
        return pnl_pct * leverage if pnl_pct > 0 else pnl_pct / leverage
    if params.adl_formula == ADL_BINANCE:
        wb = wallet_balance(params, state, e, b)
        upnl = sign * abs(p) * params.lot_size[k] * (mark - entry)
        pnl_pct = max(0.0, upnl) / max(1.0, wb)
        margin_ratio = maintenance_margin(params, state, e, b) / eq if eq > 0.0 else 0.0
        return pnl_pct * margin_ratio
    ratio = mark / entry if p > 0 else entry / mark
    if eq <= 0.0:
        return math.inf
    return ratio * notional / eq


@kernel
def deleverage(params, state, e, a, k, lots, price):
    """Close ``lots`` of bankrupt account ``a`` in market ``k`` against the best-ranked
    opposite positions at ``price``, with no fee; the closed accounts' orders are cancelled.
    """
    side = 1 if state.pos[e, a, k] > 0 else -1
    ranks = state.rank_scratch[e, 0]
    n_accounts = state.cash.shape[1]
    for b in range(n_accounts):
        if b != a and b != FUND and state.pos[e, b, k] * side < 0:
            ranks[b] = adl_rank(params, state, e, b, k)
        else:
            ranks[b] = -math.inf
    while lots > 0:
        best = -1
        best_rank = -math.inf
        for b in range(n_accounts):
            if ranks[b] > best_rank:  # non-candidates and closed accounts hold -inf
                best = b
                best_rank = ranks[b]
        if best < 0:
            break
        take = min(lots, abs(state.pos[e, best, k]))
        if side > 0:
            value = transfer(params, state, e, k, best, a, price, take)
        else:
            value = transfer(params, state, e, k, a, best, price, take)
        cancel_all(params, state, e, best)
        state.market_stats[e, k, S_ADL_COUNT] += 1.0
        state.market_stats[e, k, S_ADL_NOTIONAL] += value
        ranks[best] = -math.inf
        lots -= take
    return lots


@kernel
def refresh_quantiles(params, state, e):
    """Recompute every position's ADL light (0-4, 20% quantile steps, 4 = first in line)."""
    sorted_ranks = state.rank_scratch[e, 0]
    ranks = state.rank_scratch[e, 1]  # each account's rank, computed once
    n_accounts = state.cash.shape[1]
    for k in range(params.market_kind.shape[0]):
        if params.market_kind[k] != PERP:
            continue
        state.adl_quantile[e, :, k] = 0
        for side in (1, -1):
            n = 0
            for b in range(1, n_accounts):
                if state.pos[e, b, k] * side > 0:
                    ranks[b] = adl_rank(params, state, e, b, k)
                    sorted_ranks[n] = ranks[b]
                    n += 1
            if n == 0:
                continue
            _heapsort(sorted_ranks, n)
            for b in range(1, n_accounts):
                if state.pos[e, b, k] * side > 0:
                    # Ranks up to its own, itself and ties included, so the first in
                    # line shows 4 lights however few positions the side holds.
                    at_most = _count_at_most(sorted_ranks, n, ranks[b])
                    state.adl_quantile[e, b, k] = max(0, min(4, (5 * at_most - 1) // n))


@kernel
def _heapsort(values, n):
    """Sort ``values[:n]`` ascending in place (kernels run without an allocator)."""
    for start in range(n // 2 - 1, -1, -1):
        _sift_down(values, start, n)
    for end in range(n - 1, 0, -1):
        values[0], values[end] = values[end], values[0]
        _sift_down(values, 0, end)


@kernel
def _sift_down(values, root, n):
    while True:
        child = 2 * root + 1
        if child >= n:
            return
        if child + 1 < n and values[child + 1] > values[child]:
            child += 1
        if values[root] >= values[child]:
            return
        values[root], values[child] = values[child], values[root]
        root = child


@kernel
def _count_at_most(values, n, x):
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo
