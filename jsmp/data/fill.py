"""Missing-value fills (`data.fill`): statistics from training days only, computed once by
streaming; the forward fill is a sequential pass, so it is computed once per store and cached
inside it as memory-mapped shards."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from jsmp.data.store import Store
from jsmp.errors import UserError

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


def fill_nan(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Replace NaNs in `x` (..., n_features) by `value` (n_features,), in place when writable."""
    if not x.flags.writeable:
        x = x.copy()
    np.copyto(x, np.broadcast_to(value, x.shape), where=np.isnan(x))
    return x


NAN_ROWS = "nan-rows.npy"  # inside the store, like FFILL_DIR


def nan_rows(store: Store) -> np.ndarray:
    """(n_rows,) bool: which rows of the store hold a NaN feature (about a fifth in JSMP), so
    a batch gather looks for NaNs only there (Store.gather's `has_nan`).

    One streaming pass over the store the first time, then cached inside it (memory-mapped);
    where the store is read-only the flags are only kept in memory. A forward-filled store
    gets its raw store's flags: a superset of the rows still holding NaNs.
    """
    path = store.path / NAN_ROWS
    if path.is_file():
        return np.load(path, mmap_mode="r")
    log.info("flagging the rows of %s that hold NaNs, once, into %s", store.path, path.name)
    raw = Store(store.path)
    flags = np.concatenate([np.isnan(b).any(axis=1) for b in raw.iter_blocks([(0, raw.n_rows)])])
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}.npy")
    try:
        np.save(tmp, flags)
        os.rename(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        log.warning("store %s: cannot cache %s (%s); recomputing it each run", store.path, NAN_ROWS, e)
    return flags


FILLS = ("mean", "ffill", "zero")
FFILL_DIR = "fill-ffill"  # inside the store: replaced with it when the store is re-ingested
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
            self._shards = [np.load(self.path / self.cache / s["file"], mmap_mode="r") for s in self.manifest["shards"]]
        return self._shards


def ffill_days(x: np.ndarray, day_starts: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs in `x` (n, F) down its rows, never across a day: `day_starts` (ascending, incl. 0)
    are the rows where days begin. NaNs before a day's first value stay NaN."""
    n = len(x)
    rows = np.arange(n, dtype=np.int32)
    src = np.where(np.isnan(x), np.int32(0), rows[:, None])
    src[day_starts] = rows[day_starts, None]  # a day's first row points at itself: nothing carries over
    np.maximum.accumulate(src, axis=0, out=src)
    return np.take_along_axis(x, src, axis=0)


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
    """Write the forward-filled copy of every feature shard into `cache` (atomically)."""
    tmp = cache.with_name(f".{cache.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        for meta, shard in zip(store.manifest["shards"], store.shards):
            offsets = store.day_offsets
            bounds = offsets[(offsets >= meta["start"]) & (offsets <= meta["stop"])] - meta["start"]
            out = np.lib.format.open_memmap(tmp / meta["file"], mode="w+", dtype=np.float32, shape=shard.shape)
            for a, b, starts in _day_blocks(bounds, FFILL_BLOCK_ROWS):
                out[a:b] = ffill_days(np.asarray(shard[a:b]), starts)
            out.flush()
            del out
        os.rename(tmp, cache)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if cache.is_dir():  # another run finished it first
            return
        raise UserError(f"store {store.path}: cannot write the forward-fill cache {cache} ({e})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ffill_store(store: Store) -> FilledStore:
    """The store's features forward-filled within each day, computed once and cached inside the store."""
    cache = store.path / FFILL_DIR
    if not cache.is_dir():
        log.info("forward-filling %s once into %s", store.path, cache)
        write_ffill(store, cache)
    return FilledStore(store.path, FFILL_DIR)


def fill_source(store: Store, fill: str, train_days: np.ndarray) -> tuple[Store, np.ndarray]:
    """Where to gather features from for `data.fill`, and the (n_features,) value for the NaNs left there.

    mean: the store, training-day means; zero: the store, zeros; ffill: the cached forward-filled
    copy, training-day means (of the raw values) for NaNs before a day's first value.
    """
    if fill == "zero":
        return store, np.zeros(store.n_features, dtype=np.float32)
    means = feature_means(store, train_days)
    return (ffill_store(store) if fill == "ffill" else store), means
