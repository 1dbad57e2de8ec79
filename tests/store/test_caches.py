"""The derived caches' registry and the one verify (jsmp/store/caches.py, docs/store.md#caches)."""

import json

import pytest

from jsmp.batches.fill import NAN_ROWS_META, ffill_store, nan_rows
from jsmp.batches.lags import lag_store
from jsmp.data import synthetic_rtmdf
from jsmp.store import caches
from jsmp.store.caches import CACHES, FFILL_DIR, LAGS_DIR, NAN_ROWS, DerivedCache, registered, verify_store
from jsmp.store.store import Store


def test_every_registered_cache_kind_resolves_to_its_record():
    assert list(CACHES) == [NAN_ROWS, FFILL_DIR, LAGS_DIR]  # verify's order
    for name in CACHES:
        cache = registered(name)
        assert isinstance(cache, DerivedCache) and cache.name == name
    assert registered(LAGS_DIR).rows is not None and registered(NAN_ROWS).rows is None


def test_a_registry_entry_naming_another_record_is_refused(monkeypatch):
    monkeypatch.setitem(CACHES, NAN_ROWS, "jsmp.batches.fill:FFILL_CACHE")
    with pytest.raises(TypeError, match="jsmp.batches.fill:FFILL_CACHE is not the DerivedCache of nan-rows.npy"):
        registered(NAN_ROWS)


def test_verify_checks_the_store_then_every_cache_present_in_one_path(tmp_path, monkeypatch):
    path = synthetic_rtmdf.write_store(synthetic_rtmdf.RtmdfSpec(days=6, times=5, symbols=4, seed=1), tmp_path / "s", shard_rows=40)
    store = Store(path)
    with monkeypatch.context() as m:  # no cache in the store: no cache kind is resolved (nothing of a later stage imported)
        m.setattr(caches, "registered", lambda name: pytest.fail(f"resolved {name}"))
        lines = verify_store(store)
    assert lines[0].startswith(f"store {path}: OK (") and lines[0].endswith(" MB, checksums match)")
    assert lines[1:] == ["  no caches"]
    nan_rows(store), ffill_store(store), lag_store(store)
    assert verify_store(Store(path))[1:] == ["  cache nan-rows.npy: OK", "  cache fill-ffill: OK", "  cache lags-1: OK"]

    meta = json.loads((path / NAN_ROWS_META).read_text())
    (path / NAN_ROWS_META).write_text(json.dumps({**meta, "store": "00000000"}))  # stale: from another store
    size = (path / LAGS_DIR / "date.npy").stat().st_size
    (path / LAGS_DIR / "date.npy").write_bytes(b"")  # damaged, which the lag cache's use rebuilds: stale too
    stale = ["  cache nan-rows.npy: it was computed from an earlier store at this path; rebuilt on its next use",
             "  cache fill-ffill: OK",
             f"  cache lags-1: column date.npy has 0 bytes, the manifest says {size}; rebuilt on its next use"]
    assert verify_store(Store(path))[1:] == stale
    assert verify_store(Store(path), rebuild=True)[1:] == [
        "  cache nan-rows.npy: rebuilt (it was computed from an earlier store at this path)", "  cache fill-ffill: OK",
        stale[2].replace("  cache lags-1: ", "  cache lags-1: rebuilt (").replace("; rebuilt on its next use", ")")]
    assert verify_store(Store(path))[1:] == ["  cache nan-rows.npy: OK", "  cache fill-ffill: OK", "  cache lags-1: OK"]
