"""data.fill on a hand-made store: mean, ffill (within a day, then training mean), zero; no leaks."""

import pickle

import numpy as np
import pytest

from jsmp.batches.fill import _day_blocks, fill_source, nan_rows
from jsmp.inputs.fill import ffill_days, fill_rows
from jsmp.inputs.spec import InputSpec
from jsmp.inputs.state import OnlineState
from jsmp.run.dataconfig import jsmp_data
from jsmp.store.caches import FFILL_DIR, NAN_ROWS
from jsmp.store.store import Store, StoreWriter

nan = np.nan
# 4 days x 3 rows, 2 features. Days 0-1 train, day 2 gap, day 3 validates (val_frac 0.25, gap 1).
X = np.array([
    [nan, 1.0], [2.0, nan], [nan, 3.5],      # day 0
    [4.0, nan], [nan, nan], [6.0, 5.0],      # day 1
    [nan, 7.0], [8.0, nan], [nan, nan],      # day 2 (gap)
    [nan, nan], [100., 9.0], [nan, nan],     # day 3 (validation): its values must not reach training fills
], dtype=np.float32)
DATE = np.repeat([0, 1, 2, 3], 3)
TRAIN_MEAN = np.array([(2 + 4 + 6) / 3, (1 + 3.5 + 5) / 3], dtype=np.float32)
M0, M1 = TRAIN_MEAN


@pytest.fixture
def hand_store(tmp_path):
    side = {"date": "int32", "weight": "float32", "resp": "float32", "ts_id": "int64"}
    with StoreWriter(tmp_path / "s", ["feature_0", "feature_1"], side, {"kind": "test"}, shard_rows=5) as w:
        w.append(X, {"date": DATE, "weight": np.ones(12), "resp": np.linspace(-1, 1, 12), "ts_id": np.arange(12)})
        return Store(w.close())


def _x(dm, rows):
    """Filled features of store `rows` (all training or all validation rows), as a batch gives them."""
    ds = dm.val_set if rows[0] >= 9 else dm.train_set
    return ds[np.searchsorted(ds.rows, rows)]["x"].numpy()


def _dm(store, fill):
    dm = jsmp_data(store=str(store.path), split={"val_frac": 0.25, "gap_days": 1}, fill=fill, batch_size=4)
    dm.setup("fit")
    assert dm.split.train.tolist() == [0, 1] and dm.split.val.tolist() == [3]
    return dm


def test_mean_fill_uses_training_days_only(hand_store):
    dm = _dm(hand_store, "mean")
    np.testing.assert_allclose(dm.input_spec().values, TRAIN_MEAN)
    np.testing.assert_allclose(_x(dm, np.arange(6))[:, 0], [M0, 2, M0, 4, M0, 6])
    np.testing.assert_allclose(_x(dm, np.arange(9, 12)), [[M0, M1], [100, 9], [M0, M1]])


def test_ffill_within_day_then_training_mean(hand_store):
    dm = _dm(hand_store, "ffill")
    np.testing.assert_allclose(dm.input_spec().values, TRAIN_MEAN)  # the fallback ignores validation days too
    expected_train = [[M0, 1], [2, 1], [2, 3.5],  # day 0: a leading NaN -> mean, later ones carried forward
                      [4, M1], [4, M1], [6, 5]]   # day 1: feature_1 starts NaN -> mean, not day 0's last 3.5
    np.testing.assert_allclose(_x(dm, np.arange(6)), expected_train)
    # day 3 starts NaN: the training mean, never day 2's last values; then 100 carried forward
    np.testing.assert_allclose(_x(dm, np.arange(9, 12)), [[M0, M1], [100, 9], [100, 9]])
    cache = hand_store.path / FFILL_DIR
    assert cache.is_dir() and len(list(cache.glob("features-*.npy"))) == len(hand_store.manifest["shards"])


def test_ffill_is_computed_once_and_memory_mapped(hand_store):
    src, _ = fill_source(hand_store, "ffill", np.array([0, 1]))
    stamp = (hand_store.path / FFILL_DIR / "features-00000.npy").stat().st_mtime_ns
    src2, _ = fill_source(hand_store, "ffill", np.array([0]))
    assert (hand_store.path / FFILL_DIR / "features-00000.npy").stat().st_mtime_ns == stamp
    assert isinstance(src2.shards[0], np.memmap)
    clone = pickle.loads(pickle.dumps(src))  # what DataLoader workers get
    np.testing.assert_array_equal(clone.gather(np.arange(12)), src.gather(np.arange(12)))
    assert np.isnan(clone.gather(np.array([0, 9])))[:, 0].all()  # day-start NaNs stay for the mean


def test_zero_fill(hand_store):
    dm = _dm(hand_store, "zero")
    np.testing.assert_array_equal(_x(dm, np.arange(3)), [[0, 1], [2, 0], [0, 3.5]])


def test_ffill_days_matches_pandas_groupby_ffill():
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 7)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = np.nan
    day = np.sort(rng.integers(0, 20, 500))
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    expected = pd.DataFrame(x).groupby(day).ffill().to_numpy()
    np.testing.assert_array_equal(ffill_days(x, starts), expected)
    bounds = np.r_[starts, 500]
    blocks = list(_day_blocks(bounds, 60))
    assert blocks[0][0] == 0 and blocks[-1][1] == 500 and all(b[1] in bounds for b in blocks)
    glued = np.concatenate([ffill_days(x[a:b], s) for a, b, s in blocks])
    np.testing.assert_array_equal(glued, expected)


def test_nan_rows_flags_are_cached_in_the_store(hand_store):
    flags = nan_rows(hand_store)
    np.testing.assert_array_equal(flags, np.isnan(X).any(axis=1))
    assert (hand_store.path / NAN_ROWS).is_file()
    assert isinstance(nan_rows(hand_store), np.memmap)  # later calls map the cache
    filled_store = fill_source(hand_store, "ffill", np.array([0, 1]))[0]
    np.testing.assert_array_equal(nan_rows(filled_store), flags)  # the raw rows' flags: a superset


def test_one_ffill_rule_for_blocks_and_rows():
    """ffill_days (store cache, batch prediction) and OnlineState (serving, row by row) apply the
    same compiled rule; ffill_days leaves its input as it was, read-only too (a memmap)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 5)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = np.nan
    starts = np.array([0, 1, 40, 41, 200])
    raw = x.copy()
    raw.flags.writeable = False
    block = ffill_days(raw, starts)
    np.testing.assert_array_equal(raw, x)
    np.testing.assert_array_equal(np.isnan(block[starts]), np.isnan(x[starts]))  # nothing carried into a day
    names = [f"f{j}" for j in range(5)]
    spec = InputSpec(names, "ffill", [0.5, 1.5, 2.5, 3.5, 4.5], targets=["resp"], task="action", ffill=names)
    state, rows = OnlineState(spec), x.copy()
    for i, row in enumerate(rows):
        state.row(row, i in starts)
    np.testing.assert_array_equal(rows, fill_rows(x.copy(), starts, spec))
    np.testing.assert_array_equal(rows, np.where(np.isnan(block), spec.values, block))


def test_a_full_disk_while_caching_the_ffill_is_one_line_and_leaves_no_temp(hand_store, monkeypatch, capsys):
    """The cache's space is reserved before it is memory-mapped: a full disk is an OSError to report,
    not a SIGBUS (Bus error, exit 135) with a temp left behind."""
    import errno
    import os
    import re

    from jsmp.batches.fill import ffill_store
    from jsmp.data.__main__ import main
    from jsmp.errors import UserError

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    message = (rf"store {re.escape(str(hand_store.path))}: disk full while writing the forward-fill cache fill-ffill/ \(needs 0\.0 MB, "
               rf"[\d.]+ [MG]B free in {re.escape(str(hand_store.path))}\); free some space there and run again")
    with pytest.raises(UserError, match=f"^{message}$"):
        ffill_store(hand_store)
    assert not [p for p in hand_store.path.iterdir() if p.name.startswith(".")]
    monkeypatch.undo()
    ffill_store(hand_store)
    (hand_store.path / FFILL_DIR / "manifest.json").write_text("{}")  # stale: verify --rebuild-caches rebuilds it
    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(SystemExit) as e:
        main(["verify", str(hand_store.path), "--rebuild-caches"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and re.fullmatch(f"error: {message}\n", err), err
    assert sorted(p.name for p in hand_store.path.iterdir() if p.name.startswith(".")) == []


def test_preallocate_writes_zeros_where_the_file_system_cannot_reserve(tmp_path, monkeypatch):
    import errno
    import os

    from jsmp.files import preallocate

    def unsupported(fd, offset, size):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    with open(tmp_path / "f", "wb") as f:
        preallocate(f, 3 << 20 | 5)
    assert (tmp_path / "f").read_bytes() == bytes(3 << 20 | 5)
