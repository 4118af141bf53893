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
from mmgym.env.rewards import (
    Duties,
    Freedom,
    Liability,
    Obligation,
    ObligationMonitor,
    StepAccounting,
)
from mmgym.env.step_record import INFO_KEYS, ROW, record_step


def naive_presence(history: list[bool], window: int) -> float:
    """Compliant share of the last ``window`` steps, those before the episode's
    first counted as compliant."""
    padded = [True] * window + history
    return sum(padded[-window:]) / window


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


def accounting(n, **fields) -> StepAccounting:
    """A step's accounting for ``n`` agents: zeros (quoting both sides) except ``fields``."""
    base = {name: np.zeros(n) for name in StepAccounting.__dataclass_fields__}
    base.update(quoted=np.ones(n), capital=1e6)
    base.update({k: np.asarray(v, float) if k != "capital" else v for k, v in fields.items()})
    return StepAccounting(**base)


def test_freedom_by_hand():
    acc = accounting(2, pnl=[250.0, -1000.0], inventory=[0.0, 2e5])
    parts = Freedom(inventory_penalty=0.5).parts(acc)
    # 1e4 * pnl / capital: 2.5 and -10 bps of capital.
    np.testing.assert_allclose(parts["pnl"], [2.5, -10.0])
    # -0.5 * 1e4 * (2e5 / 1e6)^2 = -200.
    np.testing.assert_allclose(parts["inventory"], [0.0, -200.0])
    np.testing.assert_allclose(Freedom(inventory_penalty=0.5)(acc), [2.5, -210.0])


def test_liability_charges_only_the_maker_that_was_not_quoting():
    acc = accounting(
        3, quoted=[1.0, 0.0, 0.0], fund_drawdown=[5e4, 5e4, 0.0], socialised_loss=[0.0, 0.0, 2e4]
    )
    parts = Liability(share=0.1).parts(acc)
    # -0.1 * 1e4 * loss / 1e6 while not quoting: 5e4 -> -50, 2e4 -> -20.
    np.testing.assert_allclose(parts["liability"], [0.0, -50.0, -20.0])


def test_obligation_penalises_only_steps_missed_in_breach():
    n = 4
    acc = accounting(
        n, compliant=[1.0, 0.0, 1.0, 0.0], breach=[0.0, 0.0, 1.0, 1.0], quoted=np.ones(n)
    )
    parts = Obligation(rebate=0.5, penalty=2.0).parts(acc)
    np.testing.assert_array_equal(parts["rebate"], [0.5, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(parts["penalty"], [0.0, 0.0, 0.0, -2.0])
