"""Parquet file(s) -> pyarrow batches: each part's columns laid out and checked numeric, then its row
batches in order. A hive key in a part's path (`date_id=3/part-0.parquet`) is a constant integer
column of that part when the file lacks it. Used through jsmp.data.reader (docs/ingest.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from jsmp.data.schema import Layout
from jsmp.data.sources import Source, hive_keys
from jsmp.errors import UserError

BATCH_ROWS = 1 << 15


def parquet_file(path: Path):
    """Open a Parquet file (pyarrow.parquet is imported only for Parquet sources)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None


def _hive(pf, f: Path, source: Source) -> dict[str, int]:
    """The hive keys of part `f` that its file does not hold as columns."""
    return {k: v for k, v in hive_keys(f, source.path).items() if k not in pf.schema_arrow.names}


def parquet_layout(source: Source, select: Callable[[list[str], str], Layout]) -> Layout:
    """The layout `select(columns, file name)` makes of every part, checked to read the same numeric columns."""
    layouts = []
    for f in source.files:
        pf = parquet_file(f)
        hive = _hive(pf, f, source)
        layout = select([*pf.schema_arrow.names, *hive], str(f))
        for c in layout.read:
            t = pa.int64() if c in hive else pf.schema_arrow.field(c).type
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
        hive = {k: v for k, v in _hive(pf, f, source).items() if k in layout.read}
        row = 1
        try:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[c for c in layout.read if c not in hive]):
                for k, v in hive.items():
                    batch = batch.append_column(k, pa.array(np.full(batch.num_rows, v, np.int64)))
                yield batch, f, row, done + int(size * (row - 1 + batch.num_rows) / max(1, pf.metadata.num_rows))
                row += batch.num_rows
        except (pa.ArrowException, OSError) as e:
            raise UserError(f"{f} row {row}: cannot read ({str(e).splitlines()[0]}); expected a complete Parquet file") from None
        done += size
