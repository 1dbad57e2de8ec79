import numpy as np
import pytest
import torch

from jsmp.batches.sampler import BatchIndexSampler
from jsmp.errors import UserError
from jsmp.run.dataconfig import jsmp_data
from jsmp.store.store import Store


def _dm(store, **kw):
    dm = jsmp_data(store=str(store), split={"val_frac": 0.2, "gap_days": 2}, batch_size=64, eval_batch_size=100, **kw)
    dm.setup("fit")
    return dm


def test_batches_are_the_store_rows_with_train_mean_fill(tiny_store):
    dm = _dm(tiny_store)
    s = Store(tiny_store)
    full = np.concatenate([np.asarray(sh) for sh in s.shards])
    train_rows = s.day_rows(dm.split.train)
    expected_mean = np.nanmean(full[train_rows].astype(np.float64), axis=0)
    np.testing.assert_allclose(dm.input_spec().values, expected_mean, rtol=1e-5)
    # validation-day values must not leak into the fill: it differs from the all-days mean
    assert not np.allclose(dm.input_spec().values[7], np.nanmean(full[:, 7]), rtol=1e-6)

    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (64, s.n_features) and batch["x"].dtype.is_floating_point
    # recover rows: every gathered row equals the filled store row of a training day
    rows = dm.train_set.rows
    assert np.all(s.side("weight")[rows] > 0)  # weight-0 rows left out of training
    assert set(np.unique(s.row_day_index()[rows])) <= set(dm.split.train.tolist())
    x = full[rows[:64]].copy()
    x = np.where(np.isnan(x), dm.input_spec().values, x)
    np.testing.assert_array_equal(dm.train_set[np.arange(64)]["x"].numpy(), x)
    assert not np.isnan(batch["x"].numpy()).any()
    first = dm.train_set[np.arange(64)]
    np.testing.assert_array_equal(first["y"].numpy(), (s.side("resp")[rows[:64]] > 0).astype(np.float32))
    # training batches carry what training uses; validation batches add what the utility needs
    assert set(batch) == {"x", "y"}
    val = dm.val_set[np.arange(64)]
    assert set(val) == {"x", "y", "weight", "resp", "day"}
    val_rows = dm.val_set.rows[:64]
    np.testing.assert_array_equal(val["resp"].numpy(), s.side("resp")[val_rows])
    np.testing.assert_array_equal(val["weight"].numpy(), s.side("weight")[val_rows])
    np.testing.assert_array_equal(val["day"].numpy(), s.row_day_index()[val_rows])
    assert val["day"].dtype == torch.int64


def test_validation_keeps_every_row_of_val_days(tiny_store):
    dm = _dm(tiny_store)
    s = Store(tiny_store)
    val_rows = np.concatenate([b["day"].numpy() for b in dm.val_dataloader()])
    assert len(val_rows) == len(s.day_rows(dm.split.val))
    assert (s.side("weight")[dm.val_set.rows] == 0).any()
    assert np.all(np.diff(val_rows) >= 0)


def test_frac_and_bad_options(tiny_store):
    dm = _dm(tiny_store, frac=0.5)
    assert dm.split.val.max() == 29 and dm.split.train.min() == 15
    with pytest.raises(UserError, match="data.frac"):
        _dm(tiny_store, frac=0)
    with pytest.raises(UserError, match="data.fill"):
        _dm(tiny_store, fill="median")


def test_sampler_deterministic_per_epoch_and_rank_disjoint():
    a = BatchIndexSampler(1000, 64, shuffle=True, seed=5)
    first = [b.copy() for b in a]
    again = list(BatchIndexSampler(1000, 64, shuffle=True, seed=5))
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    a.set_epoch(1)
    assert not np.array_equal(np.concatenate(first), np.concatenate(list(a)))
    assert sorted(np.concatenate(first).tolist()) == list(range(1000))
    assert all(np.all(np.diff(b) > 0) for b in first)
    shares = [np.concatenate(list(BatchIndexSampler(1000, 64, True, seed=5, rank=r, world_size=4))) for r in range(4)]
    assert all(len(s) == 250 for s in shares)
    assert len(np.unique(np.concatenate(shares))) == 1000
    assert len(BatchIndexSampler(1000, 64, True, rank=1, world_size=4)) == 4


def test_fold_replaces_the_holdout(tiny_store):
    from jsmp.batches.splits import purged_fold

    dm = jsmp_data(store=str(tiny_store), cv={"folds": 3, "gap_days": 2}, fold=1, batch_size=64)
    dm.setup("fit")
    expected = purged_fold(Store(tiny_store).n_days, 1, folds=3, gap_days=2)
    np.testing.assert_array_equal(dm.split.val, expected.val)
    np.testing.assert_array_equal(dm.split.train, expected.train)
    days = Store(tiny_store).row_day_index()
    assert set(days[dm.val_set.rows]) == set(expected.val.tolist())
