"""Lag features (`data.lags=true`, docs/rtmdf.md): each row's responders of the previous date, same
instrument and same time_id, as the 2024 competition served them (`responder_N_lag_1`).

They are strictly causal: a row of date D gets values of date D - 1 only (never of its own date), NaN
where that instrument had no row at that time on D - 1, or D - 1 is not in the store. Computed once
per store by streaming its days (memory: two days' side columns) and cached inside it as a small
jsmp store of the same rows (`lags-1/`, features = the lag columns), so batches gather them by row
index like the features (jsmp.batches.datamodule.RowBatches' `lags`), never per batch. The cache
records the store's identity and is rebuilt, with a warning, when the store changed (LAGS_CACHE, a store
cache of jsmp.store.caches, whose verify also recomputes its rows).
"""

from __future__ import annotations

import logging
import os

import numpy as np
from tqdm.auto import tqdm

from jsmp.data.schema import SYMBOL_MAX, lag_name, responders
from jsmp.errors import UserError
from jsmp.files import disk_full_error
from jsmp.inputs.lags import KeyIndex, previous_date_rows
from jsmp.store.caches import LAGS_DIR, DerivedCache, store_cache_problem, usable
from jsmp.store.store import Store, StoreWriter, is_store

log = logging.getLogger(__name__)

def lag_names(store: Store) -> list[str]:
    """The lag features of `store`: `responder_N_lag_1` for each of its responders, by N."""
    return [lag_name(c) for c in responders(store.side_names)]


def check_lags(store: Store) -> None:
    """A UserError unless `store` can have lag features: a grouped store with time_id and responders,
    its instruments numbered 0..SYMBOL_MAX (as ingest checks them: stores ingested before may hold others)."""
    if store.group is None or not store.has("time_id") or not responders(store.side_names):
        raise UserError(f"data.lags=true: store {store.path} has no instruments, time_id and responder_N columns; "
                        f"lag features need a store of the 2024 layout (python -m jsmp.data ingest train.parquet, or data=rtmdf)")
    lo, hi = int(store.group_values.min()), int(store.group_values.max())
    if lo < 0 or hi > SYMBOL_MAX:
        raise UserError(f"store {store.path}: has {store.group} values from {lo} to {hi}; lag features (data.lags=true) need them "
                        f"from 0 to {SYMBOL_MAX}, as ingest now checks: re-ingest it ({store.rebuild_command})")


def lag_days(store: Store):
    """Yield (start, stop, x) per day of `store` (checked by check_lags): x (stop - start, n_lags)
    float32, the lag features of its rows start..stop-1 (jsmp.inputs.lags.previous_date_rows; NaN
    where absent). Memory: two days' columns."""
    cols = [store.side(c) for c in responders(store.side_names)]
    time, group = store.side("time_id"), store.side(store.group)
    prev, base = None, 0  # the date before: (its date, KeyIndex), its first store row
    for d in range(store.n_days):
        a, b = int(store.day_offsets[d]), int(store.day_offsets[d + 1])
        date, keys = int(store.days[d]), (time[a:b], group[a:b])
        src = previous_date_rows(date, *keys, prev)
        x = np.full((b - a, len(cols)), np.nan, dtype=np.float32)
        hit = src >= 0
        rows = base + src[hit]  # store rows
        for j, col in enumerate(cols):
            x[hit, j] = col[rows]
        yield a, b, x
        prev, base = (date, KeyIndex(*keys)), a


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


def _cache_state(store: Store, full: bool) -> tuple[str, str]:
    """The lag cache's state in `store` (LAGS_CACHE's): absent, stale (damaged too: lag_store rebuilds it)
    or ok, checksums too when `full`; a UserError when `store` cannot have lags (check_lags)."""
    path = store.path / LAGS_DIR
    if not is_store(path):
        return "absent", ""
    check_lags(store)
    if (why := store_cache_problem(store, path, full)) is None:
        cache, names = Store(path), lag_names(store)
        if cache.n_rows != store.n_rows or cache.features != names:
            why = f"it holds {cache.n_rows} rows of {cache.n_features} lags, the store {store.n_rows} rows of {len(names)}"
    return ("stale", why) if why else ("ok", "")


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
    return Store(store.path / LAGS_DIR) if usable(store, LAGS_CACHE) else write_lags(store)


LAGS_CACHE = DerivedCache(LAGS_DIR, _cache_state, write_lags, rows_problem)  # registered in jsmp.store.caches.CACHES
