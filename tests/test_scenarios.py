"""The oct10 and calm scenarios against their shape criteria (OCT10.md), on several seeds."""

import math

import numpy as np
import pytest

from mmgym.scenario import run
from mmgym.scenario.criteria import calm_criteria, oct10_criteria

CALM_SEEDS = (0, 1, 2)
# The criteria are meant to hold on any seed; they hold on about 97 seeds in
# 100 (README). These tests guard that rate on fixed seeds, so a change that
# costs seeds fails here, and name every miss.
OCT10_SEEDS = tuple(range(8))
OCT10_MIN_PASSING = 8
CALM_FULL_SEEDS = tuple(range(4))
CALM_FULL_MIN_PASSING = 2


def _misses(rows):
    return [f"{r.name}: {r.simulated}" for r in rows if not r.holds]


@pytest.fixture(scope="module")
def oct10_runs():
    out = {}
    for seed in OCT10_SEEDS:
        base = run("oct10", seed)
        conversion = run("oct10", seed, collateral_pricing="conversion")
        obliged = run("oct10", seed, mm_obligations=True)
        out[seed] = (base, oct10_criteria(base.summary, conversion.summary, obliged.summary))
    return out


def test_oct10_criteria_hold_on_most_seeds(oct10_runs):
    misses = {seed: _misses(rows) for seed, (_, rows) in oct10_runs.items()}
    passing = sum(not m for m in misses.values())
    assert passing >= OCT10_MIN_PASSING, misses
    for base, _ in oct10_runs.values():
        assert base.invariants["position_imbalance"] == 0
        assert base.invariants["cash_drift"] < 1e-3


@pytest.mark.parametrize("seed", CALM_SEEDS)
def test_calm_has_no_cascade(oct10_runs, seed):
    calm = run("calm", seed)
    # An hour: too few 1-minute returns for the stylised facts.
    assert _misses(calm_criteria(calm.summary)[:1]) == []
    crash = oct10_runs[seed][0].summary
    assert crash["liq_densest_hour_of_oi"] > 0.2  # the criterion tells the two apart
    assert calm.summary["mm_all_away_share"] < 1e-3  # no lasting collective withdrawal
    assert calm.invariants["position_imbalance"] == 0
    assert calm.invariants["cash_drift"] < 1e-3


def test_calm_full_criteria_hold_on_half_the_seeds():
    runs = {seed: run("calm_full", seed) for seed in CALM_FULL_SEEDS}
    misses = {seed: _misses(calm_criteria(r.summary)) for seed, r in runs.items()}
    assert sum(not m for m in misses.values()) >= CALM_FULL_MIN_PASSING, misses
    for r in runs.values():
        assert r.summary["adl_count"] == 0  # turnovers no longer sweep the thin alt
        assert r.summary["mm_all_away_share"] < 1e-3
        assert r.invariants["position_imbalance"] == 0
        assert r.invariants["cash_drift"] < 1e-3


def test_cli_prints_the_criteria_and_writes_chart_and_report(tmp_path, capsys):
    from mmgym.scenario.__main__ import main

    png, md = tmp_path / "calm.png", tmp_path / "calm.md"
    args = ["calm", "--seed", "0", "--plot", str(png), "--report", str(md)]
    assert main([*args, "--set", "steps=600"]) == 0
    out = capsys.readouterr().out
    assert "liq_densest_hour_of_oi" in out and "[ok] no cascade" in out
    assert "firm withdrawals:" in out and "## Firm withdrawals" in md.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = [line for line in md.read_text().splitlines() if line.startswith("| |returns")]
    assert table == [] and r"\|returns\|" in md.read_text()  # pipes escaped in cells
    assert main(["calm", "--set", "population.makers.firms=-1"]) == 2
    assert "population.makers.firms" in capsys.readouterr().err


def test_withdrawals_name_the_signal_that_crossed_and_the_return():
    from mmgym.scenario.withdrawals import signal_counts, withdrawals

    away = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [1, 1]], bool)  # steps x firms
    loss = np.array([[0.2, 0.1], [1.3, 0.2], [0.9, 0.4], [0.5, 0.6], [0.8, 0.9]])
    inventory = np.array([[0.1, 0.1], [0.4, 0.3], [0.5, 1.6], [0.2, 0.9], [1.1, 0.2]])
    timeline = {"mm_away": away, "mm_stress": {"loss": loss, "inventory": inventory}}
    rows = withdrawals(timeline, dt=2.0)
    # Firm 0 leaves at step 1 on its loss and is back at step 3, leaves again at
    # step 4 on its inventory; firm 1 leaves at step 2 on its inventory.
    got = [(w.firm, w.left, w.signal, w.level, w.returned) for w in rows]
    assert got[0] == (0, 2.0, "loss", 1.3, 6.0)
    assert got[1][:4] == (1, 4.0, "inventory", 1.6) and math.isnan(got[1][4])
    assert got[2][:4] == (0, 8.0, "inventory", 1.1) and math.isnan(got[2][4])
    assert signal_counts(rows) == {"inventory": 2, "loss": 1}
    assert list(signal_counts(rows)) == ["inventory", "loss"]
