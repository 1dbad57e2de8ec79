"""Grouped stores (the 2024 layout, instruments side by side): the group index written at close,
its manifest keys and checksums, and stores without a group reading as before."""

import numpy as np
import pytest
from grouped import FEATURES, SIDE, grouped_frame, write_grouped

from conftest import run_data
from jsmp.errors import UserError
from jsmp.store.store import GROUP_ORDER, GROUP_POS, Store, StoreWriter


def test_the_group_index_round_trips(tmp_path):
    frame = grouped_frame()
    store = write_grouped(tmp_path / "s", frame)
    assert store.group == "symbol_id" and store.time == ("date", "time_id")
    assert len(store.manifest["shards"]) >= 4  # whole days of ~30 rows: a shard a day
    store.verify()
    by_symbol = frame.sort_values("symbol_id", kind="stable")
    np.testing.assert_array_equal(store.group_order, by_symbol.index)
    np.testing.assert_array_equal(store.group_pos[store.group_order], np.arange(len(frame)))
    counts = frame.symbol_id.value_counts().sort_index()
    assert store.group_values.tolist() == [0, 1, 3, 7, 12] == counts.index.tolist()
    assert store.group_offsets.tolist() == [0, *np.cumsum(counts).tolist()]
    for k, (a, b) in enumerate(zip(store.group_offsets[:-1], store.group_offsets[1:])):
        rows = frame.loc[np.asarray(store.group_order[a:b])]
        assert (rows.symbol_id == store.group_values[k]).all()
        assert rows[["date", "time_id"]].apply(tuple, axis=1).is_monotonic_increasing  # each group in time order
    np.testing.assert_array_equal(store.group_values[store.group_index(5, 40)], frame.symbol_id[5:40])
    assert isinstance(store.group_order, np.memmap) and store.group_order.dtype == np.int64


def test_a_store_without_a_group_reads_as_before(tiny_store):
    store = Store(tiny_store)
    assert store.group is None and store.group_order is None and store.group_pos is None
    assert store.time == ("date",) and "groups" not in store.manifest and not (store.path / GROUP_ORDER).exists()
    assert store.group_offsets.tolist() == [0, store.n_rows]
    np.testing.assert_array_equal(store.group_index(3, 9), np.zeros(6))


def test_info_names_the_group(tmp_path):
    write_grouped(tmp_path / "s", grouped_frame())
    p = run_data(["info", "s"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "groups    5 by symbol_id (time order date, time_id)" in p.stdout.splitlines()


def test_a_damaged_group_index_is_named(tmp_path):
    store = write_grouped(tmp_path / "s", grouped_frame())
    raw = bytearray((store.path / GROUP_ORDER).read_bytes())
    raw[-3] ^= 1  # a flipped bit in the last position's value
    (store.path / GROUP_ORDER).write_bytes(raw)
    assert store.damage(full=False) is None  # same size: opening is cheap and fine
    assert store.damage() == f"group index {GROUP_ORDER} does not match its checksum in the manifest"
    with pytest.raises(UserError, match=f"group index {GROUP_ORDER} does not match its checksum .* rebuild it: "):
        store.verify()
    with open(store.path / GROUP_POS, "ab") as f:
        f.write(b"\0")
    with pytest.raises(UserError, match=rf"store .*: group index {GROUP_POS} has \d+ bytes, the manifest says \d+ \(the store is damaged"):
        Store(store.path)
    (store.path / GROUP_POS).unlink()
    line = run_data(["verify", "s"], cwd=tmp_path).stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: store s: group index {GROUP_POS} is missing (the store is damaged; rebuild it: ")


def test_the_writer_checks_group_and_time_order(tmp_path):
    def writer(**kw):
        return StoreWriter(tmp_path / "s", FEATURES, {**SIDE, "price": "float32"}, {"kind": "test"}, **kw)

    with pytest.raises(ValueError, match="'price' must be an integer side column, side_dtypes has 'float32'"):
        writer(group="price", time=["date", "time_id"])
    with pytest.raises(ValueError, match="'tick' must be an integer side column, side_dtypes has None"):
        writer(group="symbol_id", time=["date", "tick"])
    with pytest.raises(ValueError, match=r"time must start with 'date', got \['time_id'\]"):
        writer(group="symbol_id", time=["time_id"])
    frame = grouped_frame()
    with pytest.raises(ValueError, match="date, time_id must be non-decreasing"):
        with writer(group="symbol_id", time=["date", "time_id"]) as w:
            for part in (frame[:20], frame[12:30]):  # the second piece starts earlier the same day
                w.append(part[FEATURES].to_numpy(), {**{k: part[k].to_numpy() for k in SIDE}, "price": part.weight})
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_damaged_synthetic_2024_store_names_the_command_that_rebuilds_it(tmp_path):
    from jsmp.data.synthetic_rtmdf import RtmdfSpec, write_store

    path = write_store(RtmdfSpec(days=3, times=4, symbols=3, seed=1), tmp_path / "s")
    (path / "symbol_id.npy").write_bytes(b"")
    with pytest.raises(UserError, match=r"rebuild it: python -m jsmp.data synth --layout rtmdf --store .*/s --days 3 "
                                        r"--times 4 --symbols 3 --seed 1 --force\)"):
        Store(path)
