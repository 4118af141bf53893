"""The oct10 and calm scenarios against their shape criteria (OCT10.md), on several seeds."""

import math

import numpy as np
import pytest
import yaml

from mmgym.scenario import run
from mmgym.scenario.config import load_raw
from mmgym.scenario.criteria import calm_criteria, oct10_criteria

CALM_SEEDS = (0, 1, 2)
# The criteria are meant to hold on any seed; they hold on about 95 seeds in
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
        assert base.invariants["holdings_drift"] == 0


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
    assert calm.invariants["holdings_drift"] == 0


def test_calm_full_criteria_hold_on_half_the_seeds():
    runs = {seed: run("calm_full", seed) for seed in CALM_FULL_SEEDS}
    misses = {seed: _misses(calm_criteria(r.summary)) for seed, r in runs.items()}
    assert sum(not m for m in misses.values()) >= CALM_FULL_MIN_PASSING, misses
    for r in runs.values():
        assert r.summary["adl_count"] == 0  # turnovers no longer sweep the thin alt
        assert r.summary["mm_all_away_share"] < 1e-3
        assert r.invariants["position_imbalance"] == 0
        assert r.invariants["cash_drift"] < 1e-3
        assert r.invariants["holdings_drift"] == 0


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
    # A book the config makes too small is the config's error too.
    assert main(["calm", "--set", "steps=60", "--set", "exchange.book_capacity=8"]) == 2
    assert "book full" in capsys.readouterr().err


def test_cli_judges_a_shocked_scenario_without_a_collateral_market(tmp_path, capsys):
    """The oct10 criteria that read a collateral book are n/a without one; the rest
    and OCT10.md's other figures are printed."""
    from mmgym.scenario.__main__ import main

    raw = load_raw("calm")
    raw["steps"] = 600
    raw["exchange"]["markets"] = [m for m in raw["exchange"]["markets"] if m["kind"] == "perp"]
    pop = raw["population"]
    for section in (pop["index"], pop["flow"], pop["makers"]["quoting"]):
        del section["USDEUSDT"]
    del pop["makers"]["base_volatility"]["USDEUSDT"]
    pop["makers"]["collateral_share"] = pop["leveraged"]["unified_share"] = 0.0
    pop["loopers"]["count"] = 0
    pop["shocks"] = [{"market": "BTCUSDT", "start": 200, "duration": 100, "size": -0.1}]
    path = tmp_path / "no_spot.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "[n/a] conversion pricing" in out and "n/a (no collateral spot market)" in out
    assert "[n/a] >= 50% of liquidation notional in the densest 40 min" in out  # 10 minutes
    assert "[--] insurance fund drawdown" in out


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


def test_cli_counterfactuals_rerun_the_given_scenario_against_a_reference(monkeypatch):
    from types import SimpleNamespace

    from mmgym.scenario import __main__ as cli
    from mmgym.scenario import load_scenario

    calls = []

    def fake_run(scenario, seed, **overrides):
        calls.append((scenario, seed, overrides))
        return SimpleNamespace(summary=overrides)

    monkeypatch.setattr(cli, "run", fake_run)
    monkeypatch.setattr(cli, "oct10_criteria", lambda *summaries: list(summaries))
    given = {"steps": 3600, "mm_obligations": True}  # the shock starts at step 3000
    result = SimpleNamespace(scenario=load_scenario("oct10", **given), summary=given)
    rows, reference = cli.criteria_for(result, "copy/of/oct10.yaml", 3, given)
    reference_switches = {"collateral_pricing": "internal_book", "mm_obligations": False}
    assert [c[:2] for c in calls] == [("copy/of/oct10.yaml", 3)] * 3
    assert [c[2] for c in calls] == [
        {"steps": 3600, **reference_switches},
        {"steps": 3600, **reference_switches, "collateral_pricing": "conversion"},
        {"steps": 3600, **reference_switches, "mm_obligations": True},
    ]
    assert reference is not result and rows[0] == reference.summary
    calls.clear()  # with the reference switches the main run is the reference
    result = SimpleNamespace(scenario=load_scenario("oct10", steps=3600), summary={})
    rows, reference = cli.criteria_for(result, "oct10", 3, {"steps": 3600})
    assert len(calls) == 2 and reference is result and rows[0] is result.summary
    calls.clear()  # a run that ends before the shock is judged as a calm one
    monkeypatch.setattr(cli, "calm_criteria", lambda summary: ["calm", summary])
    result = SimpleNamespace(scenario=load_scenario("oct10", steps=600), summary={})
    rows, reference = cli.criteria_for(result, "oct10", 3, {"steps": 600})
    assert calls == [] and rows == ["calm", {}] and reference is result


def test_cli_runs_a_renamed_copy_and_says_which_run_the_criteria_read(tmp_path, capsys):
    from mmgym.scenario.__main__ import main
    from mmgym.scenario.config import CONFIG_DIR

    text = (CONFIG_DIR / "oct10.yaml").read_text().replace("name: oct10", "name: copy")
    path, md = tmp_path / "copy.yaml", tmp_path / "copy.md"
    # Short, with the shock inside the run so that the counterfactuals are run.
    path.write_text(text.replace("steps: 9000", "steps: 600").replace("start: 3000", "start: 300"))
    args = [str(path), "--set", "mm_obligations=true", "--report", str(md)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "copy, seed 0: 600 steps" in out and "obligations: smaller depth trough" in out
    assert "criteria read a reference run with collateral_pricing=internal_book" in out
    assert "## Calibration\n\nThe criteria read a reference run" in md.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "steps=[1"], "--set steps: '[1' is not valid YAML"),
        (["--seed", "-1"], "--seed: must be an integer >= 0, got -1"),
        (["--seed", "x"], "--seed: must be an integer >= 0, got 'x'"),
        (["--plot", "no/such/dir/x.png"], "--plot: directory 'no/such/dir' does not exist"),
        (["--report", "no/such/dir/x.md"], "--report: directory 'no/such/dir' does not exist"),
    ],
)
def test_cli_bad_arguments_are_argparse_errors(args, message, capsys):
    from mmgym.scenario.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["calm", *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_config_errors_are_reported(capsys):
    from mmgym.scenario.__main__ import main

    assert main(["calm", "--set", "exchange.markets=null"]) == 2
    assert "exchange.markets must be a list, got None" in capsys.readouterr().err


def test_cli_reads_numbers_in_exponent_form_as_numbers(capsys):
    from mmgym.cli_types import key_value
    from mmgym.scenario.__main__ import main

    assert key_value("population.makers.capital=2e6") == ("population.makers.capital", 2e6)
    assert key_value("steps=6.0e+2") == ("steps", 600.0)
    assert key_value("adl_formula=bitmex") == ("adl_formula", "bitmex")
    assert key_value("name=inf") == ("name", "inf")
    assert main(["calm", "--set", "steps=6e2"]) == 0  # YAML alone reads 6e2 as text
    assert "calm, seed 0: 600 steps" in capsys.readouterr().out


def test_cli_malformed_scenario_file_is_an_error(tmp_path, capsys):
    from mmgym.scenario.__main__ import main

    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nsteps: [1\n")
    assert main([str(path)]) == 2
    assert f"{path}: not valid YAML" in capsys.readouterr().err
