"""mmgym.experiments.incentives: arguments are checked before anything is written."""

import pytest

from mmgym.experiments.incentives import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-seeds", "0", "-1"], "--train-seeds must be in [0, 2**32 - 1], got -1"),
        (["--eval-seeds", str(2**32)], f"--eval-seeds must be in [0, 2**32 - 1], got {2**32}"),
        (["--train-seeds", "3", "4", "3"], "--train-seeds must not repeat a seed, got [3, 4, 3]"),
        (["--eval-seeds", "7", "7"], "--eval-seeds must not repeat a seed"),
        (["--n-envs", "0"], "--n-envs must be >= 1 and <= 4096, got 0"),
        (["--n-envs", "5000"], "--n-envs must be >= 1 and <= 4096, got 5000"),
        (["--total-timesteps", "-3"], "--total-timesteps must be >= 1"),
    ],
)
def test_bad_arguments_fail_before_the_output_directory(args, message, capsys, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", *args, "--out", str(out)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_output_directory_with_a_used_run_fails_before_training(capsys, tmp_path):
    """A clash on the last regime's run is found before the first regime trains."""
    out = tmp_path / "out"
    used = out / "runs" / "liability-0"
    used.mkdir(parents=True)
    (used / "model.zip").write_text("an earlier run")
    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", "--out", str(out)])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--out: {used} exists and is not empty" in last
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["liability-0"]
