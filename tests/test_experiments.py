"""The incentive experiment's quick mode, end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmgym.experiments.incentives import EVAL_SCENARIOS, REGIMES, TABLE

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.smoke
def test_quick_experiment_writes_table_figures_and_json(tmp_path):
    out = tmp_path / "incentives"
    command = [sys.executable, "-m", "mmgym.experiments.incentives", "--quick", "--no-progress"]
    subprocess.run([*command, "--out", str(out)], cwd=ROOT, check=True, timeout=600)
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
    # The oct10 window reaches the shock: the stress indicator turns on.
    assert max(results["series"]["freedom"]["stressed"]) == 1
