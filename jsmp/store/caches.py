"""Derived caches: data computed from a store and kept inside it, registered here and checked by
one verify (docs/store.md#caches).

Each kind is a `DerivedCache` record (its name in the store, its state, how to build it, and
optionally how to check its rows deeply), defined by the stage that computes it and registered in
`CACHES` by its name: "module:attribute" of the record, resolved with importlib only when a
verify meets the cache in a store (as Hydra resolves a `_target_`), so this stage imports none
of the later ones. Two formats:

- a file cache (`nan-rows.npy`, `fill-ffill/`): its files and a jsmp-cache manifest recording the
  store's identity and each file's bytes and CRC-32 (`cache_manifest`, `file_cache`);
- a store cache (`lags-1/`): a jsmp store of the same rows whose `source` names the store's
  identity (`store_cache_problem`).

A cache from another store, or without checksums, is stale: rebuilt with a warning on its next use.
A damaged one is a UserError saying how to rebuild it (`usable`), unless its kind rebuilds it
on use (the lag cache: its state says stale). `verify_store` checks the store, then every cache
present, checksums and rows included; `--rebuild-caches` rebuilds the damaged and stale ones.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jsmp.errors import UserError
from jsmp.files import remove_stale_temps
from jsmp.store.store import Store, damage_at, file_digest, file_problem, manifest_files

log = logging.getLogger(__name__)

NAN_ROWS = "nan-rows.npy"  # which rows hold a NaN (jsmp.batches.fill.nan_rows)
FFILL_DIR = "fill-ffill"  # the forward-filled shards (jsmp.batches.fill.ffill_store)
LAGS_DIR = "lags-1"  # the lag features (jsmp.batches.lags.lag_store)
CACHES = {  # every cache kind, in verify's order: its name in the store -> "module:attribute" of its DerivedCache
    NAN_ROWS: "jsmp.batches.fill:NAN_ROWS_CACHE",
    FFILL_DIR: "jsmp.batches.fill:FFILL_CACHE",
    LAGS_DIR: "jsmp.batches.lags:LAGS_CACHE",
}
CACHE_FORMAT = "jsmp-cache"


@dataclass(frozen=True)
class DerivedCache:
    """A cache kind: `name` (a file or directory in the store, a key of CACHES); `state(store, full)`
    -> ("absent" | "stale" | "damaged" | "ok", why), checksums too when `full`; `build(store)` writes it (replacing what is
    there); `rows(store)`, if given: None when its rows are what `build` writes, else the first that
    is not, in words (read by verify only: it recomputes them)."""

    name: str
    state: Callable[[Store, bool], tuple[str, str]]
    build: Callable[[Store], object]
    rows: Callable[[Store], str | None] | None = None


def registered(name: str) -> DerivedCache:
    """The DerivedCache of the cache kind `name` (imports the module CACHES names for it)."""
    target = CACHES[name]
    module, _, attr = target.partition(":")
    cache = getattr(importlib.import_module(module), attr)
    if not isinstance(cache, DerivedCache) or cache.name != name:
        raise TypeError(f"{target} is not the DerivedCache of {name}")
    return cache


# -- the two formats ---------------------------------------------------------------------------
def cache_manifest(store: Store, files: dict[str, Path]) -> str:
    """The text of a file cache's manifest: `store`'s identity and each of `files`' (name: path) bytes and CRC-32."""
    return json.dumps({"format": CACHE_FORMAT, "store": store.identity,
                       "files": {name: file_digest(f) for name, f in files.items()}}, indent=1)


def _cache_files(store: Store, meta: Path) -> tuple[dict | None, str]:
    """The {file: {bytes, crc32}} a cache's manifest `meta` records when it was computed from this very
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


def file_cache_state(store: Store, data: Path, meta: Path, full: bool) -> tuple[str, str]:
    """(state, why) of the file cache `data` (a file, or a directory of them) with manifest `meta`;
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


def file_cache(name: str, meta: str, build: Callable[[Store], object]) -> DerivedCache:
    """The DerivedCache of a file cache at `name` whose manifest is `meta` (both relative to the store)."""
    return DerivedCache(name, lambda store, full: file_cache_state(store, store.path / name, store.path / meta, full), build)


def store_cache_problem(store: Store, path: Path, full: bool) -> str | None:
    """Why the store cache at `path` (present) cannot be used (damaged, or computed from another
    store than `store`), or None; checksums too when `full`."""
    if (why := damage_at(path, full=full)) is not None:
        return why
    if Store(path).source.get("store") != store.identity:
        return "it was computed from an earlier store at this path"
    return None


# -- using and verifying -----------------------------------------------------------------------
def usable(store: Store, cache: DerivedCache) -> bool:
    """Whether `cache` can be used as it is in `store` (checksums checked too when the store was
    verified); False when it must be built (with a warning when a stale one is there); UserError when
    it is damaged. Temps of killed builds are removed first."""
    remove_stale_temps(store.path / cache.name)
    state, why = cache.state(store, store.verified)
    if state == "damaged":
        raise UserError(f"store {store.path}: cache {why} (remove {store.path / cache.name}, a cache jsmp rebuilds on the "
                        f"next run, or run: python -m jsmp.data verify {store.path} --rebuild-caches)")
    if state == "stale":
        log.warning("store %s: rebuilding the cache %s: %s", store.path, cache.name, why)
    return state == "ok"


def verify_caches(store: Store, rebuild: bool = False) -> list[str]:
    """Check every cache present in `store`, checksums and rows included: one line per cache. A damaged
    one is a UserError, or rebuilt with `rebuild`, as is a stale one (otherwise rebuilt on its next use)."""
    lines = []
    for name in CACHES:
        remove_stale_temps(store.path / name)
        if not (store.path / name).exists():
            continue
        cache = registered(name)
        state, why = cache.state(store, True)
        if state == "ok" and cache.rows is not None and (why := cache.rows(store) or ""):
            state = "stale"
        if state == "damaged" and not rebuild:
            raise UserError(f"store {store.path}: cache {why} (rebuild it: python -m jsmp.data verify {store.path} --rebuild-caches)")
        if rebuild and state in ("damaged", "stale"):
            cache.build(store)
            lines.append(f"{name}: rebuilt ({why})")
        elif state != "absent":
            lines.append(f"{name}: " + ("OK" if state == "ok" else f"{why}; rebuilt on its next use"))
    return lines


def verify_store(store: Store, rebuild: bool = False) -> list[str]:
    """`python -m jsmp.data verify`'s report: every checksum of `store` (Store.verify; UserError if one
    differs), then its caches (verify_caches); the lines to print."""
    store.verify()
    files = [name for _, name, _ in manifest_files(store.manifest)]
    size = sum((store.path / f).stat().st_size for f in files)
    caches = verify_caches(store, rebuild)
    return [f"store {store.path}: OK ({len(files)} files, {size / 1e6:,.1f} MB, checksums match)",
            *([f"  cache {line}" for line in caches] or ["  no caches"])]

