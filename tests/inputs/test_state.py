"""OnlineState (jsmp.inputs.state): the one-instrument fast path (2021 rows) serves exactly what the
many-instrument path (2024 time steps) serves for one key, which is what training's fill and
windows give (tests/predict: serving equals the validation batches)."""

import numpy as np
import pytest

from jsmp.inputs.fill import fill_rows
from jsmp.inputs.spec import InputSpec
from jsmp.inputs.state import OnlineState


@pytest.mark.parametrize("fill", ["ffill", "mean"])
@pytest.mark.parametrize("window", [None, {"length": 4, "cross_days": True}, {"length": 4, "cross_days": False}])
def test_one_row_at_a_time_equals_one_key_per_time_step(fill, window):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((60, 3)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = np.nan
    day = np.repeat([3, 4, 6, 7], [1, 20, 25, 14])  # a one-row day first
    names = ["a", "b", "c"]
    spec = InputSpec(names, fill, [0.5, 1.5, 2.5], window, targets=["resp"], task="action",
                     ffill=names[:2] if fill == "ffill" else [])  # c is not forward-filled (as a lag feature)
    by_row, by_step = OnlineState(spec), OnlineState(spec)
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    rows = x.copy()
    for i in range(len(x)):
        by_row.row(rows[i], i in starts)
        step = by_step.inputs(int(day[i]), np.array([12]), x[i : i + 1].copy())
        if window is None:
            np.testing.assert_array_equal(step["x"][0], rows[i])
        else:
            np.testing.assert_array_equal(step["x"][0], by_row.win)
            np.testing.assert_array_equal(step["mask"][0], by_row.mask)
    np.testing.assert_array_equal(rows, fill_rows(x.copy(), starts, spec))  # the batch rule: c not forward-filled
    assert not np.isnan(rows).any()


def test_reset_forgets_every_instrument():
    spec = InputSpec(["a"], "ffill", [9.0], {"length": 2, "cross_days": True}, targets=["resp"], task="action", ffill=["a"])
    state = OnlineState(spec)
    state.inputs(0, np.array([1, 2]), np.array([[1.0], [2.0]], np.float32))
    state.reset()
    b = state.inputs(0, np.array([2]), np.array([[np.nan]], np.float32))
    np.testing.assert_array_equal(b["x"], [[[0.0], [9.0]]])
    np.testing.assert_array_equal(b["mask"], [[False, True]])
