"""Batches of a grouped store (instruments side by side): windows equal naive per-instrument
slices of a pandas frame of the same rows (instruments entering mid-day or missing a day, their
first rows, windows across days, a shard each, with and without cross_days); lag features."""

import dataclasses

import numpy as np
import pytest
from grouped import FEATURES, grouped_frame, write_grouped

from jsmp.batches.datamodule import batches
from jsmp.batches.labels import Labels
from jsmp.inputs.spec import InputSpec
from jsmp.inputs.windows import window_index
from jsmp.models.lstm import LSTM
from jsmp.run.dataconfig import jsmp_data
from jsmp.store.store import Store, StoreWriter

W = 6  # instruments have 8 rows a day: windows reach into the day before


def naive_window(frame, full, fill, t, cross_days):
    """The window of store row t by slicing t's instrument's rows of the frame: its last W rows up
    to t (of t's day only without cross_days), NaNs filled, left-padded with zeros."""
    own = frame.index[frame.symbol_id == frame.symbol_id[t]]
    if not cross_days:
        own = own[frame.date[own] == frame.date[t]]
    own = own[own <= t][-W:]
    x = np.where(np.isnan(full), fill, full)[own]
    pad = W - len(own)
    return np.concatenate([np.zeros((pad, full.shape[1]), np.float32), x]), np.arange(W) >= pad


@pytest.mark.parametrize("fill", ["mean", "ffill"])
@pytest.mark.parametrize("cross_days", [True, False])
def test_windows_equal_naive_per_instrument_slices(tmp_path, fill, cross_days):
    frame = grouped_frame()
    store = write_grouped(tmp_path / "s", frame)
    dm = jsmp_data(store=str(store.path), split={"val_frac": 0.4, "gap_days": 0}, batch_size=16, eval_batch_size=50,
                   fill=fill, window={"length": W, "cross_days": cross_days})
    dm.connect(LSTM)
    dm.setup("fit")
    full = np.concatenate([np.asarray(sh) for sh in dm.train_set.store.shards])  # the fill's source (ffill: filled)
    value = np.asarray(dm.input_spec().values, np.float32)
    for data in (dm.train_set, dm.val_set):
        positions = np.random.default_rng(0).permutation(len(data))  # the order batches take them in
        batch = data[positions]  # pos/first from the split's table
        looked_up = data.inputs(data.rows[positions])  # looked up per call
        assert batch["x"].shape == (len(data), W, store.n_features)
        for i, t in enumerate(data.rows[positions]):
            x, mask = naive_window(frame, full, value, t, cross_days)
            for got in (batch, looked_up):
                np.testing.assert_array_equal(got["x"][i].numpy(), x, err_msg=f"row {t}")
                np.testing.assert_array_equal(got["mask"][i].numpy(), mask, err_msg=f"row {t}")
    assert not dm.train_set.table.take(np.arange(3)).keys() - {"row", "pos", "first", "has_nan", "y"}
    firsts = frame.groupby("symbol_id").head(1).index  # each instrument's first row: only itself in its window
    assert (dm.train_set.inputs(firsts)["mask"].numpy().sum(1) == 1).all()


def test_the_one_group_index_is_the_row_arithmetic():
    """window_index through a group order equals the rows' arithmetic mapped through it; with no order, the rows'."""
    order = np.array([4, 0, 2, 5, 1, 3])  # two groups: positions 0..2 and 3..5
    idx, mask = window_index(np.array([2, 4]), 3, first=np.array([0, 3]), order=order)
    np.testing.assert_array_equal(idx, [[4, 0, 2], [5, 5, 1]])
    np.testing.assert_array_equal(mask, [[True, True, True], [False, True, True]])
    rows, mask = window_index(np.array([2, 4]), 3, first=np.array([0, 3]))
    np.testing.assert_array_equal(rows, [[0, 1, 2], [3, 3, 4]])


def test_lag_features_follow_the_features_and_regression_labels_stay_values(tmp_path):
    """RowBatches with `lags` (a store of the same rows) gathers x (B, F + L), each part with its own
    fill values and NaNs filled in every lag row, in rows and windows; regression labels are float."""
    frame = grouped_frame()
    store = write_grouped(tmp_path / "s", frame)
    lag = np.random.default_rng(5).normal(size=(len(frame), 2)).astype(np.float32)
    lag[::3, 0] = np.nan
    with StoreWriter(tmp_path / "lags", ["responder_6_lag_1", "responder_7_lag_1"], {"date": "int32"}, {"kind": "test"}) as w:
        w.append(lag, {"date": frame.date.to_numpy()})
        lags = Store(w.close())
    value = np.arange(len(FEATURES) + 2, dtype=np.float32) + 10
    full = np.where(np.isnan(frame[FEATURES]), value[:3], frame[FEATURES]), np.where(np.isnan(lag), value[3:], lag)
    full = np.concatenate(full, axis=1)
    rows = np.arange(20, 60)
    labels = Labels(store, ["resp"], task="regression")
    spec = InputSpec([*FEATURES, *lags.features], "mean", value.tolist(), targets=["resp"], task="regression", ffill=[],
                     lag_features=list(lags.features))
    b = batches(store, rows, spec, labels, scoring=True, lags=lags)[np.arange(len(rows))]
    np.testing.assert_array_equal(b["x"].numpy(), full[rows])
    np.testing.assert_array_equal(b["y"].numpy(), frame.resp[rows])  # the values, not resp > 0
    np.testing.assert_array_equal(b["resp"].numpy(), frame.resp[rows])
    windowed = dataclasses.replace(spec, window={"length": W, "cross_days": True})
    x = batches(store, rows, windowed, labels, scoring=False, lags=lags)[np.arange(len(rows))]["x"].numpy()
    for i, t in enumerate(rows):
        np.testing.assert_array_equal(x[i], naive_window(frame, full, value, t, True)[0])
    with pytest.raises(ValueError, match="spec has 3 fill values for 3 \\+ 2 features"):
        batches(store, rows, dataclasses.replace(spec, features=FEATURES, fill_value=value[:3].tolist(), lag_features=[]), labels, lags=lags)
