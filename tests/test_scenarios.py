"""The oct10 and calm scenarios against their shape criteria (OCT10.md), on several seeds."""

import pytest

from mmgym.scenario import run
from mmgym.scenario.criteria import calm_criteria, oct10_criteria

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def oct10_runs():
    out = {}
    for seed in SEEDS:
        base = run("oct10", seed)
        conversion = run("oct10", seed, collateral_pricing="conversion")
        obliged = run("oct10", seed, mm_obligations=True)
        out[seed] = (base, oct10_criteria(base.summary, conversion.summary, obliged.summary))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_oct10_criteria_hold(oct10_runs, seed):
    base, rows = oct10_runs[seed]
    assert [f"{r.name}: {r.simulated}" for r in rows if not r.holds] == []
    assert base.invariants["position_imbalance"] == 0
    assert base.invariants["cash_drift"] < 1e-3


@pytest.mark.parametrize("name", ["calm", "calm_full"])
@pytest.mark.parametrize("seed", SEEDS)
def test_calm_has_no_cascade(oct10_runs, seed, name):
    calm = run(name, seed)
    if name == "calm_full":  # a day of 1-minute returns: the stylised facts
        rows = calm_criteria(calm.summary)
        assert [f"{r.name}: {r.simulated}" for r in rows if not r.holds] == []
    crash = oct10_runs[seed][0].summary
    calm_liq = calm.summary["liq_notional_long"] + calm.summary["liq_notional_short"]
    assert calm_liq < 0.25 * (crash["liq_notional_long"] + crash["liq_notional_short"])
    assert calm.summary["adl_count"] == 0
    assert calm.summary["mm_quoting_min"] >= 0.2  # never a collective withdrawal
    assert calm.invariants["position_imbalance"] == 0
    assert calm.invariants["cash_drift"] < 1e-3
