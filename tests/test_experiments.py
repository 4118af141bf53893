"""The incentive experiment's quick mode, end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmgym.experiments.incentives import EVAL_SCENARIOS, REGIMES, TABLE

ROOT = Path(__file__).resolve().parent.parent


COMMAND = [sys.executable, "-m", "mmgym.experiments.incentives", "--quick", "--no-progress"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment") / "incentives"
    subprocess.run([*COMMAND, "--out", str(out)], cwd=ROOT, check=True, timeout=600)
    return out


@pytest.mark.smoke
def test_quick_experiment_writes_table_figures_and_json(quick_run):
    out = quick_run
    results = json.loads((out / "results.json").read_text())
    policies = {"ppo", "always_quote", "avellaneda_stoikov", "withdraw_on_stress", "random"}
    for scenario in EVAL_SCENARIOS:
        for regime in REGIMES:
            table = results["rows"][scenario][regime]
            assert set(table) == policies
            assert len(table["ppo"]) == len(results["budget"]["train_seeds"])
            assert len(table["random"]) == len(results["budget"]["eval_seeds"])
            for rows in table.values():
                for row in rows:
                    assert {key for key, _ in TABLE} <= set(row)
    # Every regime has its trained maker, its figure and its rows in the table.
    text = (out / "results.md").read_text()
    for regime in REGIMES:
        assert (out / f"{regime}.png").stat().st_size > 10_000
        assert (out / "runs" / f"{regime}-0" / "model.zip").is_file()
        assert text.count(f"| {regime} | ppo |") == len(EVAL_SCENARIOS)
        assert text.count(f"| {regime} | 0 |") == len(EVAL_SCENARIOS)  # per training seed
    # The oct10 window reaches the shock: the stress indicator turns on.
    assert max(results["series"]["freedom"]["stressed"]) == 1
    # Each run directory records the experiment's command, as results.json does.
    command = f"python -m mmgym.experiments.incentives --quick --no-progress --out {out}"
    assert results["command"] == command
    assert (out / "runs" / "freedom-0" / "command.txt").read_text().strip() == command


@pytest.mark.smoke
def test_quick_experiment_rows_are_the_evaluations_they_report(quick_run):
    """A baseline's rows and a trained maker's means, recomputed with ``evaluate``."""
    import math

    import numpy as np

    from agents.baselines import make_baseline
    from agents.evaluation import METRICS, evaluate
    from agents.runs import load_run
    from mmgym.env.batch import agent_setup
    from mmgym.experiments.incentives import QUICK, env_kwargs
    from mmgym.scenario.runner import load_scenario

    results = json.loads((quick_run / "results.json").read_text())
    seeds = tuple(results["budget"]["eval_seeds"])
    scenario, regime = "oct10", "obligation"
    kwargs = env_kwargs(scenario, QUICK)
    rows = results["rows"][scenario][regime]

    def same(reported, computed):
        for key in METRICS:
            a, b = reported[key], computed[key]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9), key
        total = computed["liq_notional_long"] + computed["liq_notional_short"]
        assert reported["liq_notional"] == pytest.approx(total, rel=1e-9)

    policy = make_baseline("always_quote", agent_setup(load_scenario(scenario), **kwargs))
    direct = evaluate(policy, scenario, regime, seeds, **kwargs)
    for reported, computed in zip(rows["always_quote"], direct.rows, strict=True):
        same(reported, computed)
    trained = load_run(quick_run / "runs" / f"{regime}-0").policy
    direct = evaluate(trained, scenario, regime, seeds, **kwargs)
    means = {k: float(np.nanmean([r[k] for r in direct.rows])) for k in METRICS}
    same(rows["ppo"][0], means)


@pytest.mark.smoke
def test_training_in_parallel_processes_gives_the_same_results(quick_run, tmp_path):
    out = tmp_path / "parallel"
    subprocess.run([*COMMAND, "--jobs", "2", "--out", str(out)], cwd=ROOT, check=True, timeout=600)
    parallel = json.loads((out / "results.json").read_text())
    serial = json.loads((quick_run / "results.json").read_text())
    assert parallel["rows"] == serial["rows"]
    assert parallel["series"] == serial["series"]


def test_jobs_must_be_positive(capsys):
    from mmgym.experiments.incentives import main

    with pytest.raises(SystemExit):
        main(["--quick", "--jobs", "0"])
    assert "--jobs must be >= 1" in capsys.readouterr().err


def test_regimes_must_be_known(capsys):
    from mmgym.experiments.incentives import main

    with pytest.raises(SystemExit):
        main(["--quick", "--regimes", "obligation", "anarchy"])
    err = capsys.readouterr().err
    assert "--regimes" in err and "anarchy" in err


def test_a_bad_config_fails_before_training(capsys, tmp_path):
    from mmgym.experiments.incentives import main

    bad = tmp_path / "ppo.yaml"
    bad.write_text("default:\n  policy: MlpPolicy\nmmgym/MarketMaking-v0:\n  n_stepz: 64\n")
    with pytest.raises(SystemExit):
        main(["--quick", "--config", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "--config" in err and "n_stepz" in err
    assert not (tmp_path / "out").exists()
