"""StepPredictor's reading of test frames (jsmp.predict.grouped.FrameColumns): the values of frame_matrix, from
pandas (converted whole, or selected when a column is not numeric) and polars frames; a missing column is one line."""

import numpy as np
import pandas as pd
import polars as pl
import pytest

from jsmp.errors import UserError
from jsmp.predict.grouped import FrameColumns, frame_matrix

NAMES = ["feature_01", "feature_00", "feature_02"]


def frame() -> pd.DataFrame:
    return pd.DataFrame({"row_id": np.array([7, 8, 2**62], np.int64), "time_id": np.array([3, 3, 3], np.int32),
                         "feature_00": np.array([0.1, np.nan, -2.5], np.float32),
                         "feature_01": np.array([1e10, 0.3, 7.0]),  # float64: cast to float32 as frame_matrix casts
                         "feature_02": pd.array([1.5, None, 2.0], dtype="Float32"),  # a nullable column: null -> NaN
                         "is_scored": [True, False, True]})


@pytest.mark.parametrize("extra", [None, "text", "dates"])
def test_a_pandas_frame_reads_as_frame_matrix_reads_it(extra):
    df = frame()
    if extra == "text":  # not numeric: the frame cannot be converted whole, the names are selected
        df["note"] = ["a", "b", "c"]
    elif extra == "dates":
        df["when"] = pd.to_datetime(["2024-01-01"] * 3)
    reader = FrameColumns(NAMES, ["row_id", *NAMES], "test_df")
    for _ in range(2):  # the second frame of the layout: its conversion already known to work or not
        reader.check(df)
        got = reader.matrix(df)
        assert got.dtype == np.float32 and got.shape == (3, 3)
        np.testing.assert_array_equal(got, frame_matrix(df, NAMES))
        assert np.isnan(got[1, 1]) and np.isnan(got[1, 2]) and got[0, 0] == np.float32(1e10)
    assert reader.whole == (extra != "text")  # dates convert (their nanoseconds, unread)


def test_a_polars_frame_and_a_new_layout_are_read_as_frame_matrix_reads_them():
    reader = FrameColumns(NAMES, ["row_id", *NAMES], "test_df")
    df = frame()
    for other in (pl.from_pandas(df), df[["feature_02", "row_id", "feature_00", "feature_01"]], df):
        reader.check(other)
        np.testing.assert_array_equal(reader.matrix(other), frame_matrix(other, NAMES))


def test_a_missing_column_is_one_line_whenever_the_layout_changes():
    reader = FrameColumns(NAMES, ["row_id", *NAMES], "test_df")
    reader.check(frame())
    with pytest.raises(UserError, match=r"^test_df: missing column\(s\) the model needs: feature_00$"):
        reader.check(frame().drop(columns="feature_00"))
    with pytest.raises(UserError, match=r"^test_df: missing column\(s\) the model needs: row_id$"):
        reader.check(pl.from_pandas(frame()).drop("row_id"))
