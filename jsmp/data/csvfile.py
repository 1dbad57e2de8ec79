"""CSV(.gz) bytes -> pyarrow batches: the file cut into pieces of whole lines, parsed by pyarrow in
threads side by side while the caller checks the batches before; a parse error is located by line
and column in a one-line UserError. Used through jsmp.data.reader (docs/ingest.md)."""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import io
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from jsmp.data import schema
from jsmp.data.schema import INT_COLUMNS, Layout
from jsmp.data.sources import Source, read_error
from jsmp.errors import UserError

PIECE_BYTES = 3 << 20  # CSV bytes per pyarrow call (~2k rows); PARSERS threads parse pieces side by side
PARSERS = 2
BLOCK_BYTES = 1 << 20  # for the single-threaded re-read that locates an error


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
        if table.column(layout.source_name("date")).null_count:
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
