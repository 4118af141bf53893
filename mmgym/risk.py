"""User-facing risk calculator for linear USDT-margined perpetuals.

Plain-Python versions of the formulas in ``MECHANICS.md`` (sections 1, 2 and
5): tiered maintenance margin, initial margin, liquidation and bankruptcy
prices in one-way mode, and auto-deleveraging (ADL) ranks.

Conventions: ``side`` is +1 (long) or -1 (short), ``qty`` is the absolute
position size in coins, prices are in USDT, and ``wallet_balance`` is the
margin allotted to the position (isolated) or the whole cross wallet. A
bracket table of ``None`` means ``DEFAULT_BRACKETS`` (Binance BTCUSDT).

Examples
--------
The worked check of MECHANICS.md section 2: an isolated 10x long of 1 BTC
entered at 84,000 with 8,400 USDT of margin, first tier (MMR 0.4%, cum 0),
so ``LP = (84000 - 8400) / 0.996``:

>>> round(liquidation_price(side=1, qty=1, entry_price=84_000, wallet_balance=8_400), 2)
75903.61
>>> bankruptcy_price(side=1, qty=1, entry_price=84_000, wallet_balance=8_400)
75600.0
>>> maintenance_margin(84_000)
336.0
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from mmgym.core.brackets import (
    DEFAULT_BRACKETS,
    maintenance_amounts,
    tier_of,
    validate_brackets,
)

__all__ = [
    "ADL_FORMULAS",
    "adl_quantile",
    "adl_rank",
    "bankruptcy_price",
    "initial_margin",
    "liquidation_price",
    "maintenance_margin",
]

#: Ranking formulas accepted by :func:`adl_rank` (MECHANICS.md section 5).
ADL_FORMULAS = ("bitmex", "binance", "hyperliquid")


# --------------------------------------------------------------------------- checks


def _side(side) -> int:
    # bool is an int subclass; True == 1 would otherwise slip through.
    if isinstance(side, bool) or side not in (1, -1):
        raise ValueError(f"side must be +1 (long) or -1 (short), got {side!r}")
    return int(side)


def _finite(name: str, value) -> float:
    # Numbers only: float() would also take True and "1e3".
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def _price(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("the arguments are too large: the price overflows a float")
    return float(value)


def _positive(name: str, value) -> float:
    value = _finite(name, value)
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
    return value


def _non_negative(name: str, value) -> float:
    value = _finite(name, value)
    if not value >= 0.0:
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return value


def _table(brackets):
    """Validated rows and their ``cum`` column (``None`` -> DEFAULT_BRACKETS)."""
    rows = DEFAULT_BRACKETS if brackets is None else validate_brackets(brackets, "brackets")
    return rows, maintenance_amounts(rows)


def _mm(notional: float, rows, cum) -> float:
    k = tier_of(notional, rows)
    return float(notional * rows[k].mmr - cum[k])


# --------------------------------------------------------------------------- margin


def maintenance_margin(notional, brackets=None) -> float:
    """Maintenance margin of a position, ``notional * mmr_tier - cum_tier``.

    Parameters
    ----------
    notional : float
        Position notional ``qty * mark`` in USDT, ``>= 0``.
    brackets : sequence of (floor, max_leverage, mmr), optional
        Bracket table; ``None`` means ``DEFAULT_BRACKETS``.

    Returns
    -------
    float
        Maintenance margin in USDT. It is continuous in ``notional`` because
        ``cum`` is derived from the floors.

    Raises
    ------
    ValueError
        If ``notional`` is negative or not finite, or the table is invalid.
    """
    notional = _non_negative("notional", notional)
    rows, cum = _table(brackets)
    return _mm(notional, rows, cum)


def initial_margin(notional, leverage, brackets=None) -> float:
    """Initial margin ``notional / min(leverage, max_leverage_tier)``.

    A position in a bracket whose maximum leverage is below the chosen one is
    margined at that maximum, as the engine margins orders.

    Parameters
    ----------
    notional : float
        Position notional in USDT, ``>= 0``.
    leverage : float
        Chosen leverage, ``>= 1``.
    brackets : sequence of (floor, max_leverage, mmr), optional
        Bracket table; ``None`` means ``DEFAULT_BRACKETS``.

    Returns
    -------
    float
        Initial margin in USDT.

    Raises
    ------
    ValueError
        If ``notional`` is negative or ``leverage`` is below 1 (or either is
        not finite), or the table is invalid.

    Examples
    --------
    5M USDT of BTCUSDT is in the 50x bracket (3M-12M), so 100x asks 50x's margin:

    >>> initial_margin(84_000, 10), initial_margin(5_000_000, 100)
    (8400.0, 100000.0)
    """
    notional = _non_negative("notional", notional)
    leverage = _finite("leverage", leverage)
    if not leverage >= 1.0:
        raise ValueError(f"leverage must be >= 1 and finite, got {leverage!r}")
    rows, _ = _table(brackets)
    return notional / min(leverage, rows[tier_of(notional, rows)].max_leverage)


# --------------------------------------------------------------------------- prices


def liquidation_price(
    side, qty, entry_price, wallet_balance, brackets=None, other_mm=0.0, other_upnl=0.0
) -> float:
    """Mark price at which the position hits maintenance margin (one-way mode).

    Closed form of MECHANICS.md section 2 with ``TMM1 = other_mm`` and
    ``UPNL1 = other_upnl`` (both 0 for an isolated position)::

        long:  LP = (Q*EP - WB - cum + TMM1 - UPNL1) / (Q * (1 - MMR))
        short: LP = (Q*EP + WB + cum - TMM1 + UPNL1) / (Q * (1 + MMR))

    The formula needs the tier that contains ``LP * Q``. Rather than guess a
    tier and re-iterate, the tier is found by bracketing: the excess
    ``WB + UPNL1 + uPnL(P) - MM(Q*P) - TMM1`` is continuous (``cum`` makes MM
    continuous) and strictly monotone in the mark ``P`` (slope
    ``side * Q * (1 - side * MMR)``, and ``MMR < 1``), so it has one root and
    the tier of that root is the last one whose floor price ``floor / Q`` is
    still on the liquidation side. That tier's closed form is then
    self-consistent by construction; at a tier boundary both tiers give the
    same price.

    Parameters
    ----------
    side : int
        +1 long, -1 short.
    qty : float
        Absolute position size in coins, ``> 0``.
    entry_price : float
        Average entry price, ``> 0``.
    wallet_balance : float
        Margin of the position (isolated) or the cross wallet; finite.
    brackets : sequence of (floor, max_leverage, mmr), optional
        Bracket table; ``None`` means ``DEFAULT_BRACKETS``.
    other_mm : float, default 0
        Maintenance margin of the account's other positions (cross), ``>= 0``.
    other_upnl : float, default 0
        Unrealised PnL of the account's other positions (cross); finite.

    Returns
    -------
    float
        The liquidation price, or ``0.0`` when no positive price solves the
        equation: for a long that means it can never be liquidated (its
        margin covers the position even at a price of 0); for a short it
        means it is below maintenance at every price (already liquidatable).
        Both read correctly as "a long is liquidated when mark <= LP, a short
        when mark >= LP".

    Raises
    ------
    ValueError
        Naming the offending argument and its allowed range.
    """
    side = _side(side)
    qty = _positive("qty", qty)
    entry_price = _positive("entry_price", entry_price)
    wallet_balance = _finite("wallet_balance", wallet_balance)
    other_mm = _non_negative("other_mm", other_mm)
    other_upnl = _finite("other_upnl", other_upnl)
    rows, cum = _table(brackets)

    # What the position may lose before the account reaches maintenance margin.
    buffer = wallet_balance + other_upnl - other_mm

    def excess(price: float) -> float:
        return buffer + side * qty * (price - entry_price) - _mm(qty * price, rows, cum)

    # side * excess <= 0 at a price means that price is at or past liquidation.
    past = [side * excess(row.floor / qty) <= 0.0 for row in rows]
    if not past[0]:
        return 0.0
    k = max(i for i, p in enumerate(past) if p)
    lp = (qty * entry_price - side * (buffer + cum[k])) / (qty * (1.0 - side * rows[k].mmr))
    return max(0.0, _price(lp))


def bankruptcy_price(side, qty, entry_price, wallet_balance, other_upnl=0.0) -> float:
    """Mark price at which the margin balance reaches zero.

    ``BP = EP - side * (WB + UPNL1) / Q``: the liquidation-price formula with
    ``MMR = cum = TMM1 = 0`` (MECHANICS.md section 2).

    Parameters
    ----------
    side : int
        +1 long, -1 short.
    qty : float
        Absolute position size in coins, ``> 0``.
    entry_price : float
        Average entry price, ``> 0``.
    wallet_balance : float
        Margin of the position (isolated) or the cross wallet; finite.
    other_upnl : float, default 0
        Unrealised PnL of the account's other positions (cross); finite.

    Returns
    -------
    float
        The bankruptcy price, floored at ``0.0``: a long whose margin covers
        the whole notional never goes bankrupt, and (same convention as
        :func:`liquidation_price`) a short with ``WB + UPNL1 < -Q * EP`` is
        bankrupt at every price.

    Raises
    ------
    ValueError
        Naming the offending argument and its allowed range.
    """
    side = _side(side)
    qty = _positive("qty", qty)
    entry_price = _positive("entry_price", entry_price)
    wallet_balance = _finite("wallet_balance", wallet_balance)
    other_upnl = _finite("other_upnl", other_upnl)
    return max(0.0, _price(entry_price - side * (wallet_balance + other_upnl) / qty))


# --------------------------------------------------------------------------- ADL


def adl_rank(
    formula,
    side,
    qty,
    entry_price,
    mark_price,
    wallet_balance,
    maintenance_margin=None,
    brackets=None,
    account_value=None,
) -> float:
    """ADL priority of a position; higher ranks are deleveraged first.

    Ranks are only comparable between positions on the same side and under
    the same formula (MECHANICS.md section 5). With ``uPnL = side * Q *
    (mark - EP)``, ``notional = Q * mark`` and ``equity = WB + uPnL``:

    * ``"bitmex"`` (also Poloniex, Bybit): ``pnl_pct = side * (mark - EP) / EP``
      and ``effective_leverage = notional / equity``; rank is
      ``pnl_pct * effective_leverage`` if ``pnl_pct > 0`` else
      ``pnl_pct / effective_leverage``. If ``equity <= 0`` the leverage is
      taken as infinite: rank ``inf`` for a profitable position, ``0.0``
      otherwise (an isolated position cannot be both in profit and at
      non-positive equity, so this only arises with cross losses elsewhere).
    * ``"binance"``: ``pnl_pct = max(0, uPnL) / max(1, WB)``,
      ``margin_ratio = MM / equity`` (0 if ``equity <= 0``),
      rank ``pnl_pct * margin_ratio``.
    * ``"hyperliquid"``: ``(mark / EP if long else EP / mark) *
      (notional / account_value)``; ``account_value`` defaults to ``equity``
      and a non-positive one gives rank ``inf``.

    Parameters
    ----------
    formula : {"bitmex", "binance", "hyperliquid"}
        Ranking formula.
    side : int
        +1 long, -1 short.
    qty : float
        Absolute position size in coins, ``> 0``.
    entry_price : float
        Average entry price, ``> 0``.
    mark_price : float
        Current mark price, ``> 0``.
    wallet_balance : float
        Margin of the position (isolated) or the cross wallet; finite.
    maintenance_margin : float, optional
        Maintenance margin for the binance formula, ``>= 0``; by default
        computed from ``qty * mark_price`` and ``brackets``.
    brackets : sequence of (floor, max_leverage, mmr), optional
        Bracket table for the default maintenance margin.
    account_value : float, optional
        Account value for the hyperliquid formula; finite.

    Returns
    -------
    float
        The rank (may be ``inf`` as described above).

    Raises
    ------
    ValueError
        For an unknown ``formula`` (listing the allowed ones) or an argument
        out of range (naming it).
    """
    if formula not in ADL_FORMULAS:
        raise ValueError(f"formula must be one of {', '.join(ADL_FORMULAS)}; got {formula!r}")
    side = _side(side)
    qty = _positive("qty", qty)
    entry_price = _positive("entry_price", entry_price)
    mark_price = _positive("mark_price", mark_price)
    wallet_balance = _finite("wallet_balance", wallet_balance)
    # Every argument given is checked, whether or not the formula reads it.
    if maintenance_margin is not None:
        maintenance_margin = _non_negative("maintenance_margin", maintenance_margin)
    rows, cum = _table(brackets)
    if account_value is not None:
        account_value = _finite("account_value", account_value)
    upnl = side * qty * (mark_price - entry_price)
    notional = qty * mark_price
    equity = wallet_balance + upnl

    if formula == "bitmex":
        pnl_pct = side * (mark_price - entry_price) / entry_price
        if equity <= 0.0:
            return math.inf if pnl_pct > 0.0 else 0.0
        leverage = notional / equity
        return pnl_pct * leverage if pnl_pct > 0.0 else pnl_pct / leverage

    if formula == "binance":
        mm = _mm(notional, rows, cum) if maintenance_margin is None else maintenance_margin
        pnl_pct = max(0.0, upnl) / max(1.0, wallet_balance)
        margin_ratio = mm / equity if equity > 0.0 else 0.0
        return pnl_pct * margin_ratio

    # hyperliquid
    value = equity if account_value is None else account_value
    if value <= 0.0:
        return math.inf
    price_ratio = mark_price / entry_price if side > 0 else entry_price / mark_price
    return price_ratio * notional / value


def adl_quantile(ranks) -> np.ndarray:
    """ADL indicator lights 0..4 for the ranks of same-side positions.

    Each position gets ``min(4, floor((5 * at_most - 1) / n))`` where
    ``at_most`` counts the ranks up to its own (itself and ties included), so
    the top 20% of ranks show 4 lights, the first in line always does however
    few positions there are, and tied ranks share the light of their place.

    Parameters
    ----------
    ranks : array_like of float
        One-dimensional ranks from :func:`adl_rank`, one side only; no NaN.

    Returns
    -------
    numpy.ndarray of int
        Lights, same length as ``ranks``.

    Raises
    ------
    ValueError
        If ``ranks`` is not one-dimensional or contains NaN.

    Examples
    --------
    >>> adl_quantile([0.1, 0.5, 0.5, 2.0]).tolist()
    [1, 3, 3, 4]
    """
    ranks = np.asarray(ranks)
    if ranks.dtype.kind not in "iuf":
        raise ValueError(f"ranks must be numbers, got dtype {ranks.dtype}")
    ranks = ranks.astype(float)
    if ranks.ndim != 1:
        raise ValueError(f"ranks must be one-dimensional, got shape {ranks.shape}")
    if np.isnan(ranks).any():
        raise ValueError("ranks must not contain NaN")
    if ranks.size == 0:
        return np.zeros(0, dtype=int)
    at_most = np.searchsorted(np.sort(ranks), ranks, side="right")
    return np.minimum((5 * at_most - 1) // ranks.size, 4).astype(int)
