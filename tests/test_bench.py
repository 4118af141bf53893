"""mmgym.bench arguments."""

import pytest

from mmgym.bench import bench_reference, main


@pytest.mark.parametrize(
    "flag",
    ["--repeat", "--steps", "--env-steps", "--events", "--accounts", "--vector-envs"],
)
@pytest.mark.parametrize("value", ["0", "-5", "x"])
def test_counts_must_be_positive(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be a positive integer" in err


def test_env_figures_take_scenario_overrides(capsys):
    args = ["--only", "env", "--env-steps", "40", "--vector-envs", "2", "--repeat", "1"]
    main([*args, "--set", "population.makers.firms=0"])
    assert "vector env N=2" in capsys.readouterr().out
    for bad, message in (("population.makers.firms=-1", "firms"), ("firms", "key=value")):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--set", bad])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "engine", "--set", "population.makers.firms=0"])
    assert exit_info.value.code == 2
    assert "--only engine runs none" in capsys.readouterr().err


def test_the_benchmarks_book_stream_ends_as_the_reference_books_does():
    """The jitted book and the pure-Python one, fed the same mixed stream, end with the
    same levels, prices and lots, on both sides."""
    assert bench_reference(20_000, seed=3)["books_agree"]
