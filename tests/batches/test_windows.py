"""Windows gathered by index arithmetic equal naive slices of the whole feature array."""

import numpy as np
import pytest
import torch

from jsmp.batches.fill import FilledStore
from jsmp.batches.sampler import BatchIndexSampler
from jsmp.errors import UserError
from jsmp.inputs.windows import WindowSpec, window_index, window_positions, window_start
from jsmp.models.lstm import LSTM
from jsmp.run.dataconfig import jsmp_data
from jsmp.store.store import Store

W = 12


def _dm(store, fill="mean", **window):
    dm = jsmp_data(store=str(store), split={"val_frac": 0.2, "gap_days": 2}, batch_size=64, fill=fill,
                   eval_batch_size=100, window={"length": W, **window})
    dm.connect(LSTM)  # a sequence model: windows
    dm.setup("fit")
    return dm


def _naive(full, fill, t, first):
    """The window of row t by slicing: rows max(first, t-W+1)..t, left-padded with zeros."""
    rows = np.where(np.isnan(full), fill, full)[max(first, t - W + 1) : t + 1]
    return np.concatenate([np.zeros((W - len(rows), full.shape[1]), np.float32), rows]), np.arange(W) >= W - len(rows)


def _check(dm, store, targets, cross_days):
    # the fill's source: the store itself, or its forward-filled copy with data.fill=ffill
    full = np.concatenate([np.asarray(sh) for sh in dm.train_set.store.shards])
    day_of = store.row_day_index()
    got = dm.train_set.inputs(targets)
    assert got["x"].shape == (len(targets), W, store.n_features) and got["mask"].shape == (len(targets), W)
    for i, t in enumerate(targets):
        first = 0 if cross_days else int(store.day_offsets[day_of[t]])
        x, mask = _naive(full, dm.input_spec().values, int(t), first)
        np.testing.assert_array_equal(got["x"][i].numpy(), x, err_msg=f"row {t}")
        np.testing.assert_array_equal(got["mask"][i].numpy(), mask, err_msg=f"row {t}")


def _targets(store):
    rng = np.random.default_rng(0)
    shard_edges = store.shard_starts[1:]
    assert len(shard_edges) >= 3  # the tiny store has several shards
    return np.unique(np.concatenate([
        rng.integers(0, store.n_rows, 40),                         # random rows
        store.day_offsets[:-1], store.day_offsets[1:-1] + 3,       # day starts and just after
        shard_edges, shard_edges + 1, shard_edges + W // 2,        # windows across shard boundaries
        [0, 1, W - 1, store.n_rows - 1],                           # before the store's first row
    ]))


@pytest.mark.parametrize("cross_days", [True, False])
def test_windows_equal_naive_slices(tiny_store, cross_days):
    store = Store(tiny_store)
    _check(_dm(tiny_store, cross_days=cross_days), store, _targets(store), cross_days)


def test_windows_read_the_forward_filled_store(tiny_store):
    store = Store(tiny_store)
    dm = _dm(tiny_store, fill="ffill")
    assert isinstance(dm.train_set.store, FilledStore) and np.isnan(store.gather(np.arange(store.n_rows))).any()
    _check(dm, store, _targets(store), True)


def test_day_start_windows_are_padded_only_without_cross_days(tiny_store):
    store = Store(tiny_store)
    t = store.day_offsets[5:8]
    crossing = _dm(tiny_store, cross_days=True).train_set.inputs(t)["mask"]
    padded = _dm(tiny_store, cross_days=False).train_set.inputs(t)
    assert crossing.all()
    # the target is its day's first row: one real step (the last), W-1 zero steps before it
    assert (padded["mask"].sum(1) == 1).all() and padded["mask"][:, -1].all()
    assert (padded["x"][:, :-1] == 0).all() and (padded["x"][:, -1] != 0).any()


def test_window_batches_share_the_row_path(tiny_store):
    rows_dm = jsmp_data(store=str(tiny_store), split={"val_frac": 0.2, "gap_days": 2}, batch_size=64)
    rows_dm.setup("fit")
    dm = _dm(tiny_store)
    np.testing.assert_array_equal(rows_dm.train_set.rows, dm.train_set.rows)
    a, b = rows_dm.train_set[np.arange(30)], dm.train_set[np.arange(30)]
    assert torch.equal(a["y"], b["y"])
    assert torch.equal(b["x"][:, -1], a["x"])  # the last step is the target row itself
    a, b = rows_dm.val_set[np.arange(30)], dm.val_set[np.arange(30)]
    for key in ("y", "weight", "resp", "day"):
        assert torch.equal(a[key], b[key])


def test_window_index_and_bad_spec():
    idx, mask = window_index(np.array([0, 5, 9]), 4, first=np.array([0, 0, 8]))
    np.testing.assert_array_equal(idx, [[0, 0, 0, 0], [2, 3, 4, 5], [8, 8, 8, 9]])
    np.testing.assert_array_equal(mask, [[0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 1, 1]])
    with pytest.raises(UserError, match="data.window.length"):
        WindowSpec(length=0)


def test_window_positions_are_one_rule_for_numpy_and_torch():
    """The resident path's tensors and the memory-mapped path's arrays get the same windows, on their own device."""
    ends, first = np.array([0, 5, 9, 9]), np.array([0, 0, 8, 9])
    pos, mask = window_positions(ends, 4, first)
    np.testing.assert_array_equal(pos, [[0, 0, 0, 0], [2, 3, 4, 5], [8, 8, 8, 9], [9, 9, 9, 9]])
    np.testing.assert_array_equal(mask, [[0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    tpos, tmask = window_positions(torch.from_numpy(ends), 4, torch.from_numpy(first))
    assert tpos.dtype == torch.int64 and tmask.dtype == torch.bool
    np.testing.assert_array_equal(tpos.numpy(), pos)
    np.testing.assert_array_equal(tmask.numpy(), mask)
    np.testing.assert_array_equal(window_start(ends, 4, first), pos[:, 0])  # the first row each window reads


def test_block_sampler_shuffles_contiguous_blocks_deterministically():
    n, block = 1003, 50
    s = BatchIndexSampler(n, 100, shuffle=True, seed=1, block=block)
    order = np.concatenate(list(s))
    assert sorted(order.tolist()) == list(range(n))
    again = np.concatenate(list(BatchIndexSampler(n, 100, shuffle=True, seed=1, block=block)))
    np.testing.assert_array_equal(order, again)
    s.set_epoch(1)
    assert not np.array_equal(np.concatenate(list(s)), order)
    # each batch (sorted) is made of whole blocks: runs of consecutive positions starting at block edges
    for b in BatchIndexSampler(1000, 2 * block, shuffle=True, seed=1, block=block):
        starts = b[np.r_[True, np.diff(b) != 1]]
        assert (starts % block == 0).all()


@pytest.mark.parametrize("world", [2, 3])
def test_block_sampler_rank_shards_are_disjoint(world):
    n = 1000
    shares = [np.concatenate(list(BatchIndexSampler(n, 64, shuffle=True, seed=2, block=37, rank=r, world_size=world)))
              for r in range(world)]
    assert all(len(s) == n // world for s in shares)
    assert len(np.unique(np.concatenate(shares))) == sum(len(s) for s in shares)


def test_lstm_with_mask_reads_only_real_rows():
    torch.manual_seed(0)
    model = LSTM(n_features=3, n_days=1, hidden=5, layers=2).eval()
    x = torch.randn(4, 6, 3)
    mask = torch.arange(6)[None, :] >= torch.tensor([[0], [2], [5], [3]])
    padded = x * mask[..., None]
    with torch.no_grad():
        got = model(padded, mask)
        alone = torch.stack([model(x[b : b + 1, mask[b]])[0] for b in range(4)])
        full = model(x)
    torch.testing.assert_close(got, alone)
    assert torch.equal(model(x, torch.ones(4, 6, dtype=torch.bool)), full)


def test_windowed_validation_batches_are_capped(tiny_store, monkeypatch):
    from jsmp.batches import datamodule

    dm = _dm(tiny_store)  # batch_size 64, eval_batch_size 100
    assert dm.eval_rows_per_batch() == 100
    monkeypatch.setattr(datamodule, "EVAL_BATCH_BYTES", 80 * W * dm.n_features * 4)
    assert dm.eval_rows_per_batch() == 80
    assert max(len(b["x"]) for b in dm.val_dataloader()) == 80
    monkeypatch.setattr(datamodule, "EVAL_BATCH_BYTES", 10 * W * dm.n_features * 4)
    assert dm.eval_rows_per_batch() == 64  # never below the training batch


@pytest.mark.parametrize("cross_days,what", [(True, "the whole store"), (False, "one day's rows")])
def test_a_window_longer_than_any_series_is_refused(tiny_store, cross_days, what):
    store = Store(tiny_store)
    longest = store.n_rows if cross_days else int(np.diff(store.day_offsets).max())
    assert _dm(tiny_store, length=longest, cross_days=cross_days).window.length == longest  # the longest series fits
    with pytest.raises(UserError) as e:
        _dm(tiny_store, length=longest + 1, cross_days=cross_days)
    assert str(e.value) == (f"data.window.length={longest + 1} is longer than any series in store {tiny_store}: the longest "
                            f"({what}, with data.window.cross_days={str(cross_days).lower()}) has {longest} rows, and the "
                            f"rest of every window would be padding; choose at most {longest}")


def test_a_window_whose_batches_do_not_fit_in_memory_is_refused(tiny_store, monkeypatch):
    from jsmp.inputs import windows

    monkeypatch.setattr(windows, "available_memory", lambda: 100 * 2**20)
    # eval batches of 100 windows (the larger batch) x 2000 steps x 130 features: 100 x 2000 x (8 x 130 + 17) bytes
    with pytest.raises(UserError) as e:
        _dm(tiny_store, length=2000)
    assert str(e.value) == ("data.window.length=2000: a batch of 100 windows x 130 features needs 0.2 GiB while it is "
                            "gathered, and 0.1 GiB of memory is available; lower data.window.length (at most 992 here) "
                            "or data.batch_size / data.eval_batch_size")
    assert 100 * 992 * (8 * 130 + 17) <= 100 * 2**20 < 100 * 993 * (8 * 130 + 17)  # (992: the longest that fits)
    assert _dm(tiny_store, length=992).window.length == 992
