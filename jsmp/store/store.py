"""The jsmp store: memory-mapped, row-major float32 feature shards plus a manifest.

Layout of a store directory::

    manifest.json          format, version, features, row/day counts, shards, day offsets, source
    features-00000.npy     (rows, n_features) float32, row-major, whole days only
    features-00001.npy     ...
    date.npy weight.npy resp*.npy ts_id.npy [ideal.npy]   one value per row
    [group-order.npy group-pos.npy]                      grouped stores only (below)
    [nan-rows.npy fill-ffill/ lags-1/]                   derived caches, registered in jsmp.store.caches

Rows are in time order (`ts_id`; `date`, `time_id` in 2024) and `date` never decreases, so day d
owns the contiguous rows `day_offsets[d] : day_offsets[d + 1]` (d is the day's index, `days[d]`
its date value).

A grouped store (the 2024 layout: many instruments side by side) names its group column
(`group`, e.g. `symbol_id`) and time order (`time`). Its rows sorted stably by group are
`group-order.npy` ((n,) int64 store rows: each group's rows contiguous and in time order; group
k holds positions `groups.offsets[k] : groups.offsets[k + 1]`, its value `groups.values[k]`),
and `group-pos.npy` is the inverse ((n,) int64: row -> position). A store without a group (the
2021 layout) is the one-group case: its position is its row.

A store is written into a temporary sibling directory and renamed into place only when
complete, so a directory holding `manifest.json` is always a whole store. The manifest
records every file's size and CRC-32 (shards in `shards`, side columns in `side_digests`)
and its own checksum (`manifest_crc32`); stores written before those keys are still read.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jsmp.data.schema import FEATURE_LIMIT
from jsmp.errors import UserError
from jsmp.files import claim_destination, preallocate, remove_stale_temps, replace_dir, temp_sibling

FORMAT = "jsmp-store"
VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_SHARD_ROWS = 1 << 18  # 262,144 rows x 130 features x 4 B = 136 MB per shard
REQUIRED = ("features", "n_rows", "n_days", "days", "day_offsets", "shards", "side")
GROUP_ORDER, GROUP_POS = "group-order.npy", "group-pos.npy"
INDEX_BLOCK = 1 << 22  # rows per step when inverting the group order (32 MB of int64)


def _shard_name(i: int) -> str:
    return f"features-{i:05d}.npy"


class StoreWriter:
    """Streams rows (in `ts_id` order) into a new store at `path`.

    Use as a context manager; on an exception the temporary directory is removed and any
    store already at `path` is left untouched. Memory is bounded by about one shard: side
    columns are appended to raw files in the temporary directory with every shard.

    `path` (`--store`) is checked before anything is written (one-line UserError): it may be
    absent, an empty directory or a jsmp store, never equal to or contain one of `inputs` or
    the current directory, and its parent must be writable. A symlink to a store is
    followed: the store it points to is replaced. Writers of one path take turns for the final
    swap, so racing writers both succeed and the last one's store stays.

    `group` names an integer side column whose values group the rows (instruments); `time` the
    integer side columns, most significant first, that order them (`date` first): rows must come
    in that order (ValueError otherwise). A grouped store's index is built at close: a stable
    argsort of the group column (numpy's radix sort: the values are cast to 16 bits when they
    fit), about 25 bytes per row at its peak (the order and its inverse, int64, and the sort's
    buffers; 1.2 GB for 47M rows), nothing per feature.

    `feature_limit`: every feature value appended must be NaN or within ±feature_limit (ValueError
    otherwise: ingest's reader refuses such values first, in one line); recorded in the manifest.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        features: list[str],
        side_dtypes: dict[str, str],
        source: dict,
        columns: list[str] | None = None,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        inputs: Sequence[str | os.PathLike] = (),
        group: str | None = None,
        time: Sequence[str] = ("date",),
        feature_limit: float | None = None,
    ):
        if "date" not in side_dtypes:
            raise ValueError("side_dtypes must include 'date'")
        self.group, self.time = group, tuple(time)
        if not self.time or self.time[0] != "date":
            raise ValueError(f"time must start with 'date', got {list(self.time)}")
        for name in ([group] if group is not None else []) + list(self.time):
            if name not in side_dtypes or np.dtype(side_dtypes[name]).kind not in "iu":
                raise ValueError(f"{name!r} must be an integer side column, side_dtypes has {side_dtypes.get(name)!r}")
        self.path = Path(path)
        self.target = claim_store(self.path, inputs)
        self.features = list(features)
        self.side_dtypes = dict(side_dtypes)
        self.source = source
        self.columns = list(columns) if columns is not None else None
        self.shard_rows = int(shard_rows)
        self.feature_limit = feature_limit
        remove_stale_temps(self.target)
        self.tmp = temp_sibling(self.target)
        self.tmp.mkdir()
        self._buf_x: list[np.ndarray] = []
        self._buf_date: list[np.ndarray] = []
        self._buf_rows = 0
        self._side: dict[str, list[np.ndarray]] = {k: [] for k in self.side_dtypes}
        self._side_files = {k: open(self.tmp / f"{k}.raw", "wb") for k in self.side_dtypes}
        self._shards: list[dict] = []
        self._rows_written = 0
        self._last_time: list[np.ndarray] | None = None  # the time columns of the last row appended

    # -- writing -------------------------------------------------------------------------
    def append(self, x: np.ndarray, side: dict[str, np.ndarray]) -> None:
        """Append rows: `x` is (n, n_features); `side[name]` is (n,) for every side column."""
        x = np.asarray(x, dtype=np.float32)
        n = x.shape[0]
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"x has shape {x.shape}, expected (n, {len(self.features)})")
        missing = set(self.side_dtypes) - set(side)
        if missing:
            raise ValueError(f"side arrays missing: {sorted(missing)}")
        if n == 0:
            return
        if self.feature_limit is not None and (np.abs(x) > self.feature_limit).any():
            i, j = np.argwhere(np.abs(x) > self.feature_limit)[0]
            raise ValueError(f"{self.features[j]} = {x[i, j]} is beyond the feature limit ±{self.feature_limit:g}")
        date = np.asarray(side["date"])
        self._check_time_order([np.asarray(side[k], dtype=np.int64) for k in self.time])
        for k, dt in self.side_dtypes.items():
            self._side[k].append(np.asarray(side[k], dtype=dt))
        self._buf_x.append(x)
        self._buf_date.append(date)
        self._buf_rows += n
        if self._buf_rows > self.shard_rows:
            self._flush(final=False)

    def _check_time_order(self, keys: list[np.ndarray]) -> None:
        """ValueError unless the rows' time columns `keys` (most significant first) are in
        lexicographic order, from the last row appended before."""
        if self._last_time is not None:
            keys = [np.concatenate([last, k]) for last, k in zip(self._last_time, keys)]
        back, tied = np.zeros(len(keys[0]) - 1, dtype=bool), np.ones(len(keys[0]) - 1, dtype=bool)
        for k in keys:
            step = np.diff(k)
            back |= tied & (step < 0)
            tied &= step == 0
        if back.any():
            raise ValueError(f"{', '.join(self.time)} must be non-decreasing")
        self._last_time = [k[-1:] for k in keys]

    def _flush(self, final: bool) -> None:
        """Write the buffered side values, and the shards the buffered rows decide (all rows when `final`)."""
        for k, parts in self._side.items():
            if parts:
                np.concatenate(parts).tofile(self._side_files[k])
                parts.clear()
        if not self._buf_rows:
            return
        date = np.concatenate(self._buf_date) if len(self._buf_date) > 1 else self._buf_date[0]
        while len(date) and (cut := len(date) if final else _shard_cut(date, self.shard_rows)):
            name = _shard_name(len(self._shards))
            shard, self._buf_x = _split_rows(self._buf_x, cut)
            digest = _save_rows(self.tmp / name, shard, (cut, len(self.features)))
            start = self._rows_written
            self._rows_written += cut
            self._shards.append({"file": name, "start": start, "stop": self._rows_written, **digest})
            date = date[cut:]
        self._buf_date = [date] if len(date) else []
        self._buf_rows = len(date)

    def close(self, extra: dict | None = None) -> Path:
        """Finish the store and rename it into place; returns its path."""
        try:
            self._finish(extra)
        except BaseException:
            self.abort()
            raise
        return self.path

    def _finish(self, extra: dict | None) -> None:
        self._flush(final=True)
        side_digests = {}
        for k, f in self._side_files.items():
            f.close()
            raw = self.tmp / f"{k}.raw"
            values = np.fromfile(raw, dtype=self.side_dtypes[k])
            side_digests[k] = _save_rows(self.tmp / f"{k}.npy", [values], values.shape)
            raw.unlink()
        date = np.load(self.tmp / "date.npy", mmap_mode="r")
        n = int(len(date))
        if n == 0:
            raise ValueError("no rows were written")
        days, starts = np.unique(date, return_index=True)
        day_offsets = np.append(starts, n).astype(np.int64)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "n_rows": n,
            "n_days": int(len(days)),
            "n_features": len(self.features),
            "features": self.features,
            "columns": self.columns,
            "feature_dtype": "float32",
            "side": self.side_dtypes,
            "days": days.tolist(),
            "day_offsets": day_offsets.tolist(),
            "shards": self._shards,
            "side_digests": side_digests,
            "source": self.source,
            **({"feature_limit": self.feature_limit} if self.feature_limit is not None else {}),
            **(self._write_group_index(n) if self.group is not None else {}),
            **(extra or {}),
        }
        write_manifest(self.tmp, manifest)
        replace_dir(self.tmp, self.target, is_store, "--store")

    def _write_group_index(self, n: int) -> dict:
        """Write group-order.npy and group-pos.npy (see the module doc); returns their manifest keys."""
        values = np.load(self.tmp / f"{self.group}.npy", mmap_mode="r")
        lo, hi = int(values.min()), int(values.max())
        small = next((t for t in (np.int8, np.uint8, np.int16, np.uint16)
                      if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max), values.dtype)
        key = np.asarray(values).astype(small)  # stable argsort of <= 16-bit ints is a radix sort
        order = np.argsort(key, kind="stable")
        key = key.take(order)
        starts = np.flatnonzero(key[1:] != key[:-1]) + 1
        groups = {"values": key[np.append(0, starts)].tolist(), "offsets": [0, *starts.tolist(), n]}
        del key
        files = {GROUP_ORDER: _save_rows(self.tmp / GROUP_ORDER, [order], order.shape)}
        pos = np.empty(n, dtype=np.int64)
        for a in range(0, n, INDEX_BLOCK):
            pos[order[a : a + INDEX_BLOCK]] = np.arange(a, min(a + INDEX_BLOCK, n), dtype=np.int64)
        del order
        files[GROUP_POS] = _save_rows(self.tmp / GROUP_POS, [pos], pos.shape)
        return {"group": self.group, "time": list(self.time), "groups": groups, "group_files": files}

    def abort(self) -> None:
        for f in self._side_files.values():
            f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _shard_cut(date: np.ndarray, limit: int) -> int:
    """Rows in the next shard of buffered rows with non-decreasing `date`: the whole days that fit
    in `limit` rows (or a longer first day alone), 0 while the buffer cannot tell yet. Shard bounds
    so depend on the rows only, not on how they were appended (CSV pieces, Parquet batches)."""
    if len(date) <= limit:
        return 0
    cut = int(np.searchsorted(date, date[limit], side="left"))  # where the day of row `limit` starts
    if cut == 0:  # the first day is longer than a shard: it is one once it has ended
        cut = int(np.searchsorted(date, date[0], side="right"))
        return cut if cut < len(date) else 0
    return cut


def _split_rows(parts: list[np.ndarray], cut: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Row blocks `parts` split into (blocks of the first `cut` rows, blocks of the rest)."""
    ends = np.cumsum([len(p) for p in parts])
    i = int(np.searchsorted(ends, cut))  # the block holding row cut - 1
    k = cut - int(ends[i] - len(parts[i]))
    rest = [parts[i][k:]] if k < len(parts[i]) else []
    return [*parts[:i], parts[i][:k]], rest + parts[i + 1 :]


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The header np.save writes for a C-order array of `dtype` and `shape`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    return header.getvalue()


def npy_bytes(dtype, shape: tuple[int, ...]) -> int:
    """The size of the .npy file np.save writes for a C-order array of `dtype` and `shape`."""
    dtype = np.dtype(dtype)
    return len(_npy_header(dtype, shape)) + dtype.itemsize * int(np.prod(shape, dtype=np.int64))


def create_npy(path: Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new .npy file at `path` for an array of `dtype` and `shape`, its disk space reserved first
    (jsmp.files.preallocate: a full disk is an OSError here, not a SIGBUS later), memory-mapped for writing."""
    dtype = np.dtype(dtype)
    with open(path, "wb") as f:
        preallocate(f, npy_bytes(dtype, shape))
        f.seek(0)
        f.write(_npy_header(dtype, shape))
    return np.load(path, mmap_mode="r+")


def _save_rows(path: Path, parts: list[np.ndarray], shape: tuple[int, ...]) -> dict:
    """Write row blocks of one dtype as one .npy file of `shape` (the bytes np.save writes for
    their concatenation, without making it); returns file_digest's dict."""
    dtype = parts[0].dtype.newbyteorder("<") if parts[0].dtype.byteorder == ">" else parts[0].dtype
    crc, size = 0, 0
    with open(path, "wb") as f:
        for block in [_npy_header(dtype, shape), *(memoryview(np.ascontiguousarray(p, dtype=dtype)).cast("B") for p in parts)]:
            crc, size = zlib.crc32(block, crc), size + f.write(block)
    return {"bytes": size, "crc32": f"{crc:08x}"}


def file_digest(path: Path, chunk: int = 1 << 24) -> dict:
    """{'bytes': size, 'crc32': checksum} of a file, read in 16 MB chunks."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return {"bytes": path.stat().st_size, "crc32": f"{crc:08x}"}


def write_manifest(directory: Path, manifest: dict) -> None:
    """Write `manifest` (with its own checksum, `manifest_crc32`) as `directory`/manifest.json."""
    manifest["manifest_crc32"] = _manifest_crc(manifest)
    with open(directory / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1)


def _manifest_crc(manifest: dict) -> str:
    body = json.dumps({k: v for k, v in manifest.items() if k != "manifest_crc32"}, sort_keys=True)
    return f"{zlib.crc32(body.encode()):08x}"


def read_manifest(path: str | os.PathLike) -> dict | None:
    """The manifest of the jsmp store at `path` (valid JSON of format jsmp-store), else None; nothing else is checked."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


@dataclass(frozen=True)
class Provenance:
    """What a store was made from, as its manifest records it."""

    source: dict
    """The manifest's `source` record (ingest: path, bytes, checksum, files; synth: its spec); {} when absent."""
    feature_limit: float | None
    """The ±limit its feature values were checked against at ingest (None: written before the limit existed)."""


def provenance(path: str | os.PathLike) -> Provenance | None:
    """What the store at `path` was made from, read without opening it (a damaged store too, for
    deciding whether to rebuild it); None when no store manifest is there."""
    manifest = read_manifest(path)
    if manifest is None:
        return None
    source = manifest.get("source")
    return Provenance(source if isinstance(source, dict) else {}, manifest.get("feature_limit"))


def is_store(path: str | os.PathLike) -> bool:
    """Whether `path` holds a jsmp store's manifest (see read_manifest)."""
    return read_manifest(path) is not None


def claim_store(path: Path, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Check that a store may be written at `path` (see StoreWriter); returns the directory to
    replace: `path`, or the store a symlink at `path` points to."""
    claim_destination(path, "--store", "jsmp store", is_store, inputs, directory=True)
    real = Path(os.path.realpath(path))
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise UserError(f"--store {path}: is or contains the current directory; choose another --store")
    if path.is_symlink():
        claim_destination(real, "--store", "jsmp store", is_store, inputs, directory=True)
    return real


class _Problem(Exception):
    """Why a store cannot be used: `damaged` when its files do not match its manifest."""

    def __init__(self, what: str, damaged: bool = True, manifest: dict | None = None):
        super().__init__(what)
        self.damaged, self.manifest = damaged, manifest


def _load_manifest(path: Path) -> tuple[dict, bytes]:
    """The manifest of the store at `path` and its bytes; raises _Problem."""
    mpath = path / MANIFEST
    if not mpath.is_file():
        what = "does not exist" if not path.exists() else "has no manifest.json (not a jsmp store, or its write was interrupted)"
        raise _Problem(what, damaged=False)
    raw = mpath.read_bytes()
    try:
        m = json.loads(raw)
    except ValueError as e:
        raise _Problem(f"manifest.json is not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("version") != VERSION:
        found = (m.get("format"), m.get("version")) if isinstance(m, dict) else (None, None)
        raise _Problem(f"manifest.json: expected format {FORMAT!r} version {VERSION}, found {found[0]!r} version {found[1]}",
                       damaged=False)
    if "manifest_crc32" in m and _manifest_crc(m) != m["manifest_crc32"]:
        raise _Problem("manifest.json does not match its own checksum")
    if missing := [k for k in REQUIRED if k not in m]:
        raise _Problem(f"manifest.json lacks {', '.join(missing)}")
    if problem := manifest_problem(m):
        raise _Problem(f"manifest.json: {problem}", manifest=m)
    return m, raw


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ints(v) -> bool:
    """Whether `v` is a list of ints."""
    return isinstance(v, list) and all(_is_int(x) for x in v)


def concat_ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """starts[0]..stops[0]-1, starts[1]..stops[1]-1, ... as one int64 array (vectorised: each range's
    offsets plus its start)."""
    lengths = np.asarray(stops, dtype=np.int64) - starts
    if len(lengths) == 0:
        return np.zeros(0, dtype=np.int64)
    base = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return base + np.arange(lengths.sum(), dtype=np.int64)


def _dtype_name(v) -> bool:
    try:
        return isinstance(v, str) and np.dtype(v).kind in "iuf"
    except TypeError:
        return False


def _record(v) -> bool:
    """Whether `v` is a file's {'bytes': int, 'crc32': str} record (either optional)."""
    return (isinstance(v, dict) and set(v) <= {"bytes", "crc32"} and _is_int(v.get("bytes", 0))
            and isinstance(v.get("crc32", ""), str))


def _plain_name(v) -> bool:
    return isinstance(v, str) and v not in ("", ".", "..") and "/" not in v and "\\" not in v


def _increasing(v: list[int], first: int, last: int) -> bool:
    """Whether `v` runs strictly increasing from `first` to `last`."""
    return len(v) >= 2 and v[0] == first and v[-1] == last and all(a < b for a, b in zip(v, v[1:]))


def manifest_problem(m: dict) -> str | None:
    """What is inconsistent in a store manifest `m` (a key of the wrong type, counts and offsets that
    disagree), in words naming the key, or None. Cheap: the file sizes are checked by _files_problem."""
    types = {  # key: (check, what is expected); keys of REQUIRED always, others when present
        "features": (lambda v: isinstance(v, list) and v and all(isinstance(f, str) and f for f in v), "a non-empty list of column names"),
        "n_rows": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
        "n_days": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
        "n_features": (_is_int, "an integer"),
        "days": (_ints, "a list of integers"),
        "day_offsets": (_ints, "a list of integers"),
        "shards": (lambda v: isinstance(v, list) and v and all(
            isinstance(sh, dict) and _plain_name(sh.get("file")) and _is_int(sh.get("start")) and _is_int(sh.get("stop"))
            and _record({k: sh[k] for k in ("bytes", "crc32") if k in sh}) for sh in v),
                   "a non-empty list of {file, start, stop, bytes, crc32}"),
        "side": (lambda v: isinstance(v, dict) and "date" in v and all(_plain_name(k) and _dtype_name(t) for k, t in v.items()),
                 "an object of column name: numeric dtype, date among them"),
        "side_digests": (lambda v: isinstance(v, dict) and all(_record(r) for r in v.values()), "an object of column: {bytes, crc32}"),
        "columns": (lambda v: v is None or isinstance(v, list) and all(isinstance(c, str) for c in v), "null or a list of column names"),
        "source": (lambda v: isinstance(v, dict), "an object"),
        "nan_counts": (_ints, "a list of integers"),
        "feature_limit": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf"), "a number > 0"),
        "group": (lambda v: isinstance(v, str), "a column name"),
        "time": (lambda v: isinstance(v, list) and v and all(isinstance(c, str) for c in v), "a list of column names"),
        "groups": (lambda v: isinstance(v, dict) and _ints(v.get("values")) and _ints(v.get("offsets")), "{values, offsets}: lists of integers"),
        "group_files": (lambda v: isinstance(v, dict) and set(v) == {GROUP_ORDER, GROUP_POS} and all(_record(r) for r in v.values()),
                        f"{{{GROUP_ORDER}, {GROUP_POS}}}: their {{bytes, crc32}}"),
    }
    for key, (ok, what) in types.items():
        if key in m and not ok(m[key]):
            return f"{key} must be {what}, got {json.dumps(m[key])[:60]}"
    n, n_days, shards = m["n_rows"], m["n_days"], m["shards"]
    if len(m["days"]) != n_days or any(a >= b for a, b in zip(m["days"], m["days"][1:])):
        return f"days must list n_days ({n_days}) dates, increasing; it lists {len(m['days'])}"
    if len(m["day_offsets"]) != n_days + 1 or not _increasing(m["day_offsets"], 0, n):
        offsets = m["day_offsets"]
        return (f"day_offsets must run strictly increasing from 0 to n_rows ({n}) in n_days + 1 ({n_days + 1}) entries; "
                f"it has {len(offsets)}" + (f", from {offsets[0]} to {offsets[-1]}" if offsets else ""))
    if "n_features" in m and m["n_features"] != len(m["features"]):
        return f"n_features is {m['n_features']}, but features lists {len(m['features'])}"
    if "nan_counts" in m and len(m["nan_counts"]) != len(m["features"]):
        return f"nan_counts lists {len(m['nan_counts'])} counts for {len(m['features'])} features"
    if not _increasing([shards[0]["start"], *(sh["stop"] for sh in shards)], 0, n) or any(
            a["stop"] != b["start"] for a, b in zip(shards, shards[1:])):
        return f"shards must cover rows 0 to n_rows ({n}) in order, each from where the previous one stops"
    if "group" in m:
        if m["group"] not in m["side"] or not all(c in m["side"] for c in m.get("time", [])):
            return f"group and time must name side columns ({', '.join(m['side'])})"
        groups = m.get("groups")
        if groups is None or "group_files" not in m:
            return "a store with a group needs groups and group_files"
        if len(groups["offsets"]) != len(groups["values"]) + 1 or not _increasing(groups["offsets"], 0, n):
            return f"groups.offsets must run strictly increasing from 0 to n_rows ({n}), one more than groups.values"
    return None


def file_problem(path: Path, record: dict, full: bool) -> str | None:
    """How the file at `path` differs from its manifest `record` ({'bytes', 'crc32'}, either
    optional), or None; the checksum only when `full` (it reads the file)."""
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if "bytes" in record and size != record["bytes"]:
        return f"has {size} bytes, the manifest says {record['bytes']}"
    if full and "crc32" in record and file_digest(path)["crc32"] != record["crc32"]:
        return "does not match its checksum in the manifest"
    return None


def manifest_files(manifest: dict) -> list[tuple[str, str, dict]]:
    """(what, file name, its {'bytes', 'crc32'} record) of every file of a store: its shards,
    side columns and group index."""
    digests = manifest.get("side_digests", {})
    files = [(f"shard {sh['file']}", sh["file"], sh) for sh in manifest["shards"]]
    files += [(f"column {name}.npy", f"{name}.npy", digests.get(name, {})) for name in manifest["side"]]
    return files + [(f"group index {name}", name, record) for name, record in manifest.get("group_files", {}).items()]


def _files_problem(path: Path, manifest: dict, full: bool) -> str | None:
    """The first shard, side column or group index file that differs from the manifest (its record,
    or the size its rows take), described, or None. `full`: checksums too, and the `date` column
    against the days (see _days_problem)."""
    for what, name, record in manifest_files(manifest):
        if problem := file_problem(path / name, record, full):
            return f"{what} {problem}"
    for what, name, dtype, shape in _file_shapes(manifest):
        if (size := (path / name).stat().st_size) != (want := npy_bytes(dtype, shape)):
            return f"{what} has {size} bytes, but the {shape[0]} rows manifest.json gives it take {want} (manifest.json or the file was altered)"
    return _days_problem(path, manifest) if full else None


def _file_shapes(manifest: dict) -> list[tuple[str, str, str, tuple[int, ...]]]:
    """(what, file name, dtype, shape) of every file of a store, as its manifest's counts say."""
    n, f = manifest["n_rows"], len(manifest["features"])
    files = [(f"shard {sh['file']}", sh["file"], "float32", (sh["stop"] - sh["start"], f)) for sh in manifest["shards"]]
    files += [(f"column {k}.npy", f"{k}.npy", dtype, (n,)) for k, dtype in manifest["side"].items()]
    return files + [(f"group index {name}", name, "int64", (n,)) for name in manifest.get("group_files", {})]


def _days_problem(path: Path, manifest: dict, block: int = INDEX_BLOCK) -> str | None:
    """Whether the `date` column agrees with the manifest's days: row day_offsets[d] starts date
    days[d], and the date changes at those rows only; else what differs. Reads the column once."""
    date = np.load(path / "date.npy", mmap_mode="r")
    offsets, days = np.asarray(manifest["day_offsets"]), np.asarray(manifest["days"])
    if (at := np.flatnonzero(date[offsets[:-1]] != days)).size:
        d = int(at[0])
        return (f"manifest.json: day_offsets[{d}] = {offsets[d]} starts date {days[d]}, but row {offsets[d]} of date.npy "
                f"holds date {date[offsets[d]]} (the manifest was altered)")
    for a in range(0, len(date) - 1, block):
        chunk = np.asarray(date[a : a + block + 1])
        changes = np.flatnonzero(chunk[1:] != chunk[:-1]) + a + 1
        starts = offsets[(offsets > a) & (offsets < a + len(chunk))]
        if len(changes) != len(starts) or (changes != starts).any():
            row = int(np.setxor1d(changes, starts)[0])
            return (f"manifest.json: day_offsets do not match date.npy: the date {'changes' if row in changes else 'does not change'} "
                    f"at row {row} (the manifest was altered)")
    return None


def damage_at(path: str | os.PathLike, full: bool = True) -> str | None:
    """None when the store at `path` is whole, else one line saying what is wrong (a missing
    store or manifest included). `full` also checks every file's CRC-32 (reads the whole store);
    otherwise only the manifest and file sizes. Never raises."""
    path = Path(path)
    try:
        return _files_problem(path, _load_manifest(path)[0], full)
    except _Problem as p:
        return str(p)
    except OSError as e:
        return f"cannot be read ({e.strerror}: {e.filename})"
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return f"manifest.json is malformed ({type(e).__name__}: {e})"


def rebuild_hint(path: Path, manifest: dict | None) -> str:
    """The command that rebuilds the store at `path` from what its manifest says it was made from."""
    src = (manifest or {}).get("source")
    src = src if isinstance(src, dict) else {}
    if src.get("kind") == "synthetic" and src.get("layout") == "rtmdf":
        return (f"python -m jsmp.data synth --layout rtmdf --store {path} --days {src.get('days')} --times {src.get('times')} "
                f"--symbols {src.get('symbols')} --seed {src.get('seed')} --force")
    if src.get("kind") == "synthetic":
        return (f"python -m jsmp.data synth --store {path} --days {src.get('days')} "
                f"--rows-per-day {src.get('rows_per_day')} --seed {src.get('seed')} --force")
    return f"python -m jsmp.data ingest {src.get('path', 'SRC')} --store {path} --force"


class Store:
    """Read-only view of a store. Feature shards are memory-mapped lazily; nothing is read
    into RAM until rows are gathered. Pickles by path (safe to send to DataLoader workers).

    Opening checks the manifest (its own checksum, every key's type, counts and offsets that agree:
    manifest_problem) and every file's size against its record and its rows (UserError naming the
    damaged file or key and how to rebuild); `verify()` checks the checksums and the dates too.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.manifest, raw = _load_manifest(self.path)
        except _Problem as p:
            raise self._error(str(p), p.damaged, p.manifest) from None
        except OSError as e:
            raise UserError(f"store {self.path}: cannot read {MANIFEST} ({e.strerror})") from None
        if problem := self.damage(full=False):
            raise self._error(problem, True, self.manifest)
        self.identity = f"{zlib.crc32(raw):08x}"  # of manifest.json: tells caches computed from another store
        self.feature_limit: float | None = self.manifest.get("feature_limit")
        """±limit every feature value was checked against when the store was written; None for stores
        written before the check (verify() then checks their values against schema.FEATURE_LIMIT)."""
        self.verified = False  # set by verify(): caches then check their checksums too
        m = self.manifest
        self.features: list[str] = m["features"]
        self.n_rows: int = m["n_rows"]
        self.n_days: int = m["n_days"]
        self.days = np.asarray(m["days"], dtype=np.int64)
        self.day_offsets = np.asarray(m["day_offsets"], dtype=np.int64)
        self.shard_files: list[str] = [s["file"] for s in m["shards"]]
        """The feature shards' file names, in row order (a cache of the same rows mirrors them: FilledStore)."""
        self.shard_starts = np.asarray([s["start"] for s in m["shards"]], dtype=np.int64)
        self.side_names: list[str] = list(m["side"])
        """The per-row side columns (`date`, `weight`, `resp*`, `ts_id`; 2024: `time_id`, `symbol_id`, ...), as written."""
        self.source: dict = m.get("source", {})
        """What the store was made from (docs/ingest.md: kind, path, checksum; a cache's: the store it was computed from)."""
        self.group: str | None = m.get("group")
        """The group column (instruments; None: one group, the 2021 layout)."""
        self.time: tuple[str, ...] = tuple(m.get("time", ("date",)))
        """The side columns that order the rows, most significant first."""
        groups = m.get("groups", {"values": [], "offsets": [0, self.n_rows]})
        self.group_values = np.asarray(groups["values"], dtype=np.int64)
        """(G,) the group column's values, ascending (empty without a group)."""
        self.group_offsets = np.asarray(groups["offsets"], dtype=np.int64)
        """(G + 1,) group k holds positions group_offsets[k] : group_offsets[k + 1] of group_order."""
        self._shards: list[np.ndarray] | None = None
        self._shard_list = None  # the shards as jsmp.store.kernels reads them, made on first gather
        self._side: dict[str, np.ndarray] = {}

    def _error(self, problem: str, damaged: bool, manifest: dict | None) -> UserError:
        if not damaged:
            return UserError(f"store {self.path}: {problem}")
        return UserError(f"store {self.path}: {problem} (the store is damaged; rebuild it: {rebuild_hint(self.path, manifest)})")

    @property
    def rebuild_command(self) -> str:
        """The command that rebuilds this store from what it was made from (rebuild_hint)."""
        return rebuild_hint(self.path, self.manifest)

    def damage(self, full: bool = True) -> str | None:
        """None when the store is whole, else one line naming what is damaged (see damage_at). Never raises."""
        return damage_at(self.path, full)

    def verify(self) -> None:
        """Check every file's CRC-32 against the manifest (reads the whole store once), and the date
        column against the days; UserError if one differs. A store written before feature values
        were checked against a limit has them checked against schema.FEATURE_LIMIT (one more pass)."""
        if problem := self.damage(full=True):
            raise self._error(problem, True, self.manifest)
        if self.feature_limit is None:
            self._check_feature_limit(FEATURE_LIMIT)
        self.verified = True

    def _check_feature_limit(self, limit: float) -> None:
        """UserError naming the first row and feature beyond ±`limit`."""
        row = 0
        for block in self.iter_blocks([(0, self.n_rows)]):
            if (np.abs(block) > limit).any():
                i, j = np.argwhere(np.abs(block) > limit)[0]
                raise UserError(f"store {self.path}: row {row + i}, feature {self.features[j]}: {block[i, j]!s} is beyond the "
                                f"feature limit ±{limit:g} (this store was written before ingest checked it); re-ingest it: "
                                f"{self.rebuild_command}, with --feature-limit X if such values are real")
            row += len(block)

    @property
    def n_features(self) -> int:
        return len(self.features)

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    # -- access --------------------------------------------------------------------------
    @property
    def shards(self) -> list[np.ndarray]:
        if self._shards is None:
            self._shards = [np.load(self.path / f, mmap_mode="r") for f in self.shard_files]
        return self._shards

    def side(self, name: str) -> np.ndarray:
        """A per-row array (memory-mapped), e.g. `date`, `weight`, `resp`, `ts_id`."""
        if name not in self._side:
            if name not in self.side_names:
                raise UserError(f"store {self.path}: has no column {name!r} (has {sorted(self.side_names)})")
            self._side[name] = np.load(self.path / f"{name}.npy", mmap_mode="r")
        return self._side[name]

    def has(self, name: str) -> bool:
        """Whether the store has the side column `name`."""
        return name in self.side_names

    @property
    def group_order(self) -> np.ndarray | None:
        """(n_rows,) int64 memmap: the store rows by group, each group's in time order; None without a group."""
        return None if self.group is None else self._index(GROUP_ORDER)

    @property
    def group_pos(self) -> np.ndarray | None:
        """(n_rows,) int64 memmap: each row's position in group_order; None without a group."""
        return None if self.group is None else self._index(GROUP_POS)

    def _index(self, name: str) -> np.ndarray:
        if name not in self._side:
            self._side[name] = np.load(self.path / name, mmap_mode="r")
        return self._side[name]

    def group_index(self, start: int, stop: int) -> np.ndarray:
        """(stop - start,) int32: the group index (into group_values) of rows start..stop-1; zeros without a group."""
        if self.group is None:
            return np.zeros(stop - start, dtype=np.int32)
        return np.searchsorted(self.group_values, self.side(self.group)[start:stop]).astype(np.int32)

    def gather(self, rows: np.ndarray, fill: np.ndarray | None = None, has_nan: np.ndarray | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
        """Feature rows at store row indices `rows` (any order): (len(rows), n_features) float32.

        With `fill` (n_features,), NaNs become its values while the rows are copied, in the
        rows where `has_nan` (len(rows),) bool is set (all of them when it is None). One
        compiled loop reads every shard (jsmp.store.kernels); sorted `rows` read the memmap
        forward. `out`: the float32 (len(rows), n_features) array to write (a column slice of a
        wider one too), returned.
        """
        from jsmp.store.kernels import shard_list, take_rows

        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and not (0 <= rows.min() and rows.max() < self.n_rows):  # the compiled loop does not check
            raise IndexError(f"store {self.path}: rows must be in [0, {self.n_rows}), got {rows.min()}..{rows.max()}")
        if out is None:
            out = np.empty((len(rows), self.n_features), dtype=np.float32)
        elif out.shape != (len(rows), self.n_features) or out.dtype != np.float32:
            raise ValueError(f"out has shape {out.shape} {out.dtype}, expected ({len(rows)}, {self.n_features}) float32")
        if fill is None:
            fill, has_nan = np.zeros(0, dtype=np.float32), np.zeros(len(rows), dtype=bool)
        fill = np.asarray(fill, dtype=np.float32)
        has_nan = np.ones(len(rows), dtype=bool) if has_nan is None else np.asarray(has_nan, dtype=bool)
        shard = np.searchsorted(self.shard_starts, rows, side="right") - 1
        if self._shard_list is None:
            self._shard_list = shard_list(self.shards)
        take_rows(self._shard_list, shard, rows - self.shard_starts[shard], out, fill, has_nan)
        return out

    def iter_blocks(self, rows_ranges, block_rows: int = 1 << 16):
        """Yield contiguous feature blocks (k, n_features) covering `[(start, stop), ...]`."""
        for start, stop in rows_ranges:
            pos = start
            while pos < stop:
                s = int(np.searchsorted(self.shard_starts, pos, side="right") - 1)
                shard_stop = self.shard_starts[s] + len(self.shards[s])
                end = min(stop, pos + block_rows, shard_stop)
                yield self.shards[s][pos - self.shard_starts[s] : end - self.shard_starts[s]]
                pos = end

    def day_rows(self, day_index: np.ndarray) -> np.ndarray:
        """Store row indices of the days with indices `day_index` (ascending), as one int64 array."""
        day_index = np.asarray(day_index, dtype=np.int64)
        return concat_ranges(self.day_offsets[day_index], self.day_offsets[day_index + 1])

    def row_day_index(self) -> np.ndarray:
        """(n_rows,) int32: the day index (0..n_days-1) of every row."""
        return np.repeat(np.arange(self.n_days, dtype=np.int32), np.diff(self.day_offsets))
