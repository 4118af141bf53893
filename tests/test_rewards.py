"""Reward regimes, the info table and the obligation monitor against plain recomputations."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmgym.env.kernels import (
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
    N_ACCOUNTING,
    N_ENV_ACCOUNTING,
)
from mmgym.env.rewards import Duties, Obligation, ObligationMonitor, StepAccounting
from mmgym.env.step_record import INFO_KEYS, ROW, record_step


def naive_presence(history: list[bool], window: int) -> float:
    """Compliant share of the last ``window`` recorded steps."""
    recent = history[-window:]
    return sum(recent) / len(recent)


ACCOUNT_KEYS = {
    "equity": AC_EQUITY,
    "pnl": AC_PNL,
    "fees": AC_FEES,
    "inventory": AC_INVENTORY,
    "flattened": AC_FLATTENED,
    "margin_ratio": AC_MARGIN,
    "quoted": AC_QUOTED,
    "spread_bps": AC_SPREAD_BPS,
}
ENV_KEYS = {
    "stressed": EV_STRESS,
    "mid": EV_MID,
    "depth_1pct": EV_DEPTH,
    "liq_notional_long": EV_LIQ_LONG,
    "liq_notional_short": EV_LIQ_SHORT,
    "liq_count": EV_LIQ_COUNT,
    "adl_count": EV_ADL_COUNT,
    "adl_notional": EV_ADL_NOTIONAL,
    "volume": EV_VOLUME,
    "insurance_fund": EV_FUND,
    "fund_drawdown": EV_FUND_DRAWDOWN,
    "socialised_loss": EV_SOCIALISED,
    "mm_quoting": EV_MM_QUOTING,
}


def naive_info(ac, ev, history: list[bool], window: int, min_presence: float) -> dict:
    """One agent's info values for one step; appends the step's verdict to ``history``."""
    info = {key: ac[col] for key, col in ACCOUNT_KEYS.items()}
    info.update({key: ev[col] for key, col in ENV_KEYS.items()})
    info["min_quote_notional"] = min(ac[AC_BID_NOTIONAL], ac[AC_ASK_NOTIONAL])
    info["liquidated"] = float(ac[AC_LIQUIDATED] > 0)
    allowance = 150.0 if ev[EV_STRESS] > 0 else 50.0
    compliant = (
        ac[AC_QUOTED] > 0
        and ac[AC_SPREAD_BPS] <= allowance
        and info["min_quote_notional"] >= 10_000.0
    )
    history.append(compliant)
    presence = naive_presence(history, window)
    info["obligation_compliant"] = float(compliant)
    info["obligation_presence"] = presence
    info["obligation_breach"] = float(presence < min_presence)
    return info


agent_step = st.tuples(
    st.booleans(),  # quoted
    st.floats(0.0, 200.0),  # spread, bps
    st.floats(0.0, 30_000.0),  # bid notional, USDT
    st.floats(0.0, 30_000.0),  # ask notional, USDT
    st.booleans(),  # liquidated
    st.floats(-1e6, 1e6),  # any other value
)


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(1, 12),
    n_envs=st.integers(1, 3),
    n_agents=st.integers(1, 2),
    steps=st.lists(
        st.tuples(
            st.lists(agent_step, min_size=6, max_size=6),  # one per (env, agent) slot
            st.lists(st.booleans(), min_size=3, max_size=3),  # stressed, per env
            st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3),  # other values, per env
            st.integers(-1, 2),  # env reset before this step (-1: none)
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_record_step_matches_a_plain_recount(window, n_envs, n_agents, steps):
    duties = Duties(max_spread_bps=50.0, min_notional=10_000.0, window=window, min_presence=0.6)
    monitor = ObligationMonitor(duties, n_envs * n_agents)
    histories: list[list[bool]] = [[] for _ in range(n_envs * n_agents)]
    obs = np.zeros((n_envs, n_agents, 4), np.float32)
    for agents, stressed, other, reset in steps:
        if 0 <= reset < n_envs:
            monitor.reset(slice(reset * n_agents, (reset + 1) * n_agents))
            for slot in range(reset * n_agents, (reset + 1) * n_agents):
                histories[slot] = []
        accounting = np.zeros((n_envs, n_agents, N_ACCOUNTING))
        env_accounting = np.zeros((n_envs, N_ENV_ACCOUNTING))
        for e in range(n_envs):
            env_accounting[e] = other[e]
            env_accounting[e, EV_STRESS] = float(stressed[e])
            for g in range(n_agents):
                quoted, spread, bid, ask, liquidated, value = agents[e * n_agents + g]
                ac = accounting[e, g]
                ac[:] = value
                ac[AC_QUOTED], ac[AC_SPREAD_BPS] = float(quoted), spread
                ac[AC_BID_NOTIONAL], ac[AC_ASK_NOTIONAL] = bid, ask
                ac[AC_LIQUIDATED] = float(liquidated)
        table = np.full((len(INFO_KEYS), n_envs, n_agents), np.nan)
        record_step(
            accounting,
            env_accounting,
            monitor.params,
            monitor.history,
            monitor.count,
            monitor.met,
            table,
            obs,
        )
        for e in range(n_envs):
            for g in range(n_agents):
                expected = naive_info(
                    accounting[e, g],
                    env_accounting[e],
                    histories[e * n_agents + g],
                    window,
                    0.6,
                )
                got = {key: table[ROW[key], e, g] for key in expected}
                assert got == expected
                assert obs[e, g, -1] == np.float32(expected["obligation_presence"])


def test_obligation_penalises_only_steps_missed_in_breach():
    n = 4
    acc = StepAccounting(
        pnl=np.zeros(n),
        fees=np.zeros(n),
        inventory=np.zeros(n),
        quoted=np.ones(n),
        spread_bps=np.zeros(n),
        min_notional=np.zeros(n),
        stressed=np.zeros(n),
        fund_drawdown=np.zeros(n),
        socialised_loss=np.zeros(n),
        compliant=np.array([1.0, 0.0, 1.0, 0.0]),
        presence=np.zeros(n),
        breach=np.array([0.0, 0.0, 1.0, 1.0]),
        capital=1e6,
    )
    parts = Obligation(rebate=0.5, penalty=2.0).parts(acc)
    np.testing.assert_array_equal(parts["rebate"], [0.5, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(parts["penalty"], [0.0, 0.0, 0.0, -2.0])
