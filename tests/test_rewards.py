"""Reward regimes and the obligation monitor against plain recomputations."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmgym.env.rewards import Duties, Obligation, ObligationMonitor, StepAccounting


def naive_presence(history: list[bool], window: int) -> float:
    """Compliant share of the last ``window`` recorded steps."""
    recent = history[-window:]
    return sum(recent) / len(recent)


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(1, 12),
    steps=st.lists(
        st.tuples(
            st.booleans(),  # quoted
            st.floats(0.0, 200.0),  # spread, bps
            st.floats(0.0, 30_000.0),  # smallest side, USDT
            st.booleans(),  # stressed
            st.booleans(),  # reset before this step
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_monitor_matches_a_recount_of_the_window(window, steps):
    duties = Duties(max_spread_bps=50.0, min_notional=10_000.0, window=window, min_presence=0.6)
    monitor = ObligationMonitor(duties, 1)
    history: list[bool] = []
    for quoted, spread, notional, stressed, reset in steps:
        if reset:
            monitor.reset(0)
            history = []
        allowance = 150.0 if stressed else 50.0
        expected = quoted and spread <= allowance and notional >= 10_000.0
        history.append(expected)
        compliant, presence, breach = monitor.update(
            np.array([float(quoted)]),
            np.array([spread]),
            np.array([notional]),
            np.array([float(stressed)]),
        )
        assert compliant[0] == expected
        assert presence[0] == naive_presence(history, window)
        assert breach[0] == (naive_presence(history, window) < 0.6)


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
