"""The previous-date lag rule, once (docs/rtmdf.md): a row of date D gets, as its lag features
`responder_N_lag_1` (names: jsmp.data.schema `lag_name`, `is_lag`), the responders of the row with
the same key (time_id, instrument) on date D - 1; NaN where that row, or date D - 1, is absent.

Two halves, used by every place that applies the rule: which date's rows are a date's lags
(`is_lag_date`: a replay's and the synthetic lags.parquet's frames), and which of them is a row's
(`KeyIndex`, by `lag_key`: serving's lookup in lags_df, a replay's cross-check of a lags file);
training's lag cache applies both at once (`previous_date_rows`).
"""

from __future__ import annotations

import numpy as np


def is_lag_date(prev: int, date: int) -> bool:
    """Whether date `prev`'s responders are date `date`'s lags: `prev` is the date before, date - 1."""
    return prev == date - 1


def lag_key(time_id, instrument) -> np.ndarray:
    """(n,) int64: one key per (time_id, instrument) pair of int32 values (n,) each, time_id in the
    high 32 bits; ordered as the pairs are for instruments >= 0."""
    return np.asarray(time_id, np.int64) << 32 | np.asarray(instrument, np.int64) & 0xFFFFFFFF


class KeyIndex:
    """One date's rows by key (`lag_key` of their time_id and instrument, (n,) each), to find the row
    with a query row's key: `rows(time_id, instrument)`."""

    def __init__(self, time_id, instrument):
        keys = lag_key(time_id, instrument)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, time_id, instrument) -> np.ndarray:
        """(m,) int64: for each query (time_id, instrument) (m,), the indexed row with its key (the
        first of several), -1 where there is none."""
        out = np.full(len(time_id), -1, dtype=np.int64)
        if len(self.keys) == 0:
            return out
        keys = lag_key(time_id, instrument)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[at] == keys
        out[hit] = self.order[at[hit]]
        return out


def previous_date_rows(date: int, time_id, instrument, prev: tuple[int, KeyIndex] | None) -> np.ndarray:
    """The rule for the rows of `date` (their time_id and instrument, (n,) each): (n,) int64, the row
    of the previous date with the same key, from `prev` = (a date, its rows' KeyIndex); -1 where it
    has none, and everywhere when `prev` is None or not date - 1."""
    if prev is None or not is_lag_date(prev[0], date):
        return np.full(len(time_id), -1, dtype=np.int64)
    return prev[1].rows(time_id, instrument)
