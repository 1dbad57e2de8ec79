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
import os
import re

import numpy as np
from tqdm.auto import tqdm

from jsmp.data.schema import SYMBOL_MAX
from jsmp.errors import UserError
from jsmp.files import disk_full_error
from jsmp.store.store import Store, StoreWriter, damage_at, is_store, rebuild_hint

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
    """A UserError unless `store` can have lag features: a grouped store with time_id and responders,
    its instruments numbered 0..SYMBOL_MAX (as ingest checks them: stores ingested before may hold others)."""
    if store.group is None or "time_id" not in store.manifest["side"] or not responders(store):
        raise UserError(f"data.lags=true: store {store.path} has no instruments, time_id and responder_N columns; "
                        f"lag features need a store of the 2024 layout (python -m jsmp.data ingest train.parquet, or data=rtmdf)")
    lo, hi = int(store.group_values.min()), int(store.group_values.max())
    if lo < 0 or hi > SYMBOL_MAX:
        raise UserError(f"store {store.path}: has {store.group} values from {lo} to {hi}; lag features (data.lags=true) need them "
                        f"from 0 to {SYMBOL_MAX}, as ingest now checks: re-ingest it ({rebuild_hint(store.path, store.manifest)})")


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


def lag_days(store: Store):
    """Yield (start, stop, x) per day of `store` (checked by check_lags): x (stop - start, n_lags)
    float32, the lag features of its rows start..stop-1 (NaN where absent). Memory: two days' columns."""
    cols = [store.side(c) for c in responders(store)]
    time, group = store.side("time_id"), store.side(store.group)
    width = int(store.group_values.max()) + 1
    # time_id * width + symbol is one key per (time_id, symbol) as 0 <= symbol < width (check_lags), and
    # fits int64: |time_id| < 2**31 (int32), width <= 2**20
    assert 0 <= store.group_values.min() and width <= SYMBOL_MAX + 1
    prev = None
    for d in range(store.n_days):
        a, b = int(store.day_offsets[d]), int(store.day_offsets[d + 1])
        keys = np.asarray(time[a:b], dtype=np.int64) * width + np.asarray(group[a:b], dtype=np.int64)
        src = previous_date_rows(int(store.days[d]), keys, prev)
        x = np.full((b - a, len(cols)), np.nan, dtype=np.float32)
        hit = src >= 0
        for j, col in enumerate(cols):
            x[hit, j] = col[src[hit]]
        yield a, b, x
        prev = (int(store.days[d]), keys, np.arange(a, b, dtype=np.int64))


def write_lags(store: Store) -> Store:
    """Compute the lag features of every row of `store` into its cache `lags-1/` (atomically); returns it.
    A store directory that is not writable, or a full disk, is a one-line UserError saying so."""
    check_lags(store)
    path = store.path / LAGS_DIR
    if not os.access(store.path, os.W_OK | os.X_OK):
        raise UserError(f"data.lags=true: store {store.path} is not writable, so its lag features cannot be cached in it "
                        f"({LAGS_DIR}/, built once); make the store directory writable for one run, or give a writable "
                        f"copy of the store (data.store=COPY)")
    names, date = lag_names(store), store.side("date")
    source = {"kind": "lags", "store": store.identity, "path": str(store.path)}
    log.info("computing the lag features of %s once, into %s", store.path, path)
    try:
        with StoreWriter(path, names, {"date": "int32"}, source) as w, tqdm(
                total=store.n_rows, unit="row", unit_scale=True, desc="lag features", disable=None) as bar:
            for a, b, x in lag_days(store):
                w.append(x, {"date": np.asarray(date[a:b])})
                bar.update(b - a)
            w.close()
    except OSError as e:
        needed = store.n_rows * (len(names) + 1) * 4
        raise disk_full_error(e, f"store {store.path}", f"the lag features cache {LAGS_DIR}/", store.path, needed) or UserError(
            f"store {store.path}: cannot write the lag features into {path} ({e.strerror or e})") from None
    return Store(path)


def cache_problem(store: Store, full: bool) -> str | None:
    """Why the lag cache of `store` cannot be used (absent, damaged, from another store), or None."""
    path = store.path / LAGS_DIR
    if not is_store(path):
        return "absent"
    if (why := damage_at(path, full=full)) is not None:
        return why
    cache = Store(path)
    if cache.manifest["source"].get("store") != store.identity:
        return "it was computed from an earlier store at this path"
    if cache.n_rows != store.n_rows or cache.features != lag_names(store):
        return f"it holds {cache.n_rows} rows of {cache.n_features} lags, the store {store.n_rows} rows of {len(lag_names(store))}"
    return None


def rows_problem(store: Store) -> str | None:
    """None when the (whole) lag cache of `store` holds the lags of its rows, computed again day by day
    (a cache of an older jsmp may not: its keys collided on negative symbol_ids), else the first row that does not."""
    cache = Store(store.path / LAGS_DIR)
    for a, b, x in lag_days(store):
        have = cache.gather(np.arange(a, b))
        if (bad := ~((have == x) | (np.isnan(have) & np.isnan(x)))).any():
            return f"row {a + int(np.argwhere(bad)[0, 0])} does not hold the lags of the store's rows"
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
    check_lags(store)
    why = why or rows_problem(store)
    if why is None:
        return f"{LAGS_DIR}: OK"
    if rebuild:
        write_lags(store)
        return f"{LAGS_DIR}: rebuilt ({why})"
    return f"{LAGS_DIR}: {why}; rebuilt on its next use"
