"""The per-step info table and the quoting-duty monitor, in one compiled pass.

After every env step the RL layer needs, per agent, the info values under
``INFO_KEYS`` and the duties' verdict (compliant, rolling presence, breach).
Done with numpy this took some forty small array operations per step, which
cost more than the engine step itself once a learner's updates had pushed
them out of the CPU caches; ``record_step`` does it in one pass.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .kernels import (
    AC_ASK_NOTIONAL,
    AC_BID_NOTIONAL,
    AC_EQUITY,
    AC_FEES,
    AC_FLATTENED,
    AC_INVENTORY,
    AC_LIQUIDATED,
    AC_MARGIN,
    AC_PNL,
    AC_QUOTED,
    AC_SPREAD_BPS,
    EV_ADL_COUNT,
    EV_ADL_NOTIONAL,
    EV_DEPTH,
    EV_FUND,
    EV_FUND_DRAWDOWN,
    EV_LIQ_COUNT,
    EV_LIQ_LONG,
    EV_LIQ_SHORT,
    EV_MID,
    EV_MM_QUOTING,
    EV_SOCIALISED,
    EV_STRESS,
    EV_VOLUME,
)

# info keys every step, per agent: (key, meaning).
INFO_FIELDS = (
    ("equity", "agent's mark-to-market equity, USDT"),
    ("pnl", "change of equity this step (fees and rebates included), USDT"),
    ("fees", "fees paid this step, USDT (negative = rebates earned)"),
    (
        "inventory",
        "absolute notional at mark of the quoted markets' holdings bought or sold since the "
        "episode began (perpetuals: the positions), USDT",
    ),
    ("flattened", "notional sent to flatten the inventory this step, USDT"),
    (
        "margin_ratio",
        "maintenance margin / margin equity (liquidation at 1), capped at 10 "
        "(10 when margin equity is 0 or less)",
    ),
    ("liquidated", "1 from the step the agent's account is liquidated or bankrupt on"),
    ("quoted", "1 if both sides of every quoted market were posted"),
    ("spread_bps", "widest quoted spread, bps (inf when not quoting both sides)"),
    ("min_quote_notional", "smallest quoted side, USDT (0 when a side is missing)"),
    ("obligation_compliant", "1 if this step met the quoting duties"),
    ("obligation_presence", "compliant share of the duties' rolling window"),
    ("obligation_breach", "1 while presence is below the duties' minimum"),
    ("stressed", "1 while the stress indicator is on"),
    ("mid", "fair price (mid, or mark when a side is empty) of the first quoted market"),
    ("depth_1pct", "notional within 1% of mid, first quoted market, USDT"),
    ("liq_notional_long", "long liquidation notional this step, all markets, USDT"),
    ("liq_notional_short", "short liquidation notional this step, all markets, USDT"),
    ("liq_count", "liquidation orders that traded this step, all markets"),
    ("adl_count", "auto-deleveraging events this step"),
    ("adl_notional", "auto-deleveraged notional this step, USDT"),
    ("volume", "traded notional this step, all markets, USDT"),
    ("insurance_fund", "insurance fund balance, USDT"),
    ("fund_drawdown", "insurance fund decrease this step, USDT"),
    ("socialised_loss", "losses written off this step, USDT"),
    ("mm_quoting", "share of scripted market-maker firms quoting"),
    ("reward", "this step's reward"),
)
INFO_KEYS = tuple(key for key, _ in INFO_FIELDS)
ROW = {key: i for i, key in enumerate(INFO_KEYS)}

# (info row, accounting column) of the values copied as they are.
_FROM_ACCOUNT = np.array(
    [
        (ROW["equity"], AC_EQUITY),
        (ROW["pnl"], AC_PNL),
        (ROW["fees"], AC_FEES),
        (ROW["inventory"], AC_INVENTORY),
        (ROW["flattened"], AC_FLATTENED),
        (ROW["margin_ratio"], AC_MARGIN),
        (ROW["quoted"], AC_QUOTED),
        (ROW["spread_bps"], AC_SPREAD_BPS),
    ]
)
_FROM_ENV = np.array(
    [
        (ROW["stressed"], EV_STRESS),
        (ROW["mid"], EV_MID),
        (ROW["depth_1pct"], EV_DEPTH),
        (ROW["liq_notional_long"], EV_LIQ_LONG),
        (ROW["liq_notional_short"], EV_LIQ_SHORT),
        (ROW["liq_count"], EV_LIQ_COUNT),
        (ROW["adl_count"], EV_ADL_COUNT),
        (ROW["adl_notional"], EV_ADL_NOTIONAL),
        (ROW["volume"], EV_VOLUME),
        (ROW["insurance_fund"], EV_FUND),
        (ROW["fund_drawdown"], EV_FUND_DRAWDOWN),
        (ROW["socialised_loss"], EV_SOCIALISED),
        (ROW["mm_quoting"], EV_MM_QUOTING),
    ]
)
_MIN_QUOTE = ROW["min_quote_notional"]
_LIQUIDATED = ROW["liquidated"]
_COMPLIANT = ROW["obligation_compliant"]
_PRESENCE = ROW["obligation_presence"]
_BREACH = ROW["obligation_breach"]

# Duties as the kernel reads them (``duty_params``).
DUTY_MAX_SPREAD, DUTY_STRESS_MULTIPLIER, DUTY_MIN_NOTIONAL, DUTY_MIN_PRESENCE = range(4)


@kernel
def record_step(accounting, env_accounting, duty_params, history, count, met, table, obs):
    """Fill ``table`` [key, E, G] (``INFO_KEYS`` rows but ``reward``) from the step's
    ``accounting`` [E, G, column] and ``env_accounting`` [E, column], record the
    duties and write presence in the last observation column of ``obs`` [E, G, D].

    A step is compliant when both sides are quoted, the widest spread is at
    most the allowance (``max_spread`` times ``stress_multiplier`` while the
    stress indicator is on) and the smaller side at least ``min_notional``.
    The monitor of agent slot ``e * G + g`` keeps a ring ``history`` [slot,
    window] of compliant steps, the steps recorded in ``count`` and the
    compliant ones in the ring in ``met``; presence is ``met`` plus the window's
    steps before the episode's first (counted compliant) over ``window``, a
    breach is presence below ``min_presence``.
    """
    n_envs, n_agents = accounting.shape[0], accounting.shape[1]
    window = history.shape[1]
    max_spread = duty_params[DUTY_MAX_SPREAD]
    stressed_spread = max_spread * duty_params[DUTY_STRESS_MULTIPLIER]
    min_notional = duty_params[DUTY_MIN_NOTIONAL]
    min_presence = duty_params[DUTY_MIN_PRESENCE]
    presence_column = obs.shape[2] - 1
    for e in range(n_envs):
        ev = env_accounting[e]
        allowance = stressed_spread if ev[EV_STRESS] > 0 else max_spread
        for g in range(n_agents):
            ac = accounting[e, g]
            for k in range(_FROM_ACCOUNT.shape[0]):
                table[_FROM_ACCOUNT[k, 0], e, g] = ac[_FROM_ACCOUNT[k, 1]]
            for k in range(_FROM_ENV.shape[0]):
                table[_FROM_ENV[k, 0], e, g] = ev[_FROM_ENV[k, 1]]
            min_quote = min(ac[AC_BID_NOTIONAL], ac[AC_ASK_NOTIONAL])
            table[_MIN_QUOTE, e, g] = min_quote
            table[_LIQUIDATED, e, g] = 1.0 if ac[AC_LIQUIDATED] > 0 else 0.0
            compliant = (
                ac[AC_QUOTED] > 0 and ac[AC_SPREAD_BPS] <= allowance and min_quote >= min_notional
            )
            slot = e * n_agents + g
            ring = count[slot] % window
            met[slot] += (1 if compliant else 0) - (1 if history[slot, ring] else 0)
            history[slot, ring] = compliant
            count[slot] += 1
            # Steps before the episode's first count as compliant: presence starts
            # at 1 and one early miss costs what any single miss does.
            presence = (met[slot] + max(window - count[slot], 0)) / window
            table[_COMPLIANT, e, g] = 1.0 if compliant else 0.0
            table[_PRESENCE, e, g] = presence
            table[_BREACH, e, g] = 1.0 if presence < min_presence else 0.0
            obs[e, g, presence_column] = presence
