import json

import numpy as np
import pytest

from jsmp.errors import UserError
from jsmp.store.store import Store, StoreWriter


def _write(path, date, x, shard_rows=4, blocks=3):
    side = {"date": "int32", "weight": "float32"}
    with StoreWriter(path, [f"feature_{i}" for i in range(x.shape[1])], side, {"kind": "test"}, shard_rows=shard_rows) as w:
        for sl in np.array_split(np.arange(len(date)), blocks):
            w.append(x[sl], {"date": date[sl], "weight": np.ones(len(sl))})
        return w.close()


def test_round_trip_and_whole_day_shards(tmp_path):
    date = np.array([0, 0, 0, 1, 1, 4, 4, 4, 4, 4, 4, 7, 9, 9])
    x = np.arange(len(date) * 3, dtype=np.float32).reshape(-1, 3)
    s = Store(_write(tmp_path / "s", date, x))
    assert s.n_rows == 14 and s.n_days == 5 and s.days.tolist() == [0, 1, 4, 7, 9]
    assert s.day_offsets.tolist() == [0, 3, 5, 11, 12, 14]
    np.testing.assert_array_equal(s.gather(np.arange(14)), x)
    for sh in s.manifest["shards"]:
        assert sh["start"] in s.day_offsets and sh["stop"] in s.day_offsets  # whole days
    assert len(s.manifest["shards"]) > 2
    rows = np.array([13, 0, 5, 5, 11, 2])  # any order, across shards
    np.testing.assert_array_equal(s.gather(rows), x[rows])
    np.testing.assert_array_equal(s.day_rows(np.array([1, 3])), [3, 4, 11])
    np.testing.assert_array_equal(s.row_day_index(), [0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 3, 4, 4])
    blocks = np.concatenate(list(s.iter_blocks([(1, 13)], block_rows=4)))
    np.testing.assert_array_equal(blocks, x[1:13])
    assert isinstance(s.shards[0], np.memmap)


def test_shards_depend_on_rows_only_and_are_np_save_bytes(tmp_path):
    """Shards are the whole days that fit in shard_rows (a longer day alone), however the rows
    were appended; written from the appended blocks without joining them first, each file holds
    exactly the bytes np.save writes for its rows, and verifies."""
    date = np.repeat(np.arange(9), [3, 1, 5, 2, 2, 6, 1, 4, 3])
    x = np.random.default_rng(0).normal(size=(len(date), 5)).astype(np.float32)
    stores = [Store(_write(tmp_path / f"s{k}", date, x, shard_rows=5, blocks=k)) for k in (1, 3, len(date))]
    bounds = [(sh["start"], sh["stop"]) for sh in stores[0].manifest["shards"]]
    assert bounds == [(0, 4), (4, 9), (9, 13), (13, 19), (19, 24), (24, 27)]
    for s in stores:
        assert s.manifest["shards"] == stores[0].manifest["shards"]
        for sh in s.manifest["shards"]:
            np.save(tmp_path / "ref.npy", x[sh["start"] : sh["stop"]])
            assert (s.path / sh["file"]).read_bytes() == (tmp_path / "ref.npy").read_bytes()
        s.verify()


def test_the_store_answers_what_other_stages_need_from_its_manifest(tmp_path):
    """Other stages ask the Store, never its manifest (docs/store.md#caches)."""
    s = Store(_write(tmp_path / "s", np.array([0, 0, 1, 1, 2, 2]), np.zeros((6, 2), np.float32), shard_rows=2))
    assert s.side_names == ["date", "weight"] and s.has("weight") and not s.has("resp")
    assert s.source == {"kind": "test"}
    assert s.shard_files == ["features-00000.npy", "features-00001.npy", "features-00002.npy"]
    assert s.shard_starts.tolist() == [0, 2, 4]
    assert s.rebuild_command == f"python -m jsmp.data ingest SRC --store {s.path} --force"


def test_tiny_store_gather_matches_full(tiny_store):
    s = Store(tiny_store)
    full = np.concatenate([np.asarray(sh) for sh in s.shards])
    rng = np.random.default_rng(0)
    rows = rng.integers(0, s.n_rows, 300)
    np.testing.assert_array_equal(s.gather(rows), full[rows])
    assert len(s.manifest["shards"]) >= 3


def test_failed_write_leaves_nothing_and_keeps_old_store(tmp_path):
    date = np.array([0, 0, 1])
    x = np.zeros((3, 2), np.float32)
    good = _write(tmp_path / "s", date, x)
    before = (good / "manifest.json").read_text()
    with pytest.raises(ValueError, match="non-decreasing"):
        _write(tmp_path / "s", np.array([1, 0, 0]), x)
    assert (good / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temp dir left


def test_not_a_store(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Store(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(UserError, match="no manifest.json"):
        Store(tmp_path / "half")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text(json.dumps({"format": "x", "version": 9}))
    with pytest.raises(UserError, match="expected format"):
        Store(tmp_path / "bad")


def test_pickles_by_path(tiny_store):
    import pickle

    s = Store(tiny_store)
    _ = s.shards
    blob = pickle.dumps(s)
    assert len(blob) < 2000  # the memmaps are not copied
    np.testing.assert_array_equal(pickle.loads(blob).gather(np.arange(5)), s.gather(np.arange(5)))


def test_gather_fills_nans_in_flagged_rows_in_any_order(tmp_path):
    rng = np.random.default_rng(1)
    date = np.repeat(np.arange(40), 25)
    x = rng.standard_normal((len(date), 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    s = Store(_write(tmp_path / "s", date, x, shard_rows=100))
    fill = rng.standard_normal(6).astype(np.float32)
    filled = np.where(np.isnan(x), fill, x)
    flags = np.isnan(x).any(axis=1)
    for rows in (np.sort(rng.choice(len(x), 300, replace=False)),  # a batch: sorted, across shards
                 rng.integers(0, len(x), 300),                      # scattered, repeats: read in row order
                 np.arange(40, 60)[::-1]):                          # descending within one shard
        np.testing.assert_array_equal(s.gather(rows), x[rows])
        np.testing.assert_array_equal(s.gather(rows, fill), filled[rows])
        np.testing.assert_array_equal(s.gather(rows, fill, flags[rows]), filled[rows])
    # sorted rows spread over many shards (an ingested store has ~75): one run per shard
    many = Store(_write(tmp_path / "many", date, x, shard_rows=25))
    assert len(many.manifest["shards"]) == 40
    rows = np.arange(0, len(x), 10)
    np.testing.assert_array_equal(many.gather(rows, fill), filled[rows])
    np.testing.assert_array_equal(many.gather(rows[::-1], fill), filled[rows[::-1]])
    # rows not flagged are copied as they are: the flags must cover every row holding a NaN
    rows = np.flatnonzero(flags)[:5]
    assert np.isnan(s.gather(rows, fill, np.zeros(5, dtype=bool))).any()
    assert s.gather(np.zeros(0, dtype=np.int64), fill).shape == (0, 6)
    for bad in ([0, len(x)], [-1, 3]):
        with pytest.raises(IndexError, match=r"rows must be in \[0, 1000\)"):
            s.gather(np.array(bad))


def test_compiled_gather_fill_is_the_nan_to_value_rule(tmp_path):
    """Store.gather's compiled NaN -> value (jsmp.store.kernels.take_rows) equals the rule's one
    implementation, jsmp.inputs.fill.fill_nan, bit for bit (infinities and -0.0 untouched)."""
    from jsmp.inputs.fill import fill_nan

    rng = np.random.default_rng(7)
    date = np.repeat(np.arange(30), 40)
    x = rng.standard_normal((len(date), 9)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    x[5], x[6, :3] = np.nan, [np.inf, -np.inf, -0.0]
    s = Store(_write(tmp_path / "s", date, x, shard_rows=70))
    value = rng.standard_normal(9).astype(np.float32)
    rows = rng.integers(0, len(x), 2000)
    expected = fill_nan(x[rows], value)
    assert not np.isnan(expected).any()
    np.testing.assert_array_equal(s.gather(rows, value).view(np.uint32), expected.view(np.uint32))


def test_a_feature_limit_is_enforced_and_recorded(tmp_path):
    """The synthetic generators write through it: their values are checked like ingested ones."""
    x = np.array([[1.0, np.nan], [-5.0, 2.0], [3.0, -2e6]], np.float32)
    side = {"date": np.array([0, 0, 1]), "weight": np.ones(3)}
    with pytest.raises(ValueError, match=r"^feature_1 = -2000000.0 is beyond the feature limit ±1e\+06$"):
        with StoreWriter(tmp_path / "s", ["feature_0", "feature_1"], {"date": "int32", "weight": "float32"}, {}, feature_limit=1e6) as w:
            w.append(x, side)
    assert not tmp_path.joinpath("s").exists() and not list(tmp_path.iterdir())
    with StoreWriter(tmp_path / "s", ["feature_0", "feature_1"], {"date": "int32", "weight": "float32"}, {}, feature_limit=1e7) as w:
        w.append(x, side)
        w.close()
    assert Store(tmp_path / "s").feature_limit == 1e7 and Store(_write(tmp_path / "t", side["date"], x)).feature_limit is None


def test_provenance_reads_what_a_store_was_made_from_even_when_damaged(tmp_path):
    from jsmp.data.synthetic import SynthSpec, synth_source, write_store
    from jsmp.store.store import FEATURE_LIMIT, provenance

    spec = SynthSpec(days=3, rows_per_day=20, seed=1)
    path = write_store(spec, tmp_path / "s")
    made = provenance(path)
    assert made.source == synth_source(spec) and made.feature_limit == FEATURE_LIMIT
    shard = next(path.glob("features-*.npy"))
    shard.write_bytes(shard.read_bytes()[:-4])  # damaged: Store(path) refuses it, its provenance is still read
    with pytest.raises(UserError):
        Store(path)
    assert provenance(path) == made
    assert provenance(tmp_path) is None and provenance(tmp_path / "absent") is None
