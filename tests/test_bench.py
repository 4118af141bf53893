"""mmgym.bench arguments."""

import pytest

from mmgym.bench import main


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
