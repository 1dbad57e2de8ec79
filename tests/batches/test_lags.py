"""Lag features (jsmp.batches.lags): the previous date's responders of the same instrument and time_id,
checked against a pandas merge, causal, cached."""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import data_cli_error
from jsmp.batches.lags import lag_names, lag_store
from jsmp.data.schema import is_lag, is_target, lag_name, responder_of, responders
from jsmp.errors import UserError
from jsmp.inputs.lags import KeyIndex, lag_key, previous_date_rows
from jsmp.store.caches import LAGS_DIR
from jsmp.store.store import Store, StoreWriter

RESPONDERS = ["responder_0", "responder_6"]


def frame(seed: int = 0) -> pd.DataFrame:
    """Rows of dates 0, 1, 3, 4 (date 2 missing), 3 time_ids, instruments that come and go."""
    rng = np.random.default_rng(seed)
    rows = []
    for date in (0, 1, 3, 4):
        for t in range(3):
            for s in (0, 1, 2, 5):
                if (s == 2 and date == 1 and t == 0) or (s == 5 and date < 3):
                    continue  # 2 missing at one time on date 1; 5 enters on date 3
                rows.append((date, t, s))
    df = pd.DataFrame(rows, columns=["date", "time_id", "symbol_id"])
    for c in RESPONDERS:
        df[c] = rng.standard_normal(len(df)).astype(np.float32)
    df["weight"] = np.float32(1.0)
    return df


def write(df: pd.DataFrame, path) -> Store:
    side = {"date": "int32", "time_id": "int32", "symbol_id": "int32", "weight": "float32", **{c: "float32" for c in RESPONDERS}}
    x = np.zeros((len(df), 2), dtype=np.float32)
    with StoreWriter(path, ["feature_00", "feature_01"], side, {"kind": "test"}, shard_rows=7, group="symbol_id",
                     time=["date", "time_id"]) as w:
        w.append(x, {c: df[c].to_numpy() for c in side})
        w.close()
    return Store(path)


def expected(df: pd.DataFrame) -> np.ndarray:
    prev = df[["date", "time_id", "symbol_id", *RESPONDERS]].copy()
    prev["date"] += 1
    merged = df[["date", "time_id", "symbol_id"]].merge(prev, on=["date", "time_id", "symbol_id"], how="left")
    return merged[RESPONDERS].to_numpy(np.float32)


def lags_of(store: Store) -> np.ndarray:
    lags = lag_store(store)
    return lags.gather(np.arange(lags.n_rows))


def test_the_previous_date_rule_matches_the_key_on_the_date_before_only():
    """A row's lag row: same (time_id, instrument) on date D - 1 (the first of repeated keys), else -1; any int32 keys."""
    time, symbol = np.array([0, 0, 1, 1, 2, -1]), np.array([3, 7, 3, 3, -1, 2**31 - 1])
    prev = (4, KeyIndex(time, symbol))
    query = np.array([1, 0, 0, 2, 9, -1, 0]), np.array([3, 7, 5, -1, 3, 2**31 - 1, 3])
    np.testing.assert_array_equal(previous_date_rows(5, *query, prev), [2, 1, -1, 4, -1, 5, 0])
    assert (previous_date_rows(6, *query, prev) == -1).all() and (previous_date_rows(5, *query, None) == -1).all()
    assert (KeyIndex([], []).rows(*query) == -1).all()
    keys = lag_key([0, 0, 1, -1], [1, 2, 0, 5])
    assert len(set(keys.tolist())) == 4 and (np.diff(keys[:3]) > 0).all()  # one key per pair, in (time_id, instrument) order


def test_lag_and_target_names_by_pattern():
    columns = ["responder_10", "responder_2", "responder_2_lag_1", "resp", "resp_3", "weight", "respx", "responder_6_lag_2"]
    assert responders(columns) == ["responder_2", "responder_10"]
    assert [c for c in columns if is_lag(c)] == ["responder_2_lag_1"]
    assert lag_name("responder_2") == "responder_2_lag_1" and responder_of("responder_2_lag_1") == "responder_2"
    assert [c for c in columns if is_target(c)] == ["responder_10", "responder_2", "resp", "resp_3"]


def test_lags_equal_the_previous_dates_responders_of_the_same_instrument_and_time(tmp_path):
    df = frame()
    store = write(df, tmp_path / "s")
    got = lags_of(store)
    assert lag_names(store) == ["responder_0_lag_1", "responder_6_lag_1"]
    assert lag_store(store).features == lag_names(store)
    np.testing.assert_array_equal(got, expected(df))
    first = df["date"].isin([0, 3]).to_numpy()  # no date 2, so date 3 has no lags either
    assert np.isnan(got[first]).all()
    gone = ((df["date"] == 1) & (df["time_id"] == 0)).to_numpy() | ((df["date"] == 4) & (df["symbol_id"] == 5)).to_numpy()
    assert np.isfinite(got[~first & ~gone]).all()


def test_lags_are_causal(tmp_path):
    """A lag never equals a same-date responder, and changing one date's answers changes only the next
    date's lags, never that date's own."""
    df = frame()
    got = lags_of(write(df, tmp_path / "a"))
    same = df[RESPONDERS].to_numpy(np.float32)
    assert not np.any(got == same)
    changed = df.copy()
    on3 = changed["date"] == 3
    changed.loc[on3, RESPONDERS] += 1.0
    again = lags_of(write(changed, tmp_path / "b"))
    on4 = (df["date"] == 4).to_numpy()
    np.testing.assert_array_equal(again[~on4], got[~on4])  # date 3's own lags (and all before) unchanged
    hit = on4 & np.isfinite(got[:, 0])
    np.testing.assert_allclose(again[hit], got[hit] + 1.0, rtol=1e-6)


def test_the_cache_is_reused_and_rebuilt_for_another_store(tmp_path, caplog):
    store = write(frame(0), tmp_path / "s")
    lag_store(store)
    manifest = store.path / LAGS_DIR / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    lag_store(Store(store.path))
    assert manifest.stat().st_mtime_ns == stamp
    store = write(frame(1), tmp_path / "s")  # re-written at the same path: the old cache goes with the old store
    assert not (store.path / LAGS_DIR).exists()
    lag_store(store)
    (store.path / LAGS_DIR / "date.npy").write_bytes(b"")  # damaged: rebuilt
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(lags_of(Store(store.path)), expected(frame(1)))
    assert "rebuilding the cache lags-1: column date.npy has 0 bytes" in caplog.text


def test_a_store_without_instruments_has_no_lags(tiny_store):
    with pytest.raises(UserError, match=r"data.lags=true: store .* has no instruments, time_id and responder_N columns"):
        lag_store(Store(tiny_store))


def test_a_store_with_symbols_outside_the_ingest_range_has_no_lags(tmp_path):
    """Stores ingested before symbol_id was checked may hold negative ids, on which the cache's keys collided."""
    df = frame()
    df["symbol_id"] -= 2
    with pytest.raises(UserError) as e:
        lag_store(write(df, tmp_path / "s"))
    assert str(e.value).startswith(f"store {tmp_path / 's'}: has symbol_id values from -2 to 3; lag features (data.lags=true) need "
                                   f"them from 0 to 1048575, as ingest now checks: re-ingest it (python -m jsmp.data ingest")
    assert not (tmp_path / "s" / LAGS_DIR).exists()


def test_verify_checks_the_cache_rows_against_the_store(tmp_path, capsys):
    from jsmp.data.__main__ import main

    store = write(frame(), tmp_path / "s")
    lags = lag_store(store)
    x = lags.gather(np.arange(lags.n_rows))
    wrong = x[::-1].copy()  # whole and checksummed, from this very store, but another row's lags in every row
    with StoreWriter(tmp_path / "w", lags.features, {"date": "int32"}, lags.manifest["source"]) as w:
        w.append(wrong, {"date": np.asarray(lags.side("date"))})
        w.close()
    shutil.rmtree(store.path / LAGS_DIR)
    (tmp_path / "w").rename(store.path / LAGS_DIR)
    main(["verify", str(store.path)])
    row = int(np.argwhere(~((x == wrong) | np.isnan(x) & np.isnan(wrong)))[0, 0])
    assert f"cache lags-1: row {row} does not hold the lags of the store's rows; rebuilt on its next use" in capsys.readouterr().out
    main(["verify", str(store.path), "--rebuild-caches"])
    assert "cache lags-1: rebuilt (row" in capsys.readouterr().out
    main(["verify", str(store.path)])
    assert "cache lags-1: OK" in capsys.readouterr().out
    np.testing.assert_array_equal(lags_of(Store(store.path)), expected(frame()))


def test_a_read_only_store_names_the_store_not_the_cache(tmp_path, monkeypatch):
    store = write(frame(), tmp_path / "s")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == store.path and mode & os.W_OK else real(p, mode))
    with pytest.raises(UserError) as e:
        lag_store(store)
    assert str(e.value) == (f"data.lags=true: store {store.path} is not writable, so its lag features cannot be cached in it "
                            f"(lags-1/, built once); make the store directory writable for one run, or give a writable copy of "
                            f"the store (data.store=COPY)")
    assert "--store" not in str(e.value) and not (store.path / LAGS_DIR).exists()


def test_a_full_disk_while_caching_the_lags_is_one_line_and_leaves_no_temp(tmp_path, monkeypatch, capsys):
    import jsmp.store.store as store_module

    store = write(frame(), tmp_path / "s")
    lag_store(store)
    (store.path / LAGS_DIR / "date.npy").write_bytes(b"")  # damaged: verify --rebuild-caches rebuilds it

    def full(path, parts, shape):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store_module, "_save_rows", full)
    err = data_cli_error(["verify", str(store.path), "--rebuild-caches"], capsys)
    assert re.fullmatch(rf"error: store {re.escape(str(store.path))}: disk full while writing the lag features cache lags-1/ "
                        rf"\(needs 0\.0 MB, [\d.]+ [MG]B free in {re.escape(str(store.path))}\); free some space there and run again", err), err
    assert sorted(p.name for p in store.path.iterdir() if p.name.startswith(".")) == []
