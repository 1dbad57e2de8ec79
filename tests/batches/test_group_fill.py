"""data.fill=ffill on a grouped store fills each instrument from its own earlier rows of the day,
never from another instrument's: pandas' groupby (symbol_id, date) ffill of the same rows."""

import numpy as np
from grouped import FEATURES, grouped_frame, write_grouped

from jsmp.batches import fill
from jsmp.batches.fill import ffill_store
from jsmp.inputs.fill import ffill_days


def _expected(frame):
    return frame.groupby(["symbol_id", "date"])[FEATURES].ffill().to_numpy(np.float32)


def test_ffill_days_per_group_matches_pandas():
    frame = grouped_frame(seed=1)
    starts = np.flatnonzero(np.r_[True, np.diff(frame.date) != 0])
    group = np.searchsorted(np.unique(frame.symbol_id), frame.symbol_id).astype(np.int32)
    x = frame[FEATURES].to_numpy()
    got = ffill_days(x, starts, group)
    np.testing.assert_array_equal(got, _expected(frame))
    one_group = ffill_days(x, starts)  # the store-wide rule would fill from other instruments' rows
    assert np.isnan(got).sum() > np.isnan(one_group).sum()


def test_the_ffill_cache_of_a_grouped_store_fills_within_each_instrument(tmp_path, monkeypatch):
    monkeypatch.setattr(fill, "FFILL_BLOCK_ROWS", 40)  # blocks of a day or two inside shards of about three
    frame = grouped_frame(seed=2)
    store = write_grouped(tmp_path / "s", frame, shard_rows=100)
    assert len(store.manifest["shards"]) >= 2
    filled = ffill_store(store)
    got = np.concatenate([np.asarray(sh) for sh in filled.shards])
    np.testing.assert_array_equal(got, _expected(frame))
    assert np.isnan(got).any()  # an instrument's NaNs before its first value of the day stay NaN
