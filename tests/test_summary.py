"""The thin alt's depth figures against hand-computed cases."""

import math

import numpy as np
import pytest

from mmgym.scenario.summary import depth_figures


def test_depth_reads_minute_means_at_one_second_steps():
    # Minute 0 full; minute 1 full but for one empty second; minute 2 thin;
    # minutes 3 and 4 refill.
    depth = np.concatenate(
        [
            np.full(60, 100.0),
            [0.0],
            np.full(59, 100.0),
            np.full(60, 10.0),
            np.full(60, 50.0),
            np.full(60, 90.0),
        ]
    )
    out = depth_figures(depth, depth_pre=100.0, start=60, major_low_step=130, dt=1.0)
    assert out["alt_depth_drop"] == pytest.approx(0.9)  # minute 2's mean, 10
    assert out["alt_depth_drop_1s"] == 1.0  # the empty second
    assert out["depth_low_minute"] == 2.0
    # From minute 2 (the low's): 10, 50, then 90 >= 80 two minutes on.
    assert out["depth_recovery_minutes"] == 2.0


def test_depth_steps_longer_than_a_minute_are_read_as_they_are():
    depth = np.array([100.0, 100.0, 5.0, 90.0])
    out = depth_figures(depth, depth_pre=100.0, start=1, major_low_step=2, dt=120.0)
    assert out["alt_depth_drop"] == pytest.approx(0.95)
    assert out["alt_depth_drop_1s"] == pytest.approx(0.95)
    assert out["depth_low_minute"] == 4.0
    assert out["depth_recovery_minutes"] == 2.0


def test_depth_that_never_recovers_or_never_existed():
    depth = np.concatenate([np.full(60, 100.0), np.full(120, 70.0)])
    out = depth_figures(depth, depth_pre=100.0, start=60, major_low_step=60, dt=1.0)
    assert out["depth_recovery_minutes"] == math.inf
    empty = depth_figures(np.zeros(120), depth_pre=0.0, start=60, major_low_step=60, dt=1.0)
    assert math.isnan(empty["alt_depth_drop"]) and math.isnan(empty["alt_depth_drop_1s"])


def test_depth_of_a_run_shorter_than_a_minute_is_one_partial_minute():
    depth = np.array([100.0, 40.0, 70.0, 90.0])
    out = depth_figures(depth, depth_pre=100.0, start=1, major_low_step=1, dt=1.0)
    assert out["alt_depth_drop"] == pytest.approx(0.25)  # the mean of all four steps, 75
    assert out["alt_depth_drop_1s"] == pytest.approx(0.6)
    assert out["depth_recovery_minutes"] == math.inf
