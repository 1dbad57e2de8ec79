"""Day samples (jsmp.batches.days): every present cell equals the row batch of its store row, bit for bit
(features and lags filled as rows fill them, targets, weights); the mask counts the date's rows; absent
cells are 0; time = t / T; the split, zero-weight rows and the date shuffle; a 2021 store is one line."""

import re

import numpy as np
import pytest

from jsmp.batches.config import RowsConfig, SplitConfig
from jsmp.batches.contract import wants_days
from jsmp.batches.datamodule import JsmpDataModule
from jsmp.errors import UserError
from jsmp.inputs.daygrid import time_grid
from jsmp.models.mlp import MLP
from jsmp.run.dataconfig import jsmp_data
from jsmp.store.store import Store

TARGETS = ["responder_6", "responder_3"]


class DayModel:
    """A model class asking for day samples."""

    sample = "day"


def modules(store, fill: str, verify: bool = True):
    """The (day-sample, row) data modules of the same settings on `store` (the 2024 recipe: lags, two targets)."""
    rows = RowsConfig(split=SplitConfig(val_frac=0.3, gap_days=1), fill=fill, lags=True, task="regression",
                      targets=TARGETS, sample_weight="weight")
    out = []
    for model in (DayModel, MLP):
        dm = JsmpDataModule(store, rows=rows, verify=verify)
        dm.connect(model)
        dm.setup("fit")
        out.append(dm)
    return out


def grid_of(store: Store, rows: np.ndarray):
    """(t, n) of store rows by a plain lookup: time_id's rank among the store's time_ids, the instrument's index."""
    times = np.unique(np.asarray(store.side("time_id")))
    return (np.searchsorted(times, store.side("time_id")[rows]),
            np.searchsorted(store.group_values, store.side(store.group)[rows]))


@pytest.mark.parametrize("fill", ["mean", "ffill"])
def test_present_cells_equal_row_batches(tiny_rtmdf_store, fill):
    days, rows = modules(tiny_rtmdf_store, fill)
    store = days.store
    assert wants_days(DayModel) and not wants_days(MLP)
    T = max(len(np.unique(store.side("time_id")[store.day_rows(np.array([d]))])) for d in range(store.n_days))
    N = len(store.group_values)
    assert len(time_grid(store)) == T == 8 and N == 6
    for day_set, row_set in ((days.train_set, rows.train_set), (days.val_set, rows.val_set)):
        assert len(day_set) == len(day_set.days) and np.array_equal(day_set.rows, row_set.rows)  # same rows kept
        want = row_set[np.arange(len(row_set))]
        order = np.random.default_rng(0).permutation(len(day_set))[:3]
        batch = day_set[order]
        B, F = len(order), len(days.input_spec().features)
        assert batch["x"].shape == (B, T, N, F) and batch["y"].shape == (B, T, N, 2)
        assert batch["mask"].shape == batch["weight"].shape == batch["sample_weight"].shape == (B, T, N)
        assert batch["time"].shape == (B, T) and batch["day"].tolist() == day_set.days[order].tolist()
        np.testing.assert_array_equal(batch["time"].numpy(), np.tile(np.arange(T, dtype=np.float32) / T, (B, 1)))
        mask = batch["mask"].numpy()
        for b, d in enumerate(day_set.days[order]):
            own = np.flatnonzero(store.row_day_index()[row_set.rows] == d)  # row-set positions of date d
            t, n = grid_of(store, row_set.rows[own])
            assert mask[b].sum() == len(own) > 0
            cell = np.zeros((T, N), bool)
            cell[t, n] = True
            assert np.array_equal(mask[b], cell)
            np.testing.assert_array_equal(batch["x"][b].numpy()[t, n], want["x"].numpy()[own])
            np.testing.assert_array_equal(batch["y"][b].numpy()[t, n], want["y"].numpy()[own])
            np.testing.assert_array_equal(batch["sample_weight"][b].numpy()[t, n], want["sample_weight"].numpy()[own])
            np.testing.assert_array_equal(batch["weight"][b].numpy()[t, n], store.side("weight")[row_set.rows[own]])
            for k in ("x", "y", "sample_weight", "weight"):  # absent cells are 0
                assert not batch[k][b].numpy()[~cell].any(), k


def test_zero_weight_rows_are_absent_in_training_only(tmp_path):
    from jsmp.data import synthetic_rtmdf

    path = synthetic_rtmdf.write_store(synthetic_rtmdf.RtmdfSpec(days=12, times=6, symbols=5, seed=1), tmp_path / "s")
    weight = np.load(path / "weight.npy", mmap_mode="r+")
    weight[::4] = 0  # every fourth row has weight 0
    weight.flush()
    del weight
    days, _ = modules(path, "zero", verify=False)  # (its weight column was changed)
    store = days.store
    for data, dropped in ((days.train_set, True), (days.val_set, False)):
        batch = data[np.arange(len(data))]
        all_rows = store.day_rows(data.days)
        kept = all_rows[store.side("weight")[all_rows] > 0] if dropped else all_rows
        assert batch["mask"].sum().item() == len(kept) < len(all_rows) + (not dropped)
        per_day = [np.isin(kept, store.day_rows(np.array([d]))).sum() for d in data.days]
        assert batch["mask"].sum((1, 2)).tolist() == per_day


def test_dates_shuffle_per_epoch_with_the_seed(tiny_rtmdf_store):
    days, _ = modules(tiny_rtmdf_store, "mean")
    loader = days.train_dataloader()
    sampler = loader.batch_sampler
    first = [b.tolist() for b in sampler]
    assert sorted(sum(first, [])) == list(range(len(days.train_set))) and all(len(b) == 1 for b in first)
    assert [b.tolist() for b in sampler] == first  # the same epoch, the same order
    sampler.set_epoch(1)
    assert [b.tolist() for b in sampler] != first
    sampler.set_epoch(0)
    batch = next(iter(loader))
    assert batch["day"].tolist() == days.train_set.days[first[0]].tolist()
    assert [b.tolist() for b in days.val_dataloader().batch_sampler] == [[i] for i in range(len(days.val_set))]


def test_a_2021_store_with_a_day_model_is_one_line(tiny_store):
    dm = jsmp_data(store=str(tiny_store))
    dm.connect(DayModel)
    with pytest.raises(UserError, match=r"model DayModel reads day samples.*data store .* 2021-layout") as e:
        dm.setup("fit")
    assert "\n" not in str(e.value)


def test_the_benchmark_runs_on_a_small_store(tmp_path, monkeypatch, capsys):
    from jsmp.bench.__main__ import main

    monkeypatch.setenv("JSMP_BENCH_DIR", str(tmp_path))
    main(["days", "--days", "12", "--times", "20", "--symbols", "6", "--batches", "2", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "a sample T=20 x N=6 x F=" in out
    assert re.search(r"^\s+\d+\s+\d+\s+[\d.]+\s+>=0.75\s+[\d.]+\s+\d+\s+\d+\s+(ok|MISSED)$", out, re.M), out


def reference_batch(day_set, row_set, positions):
    """The day samples of `positions` built the plain way: zero grids, each row's cell set from the row batch."""
    store, T, N = day_set.store, day_set.n_times, day_set.n_groups
    B, want = len(positions), row_set[np.arange(len(row_set))]
    out = {"x": np.zeros((B, T, N, want["x"].shape[1]), np.float32), "mask": np.zeros((B, T, N), bool),
           "y": np.zeros((B, T, N, day_set.n_targets), np.float32), "sample_weight": np.zeros((B, T, N), np.float32),
           "weight": np.zeros((B, T, N), np.float32)}
    for b, d in enumerate(day_set.days[positions]):
        own = np.flatnonzero(store.row_day_index()[row_set.rows] == d)
        t, n = grid_of(store, row_set.rows[own])
        out["mask"][b, t, n] = True
        out["x"][b, t, n] = want["x"].numpy()[own]
        out["y"][b, t, n] = want["y"].numpy()[own].reshape(len(own), -1)
        out["sample_weight"][b, t, n] = want["sample_weight"].numpy()[own]
        out["weight"][b, t, n] = store.side("weight")[row_set.rows[own]]
    return out


@pytest.mark.parametrize("symbols", [6, 1])  # 6: instruments entering and leaving; 1: the later dates complete
def test_batches_of_several_dates_equal_the_plain_grid_bit_for_bit(tmp_path, symbols):
    from jsmp.data import synthetic_rtmdf

    spec = synthetic_rtmdf.RtmdfSpec(days=16, times=8, symbols=symbols, seed=2)
    path = synthetic_rtmdf.write_store(spec, tmp_path / "s", shard_rows=37)  # dates cross shards
    days, rows = modules(path, "ffill")
    complete = []  # whether each date sampled had every cell present
    for day_set, row_set in ((days.train_set, rows.train_set), (days.val_set, rows.val_set)):
        for positions in ([0], [2, 0, 1], np.random.default_rng(1).permutation(len(day_set))):
            positions = np.asarray(positions)
            batch, want = day_set[positions], reference_batch(day_set, row_set, positions)
            for k, v in want.items():
                got = batch[k].numpy()
                assert got.dtype == v.dtype and got.shape == v.shape, k
                assert got.tobytes() == v.tobytes(), k  # bit for bit (a -0.0 or a NaN payload would differ)
            complete += batch["mask"].numpy().all(axis=(1, 2)).tolist()
    assert not all(complete) and (any(complete) or symbols > 1)


def test_take_cells_known_answer():
    from jsmp.batches.days import take_cells
    from jsmp.store.kernels import shard_list

    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    a[1, 2] = np.nan
    b = np.array([[np.nan, 20, 21]], dtype=np.float32)
    shards, starts, fill = shard_list([a, b]), np.array([0, 4]), np.array([-1, -2, -3], np.float32)
    out = np.full((6, 3), 7, np.float32)
    take_cells(shards, starts, np.array([4, 1, 3], np.int32), np.array([0, 2, 5]), out, fill, np.array([True, False, True]))
    want = np.array([[-1, 20, 21], [0, 0, 0], [3, 4, np.nan], [0, 0, 0], [0, 0, 0], [9, 10, 11]], np.float32)
    np.testing.assert_array_equal(out, want)  # has_nan False: row 1's NaN kept
    take_cells(shards, starts, np.array([1, 4]), np.array([0, 1]), out[:2], fill, np.zeros(0, bool))  # empty: all rows
    np.testing.assert_array_equal(out[:2], [[3, 4, -3], [-1, 20, 21]])


def test_days_per_batch(tiny_rtmdf_store):
    dm = jsmp_data(store=str(tiny_rtmdf_store), synthetic={"layout": "rtmdf"}, days_per_batch=4, task="regression",
                   targets=["responder_6"], sample_weight="weight", lags=True)
    dm.connect(DayModel)
    dm.setup("fit")
    sizes = [len(b) for b in dm.train_dataloader().batch_sampler]
    assert sum(sizes) == len(dm.train_set) and set(sizes[:-1]) == {4} and len(sizes) == -(-len(dm.train_set) // 4)
    batch = next(iter(dm.val_dataloader()))
    assert batch["x"].shape[:3] == (4, dm.train_set.n_times, dm.train_set.n_groups)
    assert batch["day"].tolist() == dm.val_set.days[:4].tolist()
    for bad, why in ((0, " must be an integer >= 1 .*got 0"), (-1, " must be"), (1.5, ": Value '1.5' of type 'float'")):
        with pytest.raises(UserError, match=rf"^data.days_per_batch{why}") as e:
            jsmp_data(store=str(tiny_rtmdf_store), synthetic={"layout": "rtmdf"}, days_per_batch=bad)
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"^data.days_per_batch must be an integer >= 1 .*got True$"):
        JsmpDataModule(tiny_rtmdf_store, days_per_batch=True)


def test_the_memory_benchmark_trains_on_day_samples(tiny_rtmdf_store):
    from conftest import run_main
    from jsmp.bench.__main__ import main

    p = run_main(main, ["memory", "--day-store", str(tiny_rtmdf_store), "--steps", "2", "--days-per-batch", "2"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert "axial model, 2 date(s) a batch, 2 steps" in p.stdout
    assert re.search(r"^\s+[\d.]+ GB\s+[\d.]+ GB\s+[\d.]+ GB\s+\d+s\s+\d+s\s+\d+$", p.stdout, re.M), p.stdout
    assert re.search(r"^target: peak anonymous memory <= 4 GB: ok$", p.stdout, re.M)
