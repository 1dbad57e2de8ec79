"""THE reader of raw files, for ingest and predict alike: a CSV, CSV.gz, Parquet file or directory of
Parquet parts -> checked blocks of float32 features and side columns, streamed in bounded pieces.

    reader = Reader("train.csv")                  # finds the files and tells their format (Source)
    layout = reader.layout()                      # the header checked against the schema (plan: 2021, 2024, lags)
    for x, side, nbytes in reader.blocks(layout): # x (n, F) float32, side {column: (n,)}, bytes read so far
        ...

Rules (docs/ingest.md): the format is told by a file's first bytes; column order does not matter
(`layout.features` sets x's); in features an empty field and every NaN spelling pandas reads are NaN;
every side value must be present, finite and in range (`date`, `date_id`, `time_id` int32
integers, `symbol_id` one from 0 to 2**20 - 1, `ts_id` an int64 one, `weight` >= 0); ±Inf anywhere
is an error, as is a feature beyond ±feature_limit (schema.FEATURE_LIMIT); `date` never
decreases, `ts_id` strictly increases (numbered from row order when absent); 2024 rows come in
(date_id, time_id) order with each symbol_id at most once per time step, and `date_id` is read as
`date`; a CSV is UTF-8 with LF or CRLF line ends and no blank lines.
A bad input raises a one-line UserError naming the file, line (CSV) or row (Parquet) and column.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from jsmp.data.checks import Checker
from jsmp.data.csvfile import csv_header, iter_csv
from jsmp.data.parquetfile import iter_parquet, parquet_layout
from jsmp.data.schema import FEATURE_LIMIT, INT_COLUMNS, Layout, plan, plan_columns
from jsmp.data.sources import Source
from jsmp.errors import UserError

__all__ = ["INT_COLUMNS", "Block", "Checker", "Layout", "Reader", "Source", "plan", "plan_columns"]


class Block(NamedTuple):
    """Consecutive checked rows of a source."""

    x: np.ndarray  # (n, F) float32, columns in layout.features order, NaN where missing
    side: dict[str, np.ndarray]  # (n,) per side column, store names: integer columns int64, others float32; always a ts_id
    nbytes: int  # source bytes read up to this block (for progress; approximate for Parquet)


class Reader:
    """A raw source opened for reading: `source` (its files and format; a bad path raises here)."""

    def __init__(self, src: str | os.PathLike):
        self.source = Source.of(src)
        self.csv = self.source.kind != "parquet"

    def layout(self, select: Callable[[list[str], str], Layout] = plan) -> Layout:
        """What to read: `select(columns, file)` of the header (CSV) or of each part (Parquet, which
        must agree and be numeric). The default checks a training or lags file (schema.plan)."""
        if self.csv:
            path = self.source.files[0]
            return select(csv_header(path, self.source.kind), str(path))
        return parquet_layout(self.source, select)

    def blocks(self, layout: Layout, hasher=None, feature_limit: float = FEATURE_LIMIT) -> Iterator[Block]:
        """Every row of the source, checked (Checker), in blocks of about 2k rows (CSV) or 32k (Parquet).

        `hasher` (hashlib) sees a CSV's bytes as they are read (a Parquet file is read out of order:
        hash it with Source.checksum); a feature value beyond ±`feature_limit` is an error. Raises
        UserError when there is no data row."""
        check = Checker(nan_values=not self.csv, feature_limit=feature_limit)  # CSV: NaN only through a null spelling
        if self.csv:
            path = self.source.files[0]
            batches = ((b, lambda i, c, line=line: f"{path} line {line + i}, column {c!r}", n)
                       for b, line, n in iter_csv(self.source, layout, hasher))
        else:
            batches = ((b, lambda i, c, f=f, row=row: f"{f} row {row + i}, column {c!r}", n)
                       for b, f, row, n in iter_parquet(self.source, layout))
        rows = 0
        for batch, where, nbytes in batches:
            if batch.num_rows:
                x, side = check(batch, layout, where)
                rows += len(x)
                yield Block(x, side, nbytes)
        if not rows:
            raise UserError(f"{self.source.files[0]}: header only, no data rows; expected at least one row")
