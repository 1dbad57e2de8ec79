"""Missing-value fills (`data.fill`, see docs/store.md): the rules, one implementation each,
the training-day statistics they use, and the caches they keep inside a store.

Rules: NaN -> value (`fill_nan`; mean and zero, and the NaNs ffill leaves) and forward fill
within a day, and within each instrument's own rows in a grouped store (`ffill_days`, over the compiled jsmp.store.kernels.ffill_row, which serving's
jsmp.batches.inputs.OnlineFill applies row by row). Statistics come from training days only,
computed once by streaming. The forward fill is a sequential pass, so it is computed once per
store and cached inside it as memory-mapped shards; so are the rows' NaN flags. Caches carry a
manifest (the store's identity, each file's bytes and CRC-32): one from another store or
without it is rebuilt with a warning, a damaged one is a UserError saying how to rebuild it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from jsmp.errors import UserError
from jsmp.files import atomic_path, disk_full_error, remove_stale_temps, replace_dir, write_text_atomic
from jsmp.store.store import Store, create_npy, file_digest, file_problem, npy_bytes

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
    """The NaN -> value rule (`data.fill` mean and zero, and what ffill leaves): NaNs in `x`
    (..., n_features) become `value` (n_features,); in place when writable."""
    if not x.flags.writeable:
        x = x.copy()
    np.copyto(x, value, where=np.isnan(x))
    return x


CACHE_FORMAT = "jsmp-cache"
NAN_ROWS = "nan-rows.npy"  # inside the store, like FFILL_DIR
NAN_ROWS_META = "nan-rows.json"


def _cache_files(store: Store, meta: Path) -> tuple[dict | None, str]:
    """The {file: {bytes, crc32}} a cache's manifest records when it was computed from this very
    store, else (None, why it cannot be used)."""
    try:
        m = json.loads(meta.read_text())
    except FileNotFoundError:
        return None, "it has no checksums (an older jsmp wrote it, or its write was cut short)"
    except (OSError, ValueError) as e:
        return None, f"its manifest {meta.name} is unreadable ({e})"
    if not isinstance(m, dict) or m.get("format") != CACHE_FORMAT or not isinstance(m.get("files"), dict):
        return None, f"its manifest {meta.name} is not a jsmp cache manifest"
    if m.get("store") != store.identity:
        return None, "it was computed from an earlier store at this path"
    return m["files"], ""


def _cache_meta(store: Store, files: dict[str, Path]) -> str:
    return json.dumps({"format": CACHE_FORMAT, "store": store.identity,
                       "files": {name: file_digest(f) for name, f in files.items()}}, indent=1)


def _cache_state(store: Store, data: Path, meta: Path, full: bool) -> tuple[str, str]:
    """("absent" | "stale" | "damaged" | "ok", why) of the cache `data` with manifest `meta`;
    checksums only when `full`."""
    if not data.exists():
        return "absent", ""
    files, why = _cache_files(store, meta)
    if files is None:
        return "stale", why
    base = data if data.is_dir() else data.parent
    for name, record in files.items():
        if problem := file_problem(base / name, record, full):
            return "damaged", f"{(base / name).relative_to(store.path)} {problem}"
    return "ok", ""


def _check_cache(store: Store, data: Path, meta: Path) -> bool:
    """Whether the cache `data` can be used as it is (checksums checked too when the store was
    verified); False when it must be built; UserError when it is damaged."""
    remove_stale_temps(data)
    state, why = _cache_state(store, data, meta, full=store.verified)
    if state == "damaged":
        raise UserError(f"store {store.path}: cache {why} (remove {data}, a cache jsmp rebuilds on the next run, "
                        f"or run: python -m jsmp.data verify {store.path} --rebuild-caches)")
    if state == "stale":
        log.warning("store %s: rebuilding the cache %s: %s", store.path, data.name, why)
    return state == "ok"


def nan_rows(store: Store) -> np.ndarray:
    """(n_rows,) bool: which rows of the store hold a NaN feature (about a fifth in JSMP), so
    a batch gather looks for NaNs only there (Store.gather's `has_nan`).

    One streaming pass over the store the first time, then cached inside it (memory-mapped);
    where the store is read-only the flags are only kept in memory. A forward-filled store
    gets its raw store's flags: a superset of the rows still holding NaNs.
    """
    path = store.path / NAN_ROWS
    if not _check_cache(store, path, store.path / NAN_ROWS_META):
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
            meta = _cache_meta(store, {NAN_ROWS: tmp})
        write_text_atomic(store.path / NAN_ROWS_META, meta)
    except OSError as e:
        log.warning("store %s: cannot cache %s (%s); recomputing it each run", store.path, NAN_ROWS, e)
    return flags


FILLS = ("mean", "ffill", "zero")
FFILL_DIR = "fill-ffill"  # inside the store: replaced with it when the store is re-ingested
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
            self._shards = [np.load(self.path / self.cache / s["file"], mmap_mode="r") for s in self.manifest["shards"]]
        return self._shards


def ffill_days(x: np.ndarray, day_starts: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """A forward-filled copy of `x` (n, F): the ffill rule (jsmp.store.kernels.ffill_row) down its
    rows, never across a day; `day_starts`: the rows where days begin (ascending, incl. 0). With
    `group` (n,) int (0-based group indices: a grouped store's instruments), each row takes only
    its own group's values. NaNs before a (group's) day's first value stay NaN."""
    from jsmp.store.kernels import ffill_rows  # compiled on first use

    out = np.array(x, copy=True)
    new_day = np.zeros(len(out), dtype=bool)
    new_day[day_starts] = True
    if group is None:
        group = np.zeros(len(out), dtype=np.int32)
    n_groups = int(group.max()) + 1 if len(group) else 1
    ffill_rows(out, new_day, group, np.full((n_groups, out.shape[1]), np.nan, dtype=out.dtype))
    return out


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
            for meta, shard in zip(store.manifest["shards"], store.shards):
                offsets = store.day_offsets
                bounds = offsets[(offsets >= meta["start"]) & (offsets <= meta["stop"])] - meta["start"]
                out = create_npy(tmp / meta["file"], np.float32, shard.shape)
                for a, b, starts in _day_blocks(bounds, FFILL_BLOCK_ROWS):
                    group = store.group_index(meta["start"] + a, meta["start"] + b) if store.group else None
                    out[a:b] = ffill_days(np.asarray(shard[a:b]), starts, group)
                out.flush()
                del out
            files = {s["file"]: tmp / s["file"] for s in store.manifest["shards"]}
            (tmp / CACHE_MANIFEST).write_text(_cache_meta(store, files))
    except OSError as e:
        needed = sum(npy_bytes(np.float32, shard.shape) for shard in store.shards)
        raise disk_full_error(e, f"store {store.path}", f"the forward-fill cache {FFILL_DIR}/", store.path, needed) or UserError(
            f"store {store.path}: cannot write the forward-fill cache {cache} ({e})") from None


def ffill_store(store: Store) -> FilledStore:
    """The store's features forward-filled within each day (and instrument, in a grouped store),
    computed once and cached inside the store."""
    cache = store.path / FFILL_DIR
    if not _check_cache(store, cache, cache / CACHE_MANIFEST):
        log.info("forward-filling %s once into %s", store.path, cache)
        write_ffill(store, cache)
    filled = FilledStore(store.path, FFILL_DIR)
    filled.verified = store.verified
    return filled


CACHES = {  # name: (its manifest, relative to the store; how to build it)
    NAN_ROWS: (NAN_ROWS_META, write_nan_rows),
    FFILL_DIR: (f"{FFILL_DIR}/{CACHE_MANIFEST}", lambda store: write_ffill(store, store.path / FFILL_DIR)),
}


def verify_caches(store: Store, rebuild: bool = False) -> list[str]:
    """Check every cache present in `store`, checksums included: one line per cache. A damaged
    one is a UserError, or rebuilt with `rebuild`, as is a stale one (one without checksums or
    from another store, which is otherwise rebuilt on its next use)."""
    lines = []
    for name, (meta, build) in CACHES.items():
        data = store.path / name
        remove_stale_temps(data)
        state, why = _cache_state(store, data, store.path / meta, full=True)
        if state == "damaged" and not rebuild:
            raise UserError(f"store {store.path}: cache {why} (rebuild it: python -m jsmp.data verify {store.path} --rebuild-caches)")
        if rebuild and state in ("damaged", "stale"):
            build(store)
            lines.append(f"{name}: rebuilt ({why})")
        elif state != "absent":
            lines.append(f"{name}: " + ("OK" if state == "ok" else f"{why}; rebuilt on its next use"))
    return lines


def fill_source(store: Store, fill: str, train_days: np.ndarray) -> tuple[Store, np.ndarray]:
    """Where to gather features from for `data.fill`, and the (n_features,) value for the NaNs left there.

    mean: the store, training-day means; zero: the store, zeros; ffill: the cached forward-filled
    copy, training-day means (of the raw values) for NaNs before a day's first value.
    """
    if fill == "zero":
        return store, np.zeros(store.n_features, dtype=np.float32)
    means = feature_means(store, train_days)
    return (ffill_store(store) if fill == "ffill" else store), means
