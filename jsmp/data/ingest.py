"""Ingest Kaggle-layout data (CSV, CSV.gz, a Parquet file or a directory of them) into a store.

Streams in bounded pieces (CSV: pieces of whole lines, parsed by pyarrow in two threads side
by side while the main thread reads, checks and writes; Parquet: row batches), so memory
stays at about one store shard whatever the file size. The format is told by the file's
first bytes (a Parquet or gzip file with another name ingests all the same). Schema rules:

- column order does not matter; features are the `feature_*` columns present, by number;
- `date`, `weight`, `resp` are required; `resp_1..4` optional; `ts_id` made from row order
  when absent; other columns are ignored with one warning line;
- features: an empty field and every NaN spelling pandas reads (`NaN`, `nan` in any case and
  sign, `NA`, `NULL`, `None`, `#N/A`, `1.#IND`, ...) are NaN;
- every value of a non-feature column must be present, finite and in range: `date` an
  integer in int32, `ts_id` one in int64, `weight` >= 0 (a negative weight flips the sign of
  the row's utility);
- ±Inf (or a value beyond float32 range) anywhere is an error: the real data has none, and
  one would silently poison means, fills and losses;
- `date` must never decrease and `ts_id` must strictly increase;
- a CSV is UTF-8 (a byte-order mark is skipped) with LF or CRLF line ends and no blank lines.

A bad input raises `UserError` naming the file, line (CSV) or row (Parquet), and column;
nothing is left at the store path (StoreWriter writes into a temp dir). The source's size,
mtime and SHA-1 go into the manifest: re-ingesting an unchanged source into a whole store is
a no-op.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import hashlib
import io
import json
import logging
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm.auto import tqdm

from jsmp.data import schema
from jsmp.errors import UserError
from jsmp.store.store import MANIFEST, StoreWriter, damage_at

log = logging.getLogger(__name__)

REQUIRED = ("date", "weight", "resp")
OPTIONAL = ("resp_1", "resp_2", "resp_3", "resp_4", "ts_id")
INT_COLUMNS = tuple(schema.INT_RANGES)
PIECE_BYTES = 3 << 20  # CSV bytes per pyarrow call (~2k rows); PARSERS threads parse pieces side by side
PARSERS = 2
BLOCK_BYTES = 1 << 20  # for the single-threaded re-read that locates an error
PARQUET_BATCH_ROWS = 1 << 15
HASH = "sha1"
SHARD_ROWS = 1 << 15  # 32,768 rows x 130 features x 4 B = 17 MB: bounds ingest memory
MAGIC = {b"PAR1": "parquet", b"\x1f\x8b": "csv.gz"}  # first bytes -> format, whatever the file's name
FOREIGN = {  # first bytes of files ingest does not read
    b"PK\x03\x04": "a zip archive (unzip it first)",
    b"BZh": "bzip2-compressed (decompress it, or gzip it)",
    b"\xfd7zXZ\x00": "xz-compressed (decompress it, or gzip it)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed (decompress it, or gzip it)",
    b"\xff\xfe": "UTF-16 text (save it as UTF-8)",
    b"\xfe\xff": "UTF-16 text (save it as UTF-8)",
}


def read_error(path: Path, e: OSError) -> UserError:
    """A one-line UserError for an OSError met opening or reading `path`."""
    why = "permission denied" if isinstance(e, PermissionError) else e.strerror or str(e).splitlines()[0]
    return UserError(f"{e.filename or path}: cannot read ({why})")


# -- the source --------------------------------------------------------------------------
@dataclass
class Layout:
    """Which source columns become what: `features` by number, `side` store columns present."""

    columns: list[str]
    features: list[str]
    side: list[str]
    ignored: list[str]

    @property
    def read(self) -> list[str]:
        return [*self.side, *self.features]


def plan_columns(columns: list[str], where: str) -> Layout:
    """Check a header against the schema rules; `where` names the file in messages."""
    seen: dict[str, int] = {}
    for i, c in enumerate(columns, 1):
        if c in seen:
            raise UserError(f"{where}: column {c!r} appears twice in the header (columns {seen[c]} and {i}); expected unique names")
        seen[c] = i
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        raise UserError(f"{where}: missing required column {missing[0]!r}; expected {', '.join(REQUIRED)} and feature_* columns, got {_short(columns)}")
    features = schema.sorted_features(columns)
    if not features:
        raise UserError(f"{where}: no feature_* columns in the header; expected feature_0 ... feature_N, got {_short(columns)}")
    side = [c for c in schema.SIDE_DTYPES if c in seen]
    ignored = [c for c in columns if c not in side and c not in features]
    return Layout(list(columns), features, side, ignored)


def _short(columns: list[str], k: int = 8) -> str:
    return ", ".join(columns[:k]) + (f", ... ({len(columns)} columns)" if len(columns) > k else "") if columns else "no columns"


def _sniff(path: Path) -> str:
    """The format of file `path` (csv | csv.gz | parquet): by its first bytes, else by its name."""
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, what in FOREIGN.items():
        if head.startswith(magic):
            raise UserError(f"{path}: is {what}; expected a Kaggle train.csv (UTF-8), train.csv.gz or Parquet")
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    return "parquet" if path.suffix == ".parquet" else "csv.gz" if path.suffix == ".gz" else "csv"


def _parquet_files(root: Path) -> list[Path]:
    """The *.parquet files under directory `root` in name order, each checked readable."""

    def unlistable(e: OSError):
        why = "permission denied" if isinstance(e, PermissionError) else e.strerror
        raise UserError(f"cannot list directory {e.filename} ({why}); expected a readable directory of Parquet parts")

    files = sorted(Path(d, n) for d, _, names in os.walk(root, onerror=unlistable) for n in names if n.endswith(".parquet"))
    files = [f for f in files if f.is_file()]
    if not files:
        raise UserError(f"{root}: directory holds no *.parquet files; expected a directory of Parquet parts")
    for f in files:
        _sniff(f)
    return files


@dataclass
class Source:
    """What was ingested: its files with size and mtime (for the cheap unchanged check)."""

    path: Path
    kind: str  # csv | csv.gz | parquet
    files: list[Path]
    stats: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def of(cls, src: str | os.PathLike) -> Source:
        path = Path(src)
        try:
            if not path.exists():
                raise UserError(f"{path}: no such file or directory; expected a Kaggle train.csv(.gz), a .parquet file or a directory of them")
            files, kind = (_parquet_files(path), "parquet") if path.is_dir() else ([path], _sniff(path))
            return cls(path, kind, files, [(st.st_size, st.st_mtime_ns) for st in map(os.stat, files)])
        except OSError as e:
            raise read_error(path, e) from None

    @property
    def size(self) -> int:
        return sum(s for s, _ in self.stats)

    def fingerprint(self) -> list:
        return [[str(f.relative_to(self.path) if f != self.path else f.name), s, m] for f, (s, m) in zip(self.files, self.stats)]

    def checksum(self) -> str:
        """SHA-1 of the source bytes (every file in name order)."""
        h = hashlib.new(HASH)
        for f in self.files:
            try:
                with open(f, "rb") as fh:
                    while chunk := fh.read(1 << 24):
                        h.update(chunk)
            except OSError as e:
                raise read_error(f, e) from None
        return f"{HASH}:{h.hexdigest()}"

    def manifest(self, checksum: str) -> dict:
        return {"kind": self.kind, "path": str(self.path.resolve()), "bytes": self.size, "files": self.fingerprint(), "checksum": checksum}


class _Tap(io.RawIOBase):
    """A read-only byte stream that hashes and counts what passes through it and keeps its tail."""

    def __init__(self, raw, hasher=None, tail: int = 1 << 16):
        self.raw, self.hasher, self.n, self.eof = raw, hasher, 0, False
        self.tail, self._keep = b"", tail

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.raw.readinto(b)
        data = memoryview(b)[:n]
        self.n += n
        if self.hasher is not None:
            self.hasher.update(data)
        if n:
            self.tail = (self.tail + data)[-self._keep :] if n < self._keep else bytes(data[-self._keep :])
        else:
            self.eof = True
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


# -- CSV -----------------------------------------------------------------------------------
def _text_stream(path: Path, kind: str, hasher=None) -> tuple[_Tap, _Tap]:
    """(raw tap: source bytes, text tap: decompressed CSV bytes); the same tap for plain CSV."""
    try:
        raw = _Tap(open(path, "rb"), hasher)
    except OSError as e:
        raise read_error(path, e) from None
    return (raw, _Tap(gzip.GzipFile(fileobj=raw))) if kind == "csv.gz" else (raw, raw)


def csv_header(path: Path, kind: str) -> list[str]:
    """The column names in the first line (after a UTF-8 byte-order mark, if any)."""
    _, text = _text_stream(path, kind)
    with text:
        try:
            line = io.BufferedReader(text).readline(PIECE_BYTES)
        except (OSError, EOFError) as e:
            raise UserError(f"{path}: cannot read ({e})") from None
    line = line.removeprefix(codecs.BOM_UTF8)
    if not line:
        raise UserError(f"{path}: file is empty; expected a header line (date, weight, resp, feature_0, ...) and data rows")
    if not line.rstrip(b"\r\n"):
        raise UserError(f"{path} line 1 is blank; expected the header line (date, weight, resp, feature_0, ...)")
    if b"\r" in line.rstrip(b"\r\n"):
        if line.endswith(b"\n"):
            raise UserError(f"{path} line 1: a CR (\\r) inside the line; expected lines ending in LF or CRLF")
        raise UserError(f"{path}: lines end in CR only (old Mac format); expected LF or CRLF line ends")
    try:
        return next(csv.reader([line.decode("utf-8", "replace").rstrip("\r\n")]))
    except csv.Error as e:
        raise UserError(f"{path} line 1: cannot parse the header ({e})") from None


def _arrow_types(layout: Layout) -> dict[str, pa.DataType]:
    return {c: (pa.int64() if c in INT_COLUMNS else pa.float64()) for c in layout.read}


def _csv_options(layout: Layout, types: dict, on_invalid=None, null_values=schema.NA_VALUES) -> dict:
    """pyarrow parse and convert options: one row per line, only the columns the store needs."""
    return {
        "parse_options": pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=on_invalid),
        "convert_options": pacsv.ConvertOptions(column_types=types, include_columns=layout.read, null_values=null_values),
    }


def _pieces(text: _Tap, size: int, path: Path) -> Iterator[bytes | bytearray]:
    """`text` in consecutive pieces of about `size` bytes, each ending at a line end (the last one may not)."""
    rest = b""
    while True:
        buf = bytearray(len(rest) + size)
        buf[: len(rest)] = rest
        end = len(rest) + text.readinto(memoryview(buf)[len(rest) :])
        if end == len(rest):
            break
        cut = buf.rfind(b"\n", 0, end) + 1
        if not cut and end > size:
            raise UserError(f"{path}: no line end in {end:,} bytes before byte {text.n:,}; expected CSV lines ending in LF or CRLF")
        rest = bytes(buf[cut:end])
        if cut:
            del buf[cut:]
            yield buf
    if rest:
        yield rest


class _BadLine(Exception):
    """A blank line or a stray CR in a piece (pyarrow would read either as a row of its own)."""

    def __init__(self, rows_before: int, what: str):
        self.rows_before, self.what = rows_before, what


def _lint(piece: bytes | bytearray, first: bool) -> None:
    """Raise _BadLine at the first blank line or CR that ends no line in `piece` (`first`: it starts
    with the header). Only on the error path: its searches take ~8 ms a piece, holding the GIL."""
    found = [i + 1 for i in (piece.find(b"\n\n"), piece.find(b"\n\r\n")) if i >= 0]
    found = [(i, "blank") for i in found + ([0] if piece[:1] == b"\n" or piece[:2] == b"\r\n" else [])]
    if piece.find(b"\r") >= 0 and piece.count(b"\r") != piece.count(b"\r\n"):
        found.append((re.search(rb"\r(?!\n)", piece).start(), "cr"))
    if found:
        at, what = min(found)
        raise _BadLine(piece.count(b"\n", 0, at) - first, what)


def _in_threads(fn, items: Iterator, workers: int) -> Iterator:
    """fn(item) for each item, in order, computed by `workers` threads ahead of the consumer
    (one more item waits its turn, so the threads stay busy while the consumer works)."""
    pool = ThreadPoolExecutor(workers)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+): invalid value '(.*)'", re.S)


def locate_csv_error(path: Path, kind: str, layout: Layout, err: Exception) -> UserError:
    """Turn a pyarrow CSV error into a one-line UserError with the line number.

    Reruns a single-threaded, unconverted pass (the error path only) to find the line.
    """
    bad: list = []

    def on_invalid(row):
        bad.append(row)
        return "error"

    m = _CONVERSION.search(str(err))
    column = layout.columns[int(m.group(1))] if m else None
    _, text = _text_stream(path, kind)
    line = 2
    read_options = pacsv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES, column_names=layout.columns, skip_rows=1)
    try:
        with text, pacsv.open_csv(text, read_options=read_options, **_csv_options(layout, {c: pa.binary() for c in layout.read}, on_invalid)) as reader:
            for batch in reader:
                if column is not None:
                    for k, v in enumerate(batch.column(column).to_pylist()):
                        if v is not None and v.decode("utf-8", "replace") == m.group(3):
                            digits = re.fullmatch(r"\s*[-+]?\d+\s*", m.group(3))
                            want = "a number" if not m.group(2).startswith("int") else "an integer in int64 range" if digits else "an integer"
                            return UserError(f"{path} line {line + k}, column {column!r}: got {m.group(3)!r}, expected {want}")
                line += batch.num_rows
    except (pa.ArrowInvalid, OSError, EOFError):
        pass
    if bad:
        row = bad[0]
        text_bytes = row.text.encode()
        if text.eof and not text.tail.endswith(b"\n") and text.tail.endswith(text_bytes) and row.actual_columns < row.expected_columns:
            return UserError(f"{path} line {row.number}: truncated last line ({row.actual_columns} of {row.expected_columns} fields, no newline at the end); the file is incomplete")
        what = "too few" if row.actual_columns < row.expected_columns else "too many"
        return UserError(f"{path} line {row.number}: {what} fields: expected {row.expected_columns} (as in the header), got {row.actual_columns}")
    return UserError(f"{path}: cannot parse as CSV ({str(err).splitlines()[0]})")


def iter_csv(source: Source, layout: Layout, hasher) -> Iterator[tuple[pa.RecordBatch, int, int]]:
    """Yield (batch, first line number, source bytes read so far), one batch per piece of the file.

    pyarrow's CSV threads have aborted finishing interpreters: see jsmp.data.__main__.run_and_exit.
    """
    path = source.files[0]
    raw, text = _text_stream(path, source.kind, hasher)
    options = _csv_options(layout, _arrow_types(layout))
    # pyarrow parses ~20% faster when "" is the only null spelling. Its other ones (NaN, NA, NULL,
    # ...) either hold an "a" or "A" or are no number at all: a piece without those letters that
    # parses with "" alone gives the same table as with them all.
    empty_null = _csv_options(layout, _arrow_types(layout), null_values=[""])
    pool = pa.system_memory_pool()  # malloc hands freed blocks back; pyarrow's default keeps ~30 MB more RSS

    def parse(item: tuple[int, bytes | bytearray, int]) -> tuple[pa.Table, int]:
        """(one-chunk table of a piece, source bytes read up to it); runs in a parser thread."""
        i, piece, nbytes = item
        read_options = pacsv.ReadOptions(use_threads=False, block_size=len(piece), column_names=layout.columns, skip_rows=int(i == 0))
        read = functools.partial(pacsv.read_csv, pa.py_buffer(piece), read_options, memory_pool=pool)
        try:
            table = None
            if b"a" not in piece and b"A" not in piece:
                try:
                    table = read(**empty_null)
                except pa.ArrowInvalid:
                    pass  # NULL, 1.#IND, ... or a bad value: the full null spellings tell
            if table is None:
                table = read(**options)
        except pa.ArrowInvalid:
            _lint(piece, i == 0)  # a stray CR splits a line in two short rows
            raise
        if table.column("date").null_count:
            _lint(piece, i == 0)  # a blank line reads as a row of nulls
        return table, nbytes

    line = 2
    with text:
        try:
            pieces = ((i, piece, raw.n) for i, piece in enumerate(_pieces(text, PIECE_BYTES, path)))
            with closing(_in_threads(parse, pieces, PARSERS)) as tables:
                for table, nbytes in tables:
                    for batch in table.to_batches():
                        yield batch, line, nbytes
                        line += batch.num_rows
        except _BadLine as e:
            if e.what == "blank":
                raise UserError(f"{path} line {line + e.rows_before} is blank; expected {len(layout.columns)} fields (as in the header)") from None
            raise UserError(f"{path} line {line + e.rows_before}: a CR (\\r) that ends no line; expected lines ending in LF or CRLF") from None
        except (pa.ArrowInvalid, EOFError, OSError) as e:
            if not isinstance(e, pa.ArrowInvalid):
                raise UserError(f"{path}: cannot read ({e}); expected a complete {source.kind} file") from None
            raise locate_csv_error(path, source.kind, layout, e) from None


# -- Parquet ------------------------------------------------------------------------------
def parquet_file(path: Path):
    """Open a Parquet file (pyarrow.parquet is imported only for Parquet sources)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None


def parquet_layout(source: Source) -> Layout:
    layouts = []
    for f in source.files:
        pf = parquet_file(f)
        layout = plan_columns(pf.schema_arrow.names, str(f))
        for c in layout.read:
            t = pf.schema_arrow.field(c).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
                raise UserError(f"{f}, column {c!r}: has type {t}; expected numbers")
        layouts.append(layout)
    first = layouts[0]
    for f, lay in zip(source.files[1:], layouts[1:]):
        if set(lay.read) != set(first.read):
            diff = sorted(set(lay.read) ^ set(first.read))
            raise UserError(f"{f}: columns differ from {source.files[0].name} ({', '.join(diff[:5])}); expected the same columns in every part")
    return first


def iter_parquet(source: Source, layout: Layout) -> Iterator[tuple[pa.RecordBatch, Path, int, int]]:
    """Yield (batch, file, first row number in that file (1-based), approximate bytes read so far)."""
    done = 0
    for f, (size, _) in zip(source.files, source.stats):
        pf = parquet_file(f)
        row = 1
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=layout.read):
                yield batch, f, row, done + int(size * (row - 1 + batch.num_rows) / max(1, pf.metadata.num_rows))
                row += batch.num_rows
        except (pa.ArrowException, OSError) as e:
            raise UserError(f"{f} row {row}: cannot read ({str(e).splitlines()[0]}); expected a complete Parquet file") from None
        done += size


# -- checks and conversion ----------------------------------------------------------------
@functools.lru_cache
def _dtype(t: pa.DataType) -> np.dtype:
    kind = "float" if pa.types.is_floating(t) else "uint" if pa.types.is_unsigned_integer(t) else "int"
    return np.dtype(f"{kind}{t.bit_width}")


def _numpy(col: pa.Array) -> np.ndarray:
    """Zero-copy view of a numeric column's values (pyarrow's to_numpy would import pandas: +100 MB RSS)."""
    dtype = _dtype(col.type)
    return np.frombuffer(col.buffers()[1], dtype=dtype, count=len(col), offset=col.offset * dtype.itemsize)


def _nulls(col: pa.Array) -> np.ndarray:
    """(n,) bool: where `col` is null (an empty field, NaN, NA, ...), from its validity bitmap."""
    bits = np.frombuffer(col.buffers()[0], dtype=np.uint8)
    return ~np.unpackbits(bits, bitorder="little")[col.offset : col.offset + len(col)].astype(bool)


@dataclass
class Checker:
    """Per-batch value checks across batch boundaries; raises UserError at the first bad value.

    `nan_values`: a float NaN (not a null) is NaN in features (Parquet); else it is an error (CSV,
    where every NaN spelling pandas reads is a null, and pyarrow reads only others such as `nan(1)`
    as NaN). In the other columns a null or NaN is always an error.
    """

    last_date: int | None = None
    last_ts: int | None = None
    nan_values: bool = False

    def __call__(self, batch: pa.RecordBatch, layout: Layout, where) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Arrays of a batch: x (n, F) float32 row-major and side columns (n,); `where(i, col)` names row i."""
        n = batch.num_rows
        side = {c: self._side(batch.column(c), c, where) for c in layout.side}
        x = np.empty((n, len(layout.features)), dtype=np.float32)
        cols = [batch.column(c) for c in layout.features]
        with np.errstate(over="ignore"):  # beyond float32 range: Inf, an error below
            for j, col in enumerate(cols):
                x[:, j] = _numpy(col)
        if not np.isfinite(x).all():  # null slots hold 0 as pyarrow writes them; any others are checked one by one
            self._features(x, cols, layout.features, where)
        for j, col in enumerate(cols):
            if col.null_count:
                x[_nulls(col), j] = np.nan
        self._order(side, n, where)
        return x, side

    def _features(self, x: np.ndarray, cols: list[pa.Array], names: list[str], where) -> None:
        """Raise at the first (row, then column) ±Inf, or NaN unless `nan_values`, that is no null."""
        first = (len(x), 0)
        for j, col in enumerate(cols):
            bad = ~np.isfinite(x[:, j])
            if col.null_count:
                bad &= ~_nulls(col)
            if self.nan_values:
                bad &= ~np.isnan(x[:, j])
            if bad.any():
                first = min(first, (int(np.argmax(bad)), j))
        i, j = first
        if i == len(x):
            return
        if np.isnan(x[i, j]):
            raise UserError(f"{where(i, names[j])}: got a NaN that pandas does not read (such as nan(1)); expected a number, or NaN or an empty field for NaN")
        raise UserError(f"{where(i, names[j])}: got {x[i, j]!s} (±Inf, or beyond float32 range); expected a finite number or an empty field for NaN")

    @staticmethod
    def _side(col: pa.Array, c: str, where) -> np.ndarray:
        """Column `c`'s values, every one present, finite and in range: int64 for INT_COLUMNS, else float32."""
        if col.null_count:
            i = int(np.flatnonzero(_nulls(col))[0])
            raise UserError(f"{where(i, c)}: missing value (an empty field, NaN, NA, null, ...); expected a number in every row of {c!r}: only feature_* columns may hold NaN")
        v = _numpy(col)
        if c in schema.INT_RANGES:
            lo, hi = schema.INT_RANGES[c]
            if v.dtype.kind == "f":
                bad = ~((v >= lo) & (v < hi + 1) & (v == np.floor(v)))  # NaN fails every comparison
            elif np.iinfo(v.dtype).min < lo or np.iinfo(v.dtype).max > hi:
                bad = (v < lo) | (v > hi)
            else:
                return v.astype(np.int64)
            if bad.any():
                i = int(np.argmax(bad))
                raise UserError(f"{where(i, c)}: got {v[i]}; expected an integer from {lo} to {hi}")
            return v.astype(np.int64)
        with np.errstate(over="ignore"):
            v = v.astype(np.float32)
        bad = ~np.isfinite(v) | (v < 0) if c == "weight" else ~np.isfinite(v)
        if bad.any():
            i = int(np.argmax(bad))
            if np.isnan(v[i]):
                raise UserError(f"{where(i, c)}: got NaN; expected a number in every row of {c!r}: only feature_* columns may hold NaN")
            if np.isinf(v[i]):
                raise UserError(f"{where(i, c)}: got {v[i]!s} (±Inf, or beyond float32 range); expected a finite number")
            raise UserError(f"{where(i, c)}: got {v[i]!s}; expected weight >= 0 (a negative weight flips the sign of the row's utility)")
        return v

    def _order(self, side: dict[str, np.ndarray], n: int, where) -> None:
        date = side["date"]
        prev = np.r_[self.last_date if self.last_date is not None else date[0], date[:-1]]
        bad = np.flatnonzero(date < prev)
        if len(bad):
            i = int(bad[0])
            raise UserError(f"{where(i, 'date')}: date {date[i]} after date {prev[i]}; expected non-decreasing dates (rows in ts_id order)")
        self.last_date = int(date[-1])
        if "ts_id" in side:
            ts = side["ts_id"]
            prev = np.r_[self.last_ts if self.last_ts is not None else ts[0] - 1, ts[:-1]]
            bad = np.flatnonzero(ts <= prev)
            if len(bad):
                i = int(bad[0])
                what = "repeats" if ts[i] == prev[i] else f"is below the previous {prev[i]}"
                raise UserError(f"{where(i, 'ts_id')}: ts_id {ts[i]} {what}; expected strictly increasing ts_id")
            self.last_ts = int(ts[-1])
        else:
            start = 0 if self.last_ts is None else self.last_ts + 1
            side["ts_id"] = np.arange(start, start + n, dtype=np.int64)
            self.last_ts = start + n - 1


# -- the command ---------------------------------------------------------------------------
def up_to_date(store: Path, source: Source) -> str | None:
    """The store's source checksum when `store` was ingested from these very bytes, else None."""
    try:
        old = json.loads((store / MANIFEST).read_text()).get("source", {})
    except (OSError, json.JSONDecodeError):
        return None
    if old.get("bytes") != source.size or "checksum" not in old:
        return None
    if old.get("files") == source.fingerprint():
        return old["checksum"]
    return old["checksum"] if source.checksum() == old["checksum"] else None


def _progress(source: Source):
    return tqdm(total=source.size, unit="B", unit_scale=True, desc=f"ingesting {source.path.name}", disable=None, file=sys.stderr)


def ingest(src: str | os.PathLike, store: str | os.PathLike, force: bool = False, shard_rows: int = SHARD_ROWS) -> tuple[Path, bool]:
    """Ingest `src` into a store at `store`; returns (store path, whether anything was written)."""
    source, store = Source.of(src), Path(store)
    csv_input = source.kind != "parquet"
    layout = plan_columns(csv_header(source.files[0], source.kind), str(source.files[0])) if csv_input else parquet_layout(source)
    side_dtypes = {c: schema.SIDE_DTYPES[c] for c in schema.SIDE_DTYPES if c in layout.side or c == "ts_id"}
    try:
        with StoreWriter(store, layout.features, side_dtypes, {}, columns=layout.columns, shard_rows=shard_rows, inputs=[source.path]) as w:
            if not force and (store / MANIFEST).is_file() and (checksum := up_to_date(store, source)):
                # every checksum: a read of the store, far cheaper than ingesting it again
                if (damage := damage_at(store, full=True)) is None:
                    w.abort()
                    log.info("store %s is up to date with %s (%s); --force re-ingests", store, source.path, checksum)
                    return store, False
                print(f"warning: store {store} is damaged ({damage}); re-ingesting {source.path}", file=sys.stderr)
            if layout.ignored:
                print(f"warning: {source.path}: ignoring {len(layout.ignored)} unknown column(s): {_short(layout.ignored)}", file=sys.stderr)
            _write(source, layout, w)
    except OSError as e:
        raise UserError(f"{e.filename or store}: cannot write the store ({e.strerror or e})") from None
    return store, True


def _write(source: Source, layout: Layout, w: StoreWriter) -> None:
    """Stream, check and append every row of `source` to `w`, then close it."""
    csv_input = source.kind != "parquet"
    hasher = hashlib.new(HASH) if csv_input else None
    check = Checker(nan_values=not csv_input)
    nan_counts = np.zeros(len(layout.features), dtype=np.int64)
    t0 = time.perf_counter()
    rows = 0
    with _progress(source) as bar:
        if csv_input:
            path = source.files[0]
            blocks = ((b, (lambda i, c, line=line: f"{path} line {line + i}, column {c!r}"), n) for b, line, n in iter_csv(source, layout, hasher))
        else:
            blocks = ((b, (lambda i, c, f=f, row=row: f"{f} row {row + i}, column {c!r}"), n) for b, f, row, n in iter_parquet(source, layout))
        for batch, where, nbytes in blocks:
            if not batch.num_rows:
                continue
            x, side = check(batch, layout, where)
            nan_counts += np.isnan(x).sum(0)
            w.append(x, side)
            rows += batch.num_rows
            bar.update(nbytes - bar.n)
            bar.set_postfix_str(f"{rows:,} rows, {rows / max(time.perf_counter() - t0, 1e-9):,.0f} rows/s", refresh=False)
    if rows == 0:
        raise UserError(f"{source.files[0]}: header only, no data rows; expected at least one row")
    checksum = f"{HASH}:{hasher.hexdigest()}" if hasher is not None else source.checksum()
    w.source = source.manifest(checksum)
    w.close(extra={"nan_counts": nan_counts.tolist()})
