"""Lag features (`data.lags=true`, docs/rtmdf.md): each row's responders of the previous date, same
instrument and same time_id, as the 2024 competition served them (`responder_N_lag_1`).

They are strictly causal: a row of date D gets values of date D - 1 only (never of its own date), NaN
where that instrument had no row at that time on D - 1, or D - 1 is not in the store. Computed once
per store by streaming its days (memory: two days' side columns) and cached inside it as a small
jsmp store of the same rows (`lags-1/`, features = the lag columns), so batches gather them by row
index like the features (jsmp.batches.datamodule.RowBatches' `lags`), never per batch. The cache
records the store's identity and is rebuilt, with a warning, when the store changed.
"""

from __future__ import annotations

import logging
import re

import numpy as np
from tqdm.auto import tqdm

from jsmp.errors import UserError
from jsmp.store.store import Store, StoreWriter, damage_at, is_store

log = logging.getLogger(__name__)

LAGS_DIR = "lags-1"  # inside the store: replaced with it when the store is re-ingested
_RESPONDER = re.compile(r"^responder_(\d+)$")


def responders(store: Store) -> list[str]:
    """The store's `responder_N` columns, by N."""
    names = [c for c in store.manifest["side"] if _RESPONDER.match(c)]
    return sorted(names, key=lambda c: int(_RESPONDER.match(c).group(1)))


def lag_names(store: Store) -> list[str]:
    """The lag features of `store`: `responder_N_lag_1` for each of its responders."""
    return [f"{c}_lag_1" for c in responders(store)]


def check_lags(store: Store) -> None:
    """A UserError unless `store` can have lag features: a grouped store with time_id and responders."""
    if store.group is None or "time_id" not in store.manifest["side"] or not responders(store):
        raise UserError(f"data.lags=true: store {store.path} has no instruments, time_id and responder_N columns; "
                        f"lag features need a store of the 2024 layout (python -m jsmp.data ingest train.parquet, or data=rtmdf)")


def previous_date_rows(date: int, keys: np.ndarray, prev: tuple[int, np.ndarray, np.ndarray] | None) -> np.ndarray:
    """For the rows of one date with `keys` (n,) int64 (time_id and instrument packed), the store row
    with the same key on date - 1, from `prev` = (the previous day's date, keys, store rows), else -1."""
    out = np.full(len(keys), -1, dtype=np.int64)
    if prev is None or prev[0] != date - 1 or len(prev[1]) == 0:
        return out
    _, pkeys, prows = prev
    order = np.argsort(pkeys, kind="stable")
    at = np.searchsorted(pkeys, keys, sorter=order)
    at = np.minimum(at, len(pkeys) - 1)
    hit = pkeys[order[at]] == keys
    out[hit] = prows[order[at[hit]]]
    return out


def write_lags(store: Store) -> Store:
    """Compute the lag features of every row of `store` into its cache `lags-1/` (atomically); returns it."""
    check_lags(store)
    path = store.path / LAGS_DIR
    names, cols = lag_names(store), [store.side(c) for c in responders(store)]
    date, time, group = store.side("date"), store.side("time_id"), store.side(store.group)
    width = int(np.max(group)) + 1 if store.n_rows else 1
    source = {"kind": "lags", "store": store.identity, "path": str(store.path)}
    log.info("computing the lag features of %s once, into %s", store.path, path)
    prev = None
    try:
        with StoreWriter(path, names, {"date": "int32"}, source) as w, tqdm(
                total=store.n_rows, unit="row", unit_scale=True, desc="lag features", disable=None) as bar:
            for d in range(store.n_days):
                a, b = int(store.day_offsets[d]), int(store.day_offsets[d + 1])
                keys = np.asarray(time[a:b], dtype=np.int64) * width + np.asarray(group[a:b], dtype=np.int64)
                src = previous_date_rows(int(store.days[d]), keys, prev)
                x = np.full((b - a, len(names)), np.nan, dtype=np.float32)
                hit = src >= 0
                for j, col in enumerate(cols):
                    x[hit, j] = col[src[hit]]
                w.append(x, {"date": np.asarray(date[a:b])})
                prev = (int(store.days[d]), keys, np.arange(a, b, dtype=np.int64))
                bar.update(b - a)
            w.close()
    except OSError as e:
        raise UserError(f"store {store.path}: cannot write the lag features into {path} ({e.strerror or e})") from None
    return Store(path)


def cache_problem(store: Store, full: bool) -> str | None:
    """Why the lag cache of `store` cannot be used (absent, damaged, from another store), or None."""
    path = store.path / LAGS_DIR
    if not is_store(path):
        return "absent"
    if (why := damage_at(path, full=full)) is not None:
        return why
    if Store(path).manifest["source"].get("store") != store.identity:
        return "it was computed from an earlier store at this path"
    return None


def lag_store(store: Store) -> Store:
    """The lag features of `store`'s rows (a Store of the same rows): the cache, built first when it is
    absent, from another store, or damaged (checksums checked too when `store` was verified)."""
    check_lags(store)
    why = cache_problem(store, full=store.verified)
    if why is None:
        return Store(store.path / LAGS_DIR)
    if why != "absent":
        log.warning("store %s: rebuilding the lag features %s: %s", store.path, LAGS_DIR, why)
    return write_lags(store)


def verify_lags(store: Store, rebuild: bool = False) -> str | None:
    """`python -m jsmp.data verify`'s line for the lag cache (checksums included; None without one):
    OK, or what is wrong and that it is rebuilt on its next use (now, with `rebuild`)."""
    why = cache_problem(store, full=True)
    if why == "absent":
        return None
    if why is None:
        return f"{LAGS_DIR}: OK"
    if rebuild:
        write_lags(store)
        return f"{LAGS_DIR}: rebuilt ({why})"
    return f"{LAGS_DIR}: {why}; rebuilt on its next use"
