"""Missing-value fills (`data.fill`, see docs/store.md): the rules, one implementation each,
the training-day statistics they use, and the caches they keep inside a store.

The rules themselves (NaN -> value, the forward fill within a day and instrument) are
jsmp.inputs.fill's. Statistics come from training days only,
computed once by streaming. The forward fill is a sequential pass, so it is computed once per
store and cached inside it as memory-mapped shards; so are the rows' NaN flags: two file caches
of jsmp.store.caches (NAN_ROWS_CACHE, FFILL_CACHE), whose format, checks and verify live there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from jsmp.errors import UserError
from jsmp.files import atomic_path, disk_full_error, replace_dir, write_text_atomic
from jsmp.inputs.fill import ffill_days
from jsmp.store.caches import FFILL_DIR, NAN_ROWS, cache_manifest, file_cache, usable
from jsmp.store.store import Store, create_npy, npy_bytes

log = logging.getLogger(__name__)


def day_ranges(store: Store, day_index: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous (start, stop) row ranges covering the given ascending day indices."""
    ranges: list[tuple[int, int]] = []
    for d in np.asarray(day_index):
        start, stop = int(store.day_offsets[d]), int(store.day_offsets[d + 1])
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


def feature_means(store: Store, day_index: np.ndarray) -> np.ndarray:
    """(n_features,) float32 NaN-ignoring mean of each feature over the given days (0 if all NaN)."""
    total = np.zeros(store.n_features, dtype=np.float64)
    count = np.zeros(store.n_features, dtype=np.int64)
    for block in store.iter_blocks(day_ranges(store, day_index)):
        ok = ~np.isnan(block)
        total += np.where(ok, block, 0).sum(0, dtype=np.float64)
        count += ok.sum(0)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0).astype(np.float32)


NAN_ROWS_META = "nan-rows.json"  # the NaN flags' cache manifest, beside them


def nan_rows(store: Store) -> np.ndarray:
    """(n_rows,) bool: which rows of the store hold a NaN feature (about a fifth in JSMP), so
    a batch gather looks for NaNs only there (Store.gather's `has_nan`).

    One streaming pass over the store the first time, then cached inside it (memory-mapped);
    where the store is read-only the flags are only kept in memory. A forward-filled store
    gets its raw store's flags: a superset of the rows still holding NaNs.
    """
    path = store.path / NAN_ROWS
    if not usable(store, NAN_ROWS_CACHE):
        return write_nan_rows(store)
    try:
        return np.load(path, mmap_mode="r")
    except ValueError as e:  # a damaged header the size check cannot see (the store was not verified)
        raise UserError(f"store {store.path}: cache {NAN_ROWS} is damaged ({e}); remove it, a cache jsmp rebuilds on the next run") from None


def write_nan_rows(store: Store) -> np.ndarray:
    """Compute the NaN flags of `store`'s rows and cache them in it (see nan_rows); returns them."""
    path = store.path / NAN_ROWS
    log.info("flagging the rows of %s that hold NaNs, once, into %s", store.path, path.name)
    raw = Store(store.path)
    flags = np.concatenate([np.isnan(b).any(axis=1) for b in raw.iter_blocks([(0, raw.n_rows)])])
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, flags)
            meta = cache_manifest(store, {NAN_ROWS: tmp})
        write_text_atomic(store.path / NAN_ROWS_META, meta)
    except OSError as e:
        log.warning("store %s: cannot cache %s (%s); recomputing it each run", store.path, NAN_ROWS, e)
    return flags


NAN_ROWS_CACHE = file_cache(NAN_ROWS, NAN_ROWS_META, write_nan_rows)  # registered in jsmp.store.caches.CACHES

CACHE_MANIFEST = "manifest.json"  # inside FFILL_DIR
FFILL_BLOCK_ROWS = 1 << 16


class FilledStore(Store):
    """A store whose feature shards are read from a fill cache directory inside it (same rows and shards)."""

    def __init__(self, path, cache: str = FFILL_DIR):
        super().__init__(path)
        self.cache = cache

    def __getstate__(self):
        return {"path": self.path, "cache": self.cache}

    def __setstate__(self, state):
        self.__init__(state["path"], state["cache"])

    @property
    def shards(self) -> list[np.ndarray]:
        if self._shards is None:
            self._shards = [np.load(self.path / self.cache / f, mmap_mode="r") for f in self.shard_files]
        return self._shards


def _day_blocks(bounds: np.ndarray, limit: int):
    """Split rows 0..bounds[-1] at day `bounds` (ascending, from 0) into blocks of whole days of about `limit` rows."""
    a = 0
    while a < bounds[-1]:
        b = bounds[np.searchsorted(bounds, a + limit, side="right") - 1]
        if b <= a:  # one day longer than the limit
            b = bounds[np.searchsorted(bounds, a, side="right")]
        yield a, b, bounds[(bounds >= a) & (bounds < b)] - a
        a = b


def write_ffill(store: Store, cache: Path) -> None:
    """Write the forward-filled copy of every feature shard, with the cache manifest, into `cache`
    (atomically; each shard's disk space is reserved before it is memory-mapped, so a full disk is
    one UserError saying so and leaves nothing behind)."""
    try:
        with atomic_path(cache, replace=lambda tmp, dst: replace_dir(tmp, dst, Path.is_dir, "cache")) as tmp:
            tmp.mkdir()
            for name, start, shard in zip(store.shard_files, store.shard_starts.tolist(), store.shards):
                offsets = store.day_offsets
                bounds = offsets[(offsets >= start) & (offsets <= start + len(shard))] - start
                out = create_npy(tmp / name, np.float32, shard.shape)
                for a, b, starts in _day_blocks(bounds, FFILL_BLOCK_ROWS):
                    group = store.group_index(start + a, start + b) if store.group else None
                    out[a:b] = ffill_days(np.asarray(shard[a:b]), starts, group)
                out.flush()
                del out
            (tmp / CACHE_MANIFEST).write_text(cache_manifest(store, {name: tmp / name for name in store.shard_files}))
    except OSError as e:
        needed = sum(npy_bytes(np.float32, shard.shape) for shard in store.shards)
        raise disk_full_error(e, f"store {store.path}", f"the forward-fill cache {FFILL_DIR}/", store.path, needed) or UserError(
            f"store {store.path}: cannot write the forward-fill cache {cache} ({e})") from None


def ffill_store(store: Store) -> FilledStore:
    """The store's features forward-filled within each day (and instrument, in a grouped store),
    computed once and cached inside the store."""
    cache = store.path / FFILL_DIR
    if not usable(store, FFILL_CACHE):
        log.info("forward-filling %s once into %s", store.path, cache)
        write_ffill(store, cache)
    filled = FilledStore(store.path, FFILL_DIR)
    filled.verified = store.verified
    return filled


FFILL_CACHE = file_cache(FFILL_DIR, f"{FFILL_DIR}/{CACHE_MANIFEST}",  # registered in jsmp.store.caches.CACHES
                         lambda store: write_ffill(store, store.path / FFILL_DIR))


def fill_source(store: Store, fill: str, train_days: np.ndarray) -> tuple[Store, np.ndarray]:
    """Where to gather features from for `data.fill`, and the (n_features,) value for the NaNs left there.

    mean: the store, training-day means; zero: the store, zeros; ffill: the cached forward-filled
    copy, training-day means (of the raw values) for NaNs before a day's first value.
    """
    if fill == "zero":
        return store, np.zeros(store.n_features, dtype=np.float32)
    means = feature_means(store, train_days)
    return (ffill_store(store) if fill == "ffill" else store), means
