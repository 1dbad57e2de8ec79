"""The jsmp store: memory-mapped, row-major float32 feature shards plus a manifest.

Layout of a store directory::

    manifest.json          format, version, features, row/day counts, shards, day offsets, source
    features-00000.npy     (rows, n_features) float32, row-major, whole days only
    features-00001.npy     ...
    date.npy weight.npy resp*.npy ts_id.npy [ideal.npy]   one value per row

Rows are in `ts_id` order and `date` never decreases, so day d owns the contiguous rows
`day_offsets[d] : day_offsets[d + 1]` (d is the day's index, `days[d]` its date value).
A store is written into a temporary sibling directory and renamed into place only when
complete, so a directory holding `manifest.json` is always a whole store.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import shutil
import uuid
import zlib
from pathlib import Path

import numpy as np

from jsmp.errors import UserError
from jsmp.processes import pid_alive

FORMAT = "jsmp-store"
VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_SHARD_ROWS = 1 << 18  # 262,144 rows x 130 features x 4 B = 136 MB per shard


def _shard_name(i: int) -> str:
    return f"features-{i:05d}.npy"


class StoreWriter:
    """Streams rows (in `ts_id` order) into a new store at `path`.

    Use as a context manager; on an exception the temporary directory is removed and any
    store already at `path` is left untouched. Memory is bounded by about one shard: side
    columns are appended to raw files in the temporary directory with every shard.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        features: list[str],
        side_dtypes: dict[str, str],
        source: dict,
        columns: list[str] | None = None,
        shard_rows: int = DEFAULT_SHARD_ROWS,
    ):
        if "date" not in side_dtypes:
            raise ValueError("side_dtypes must include 'date'")
        self.path = Path(path)
        self.features = list(features)
        self.side_dtypes = dict(side_dtypes)
        self.source = source
        self.columns = list(columns) if columns is not None else None
        self.shard_rows = int(shard_rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(self.path)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self._buf_x: list[np.ndarray] = []
        self._buf_date: list[np.ndarray] = []
        self._buf_rows = 0
        self._side: dict[str, list[np.ndarray]] = {k: [] for k in self.side_dtypes}
        self._side_files = {k: open(self.tmp / f"{k}.raw", "wb") for k in self.side_dtypes}
        self._shards: list[dict] = []
        self._rows_written = 0
        self._last_date: int | None = None

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
        date = np.asarray(side["date"])
        if (self._last_date is not None and date[0] < self._last_date) or np.any(np.diff(date) < 0):
            raise ValueError("date must be non-decreasing")
        self._last_date = int(date[-1])
        for k, dt in self.side_dtypes.items():
            self._side[k].append(np.asarray(side[k], dtype=dt))
        self._buf_x.append(x)
        self._buf_date.append(date)
        self._buf_rows += n
        if self._buf_rows > self.shard_rows:
            self._flush(final=False)

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
            digest = _save_rows(self.tmp / name, shard, len(self.features))
            start = self._rows_written
            self._rows_written += cut
            self._shards.append({"file": name, "start": start, "stop": self._rows_written, **digest})
            date = date[cut:]
        self._buf_date = [date] if len(date) else []
        self._buf_rows = len(date)

    def close(self, extra: dict | None = None) -> Path:
        """Finish the store and rename it into place; returns its path."""
        self._flush(final=True)
        for k, f in self._side_files.items():
            f.close()
            raw = self.tmp / f"{k}.raw"
            np.save(self.tmp / f"{k}.npy", np.fromfile(raw, dtype=self.side_dtypes[k]))
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
            "source": self.source,
            **(extra or {}),
        }
        with open(self.tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1)
        _replace_dir(self.tmp, self.path)
        return self.path

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


def _save_rows(path: Path, parts: list[np.ndarray], n_features: int) -> dict:
    """Write row blocks (k, n_features) float32 as one .npy file (the bytes np.save writes for
    their concatenation, without making it); returns file_digest's dict."""
    header = io.BytesIO()
    shape = (sum(len(p) for p in parts), n_features)
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    crc, size = 0, 0
    with open(path, "wb") as f:
        for block in [header.getbuffer(), *(memoryview(np.ascontiguousarray(p, dtype="<f4")).cast("B") for p in parts)]:
            crc, size = zlib.crc32(block, crc), size + f.write(block)
    return {"bytes": size, "crc32": f"{crc:08x}"}


def file_digest(path: Path, chunk: int = 1 << 24) -> dict:
    """{'bytes': size, 'crc32': checksum} of a file, read in 16 MB chunks."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return {"bytes": path.stat().st_size, "crc32": f"{crc:08x}"}


def _remove_stale_temps(path: Path) -> None:
    """Delete temp dirs of earlier writes to `path` whose writer process is gone (killed mid-write)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(src: Path, dst: Path) -> None:
    """Atomically move the finished store `src` to `dst`, replacing any store there."""
    if dst.exists():
        trash = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(dst, trash)
        os.rename(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(src, dst)


def is_store(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


class Store:
    """Read-only view of a store. Feature shards are memory-mapped lazily; nothing is read
    into RAM until rows are gathered. Pickles by path (safe to send to DataLoader workers)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        mpath = self.path / MANIFEST
        if not mpath.is_file():
            what = "does not exist" if not self.path.exists() else "has no manifest.json (not a jsmp store, or its write was interrupted)"
            raise UserError(f"store {self.path}: {what}")
        try:
            self.manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"store {mpath}: manifest is not valid JSON ({e})") from None
        if self.manifest.get("format") != FORMAT or self.manifest.get("version") != VERSION:
            raise UserError(
                f"store {mpath}: expected format {FORMAT!r} version {VERSION}, "
                f"found {self.manifest.get('format')!r} version {self.manifest.get('version')}"
            )
        m = self.manifest
        self.features: list[str] = m["features"]
        self.n_rows: int = m["n_rows"]
        self.n_days: int = m["n_days"]
        self.days = np.asarray(m["days"], dtype=np.int64)
        self.day_offsets = np.asarray(m["day_offsets"], dtype=np.int64)
        self.shard_starts = np.asarray([s["start"] for s in m["shards"]], dtype=np.int64)
        self._shards: list[np.ndarray] | None = None
        self._shard_list = None  # the shards as jsmp.data.kernels reads them, made on first gather
        self._side: dict[str, np.ndarray] = {}
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Every shard exists with the size the manifest records (cheap: no data is read)."""
        for sh in self.manifest["shards"]:
            f = self.path / sh["file"]
            if not f.is_file():
                raise UserError(f"store {self.path}: shard {sh['file']} is missing (the store is damaged; rebuild it)")
            if "bytes" in sh and f.stat().st_size != sh["bytes"]:
                raise UserError(
                    f"store {self.path}: shard {sh['file']} has {f.stat().st_size} bytes, the manifest says "
                    f"{sh['bytes']} (the store is damaged; rebuild it)"
                )

    def verify(self) -> None:
        """Check every shard's CRC-32 against the manifest (reads the whole store once)."""
        for sh in self.manifest["shards"]:
            if "crc32" in sh and file_digest(self.path / sh["file"])["crc32"] != sh["crc32"]:
                raise UserError(
                    f"store {self.path}: shard {sh['file']} does not match its checksum in the manifest "
                    f"(the store is damaged; rebuild it)"
                )

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
            self._shards = [np.load(self.path / s["file"], mmap_mode="r") for s in self.manifest["shards"]]
        return self._shards

    def side(self, name: str) -> np.ndarray:
        """A per-row array (memory-mapped), e.g. `date`, `weight`, `resp`, `ts_id`."""
        if name not in self._side:
            if name not in self.manifest["side"]:
                raise UserError(f"store {self.path}: has no column {name!r} (has {sorted(self.manifest['side'])})")
            self._side[name] = np.load(self.path / f"{name}.npy", mmap_mode="r")
        return self._side[name]

    def has(self, name: str) -> bool:
        return name in self.manifest["side"]

    def gather(self, rows: np.ndarray, fill: np.ndarray | None = None, has_nan: np.ndarray | None = None) -> np.ndarray:
        """Feature rows at store row indices `rows` (any order): (len(rows), n_features) float32.

        With `fill` (n_features,), NaNs become its values while the rows are copied, in the
        rows where `has_nan` (len(rows),) bool is set (all of them when it is None). One
        compiled loop reads every shard (jsmp.data.kernels); sorted `rows` read the memmap
        forward.
        """
        from jsmp.data.kernels import shard_list, take_rows

        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and not (0 <= rows.min() and rows.max() < self.n_rows):  # the compiled loop does not check
            raise IndexError(f"store {self.path}: rows must be in [0, {self.n_rows}), got {rows.min()}..{rows.max()}")
        out = np.empty((len(rows), self.n_features), dtype=np.float32)
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
        starts, stops = self.day_offsets[day_index], self.day_offsets[day_index + 1]
        if len(starts) == 0:
            return np.zeros(0, dtype=np.int64)
        lengths = stops - starts
        # Vectorised concatenation of aranges: offsets within each day plus the day's start.
        base = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return base + np.arange(lengths.sum(), dtype=np.int64)

    def row_day_index(self) -> np.ndarray:
        """(n_rows,) int32: the day index (0..n_days-1) of every row."""
        return np.repeat(np.arange(self.n_days, dtype=np.int32), np.diff(self.day_offsets))
