"""Ingest a raw source into a store (docs/ingest.md): skip it when the store already holds these very
bytes (size, mtime and SHA-1 in the manifest), else stream it through jsmp.data.reader into a
StoreWriter, which leaves nothing at the store path unless the whole source was read. A 2024 source
(train.parquet or lags.parquet) becomes a grouped store: `symbol_id` series in (date, time_id) order."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jsmp.data.reader import Reader
from jsmp.data.schema import FEATURE_LIMIT, Layout, short
from jsmp.data.sources import HASH, Source
from jsmp.errors import UserError
from jsmp.files import disk_full_error
from jsmp.store.store import StoreWriter, damage_at, provenance

log = logging.getLogger(__name__)

SHARD_ROWS = 1 << 15  # 32,768 rows x 130 features x 4 B = 17 MB: bounds ingest memory


def up_to_date(store: Path, source: Source, feature_limit: float = FEATURE_LIMIT) -> str | None:
    """The store's source checksum when `store` was ingested from these very bytes with this
    `feature_limit`, else None."""
    made = provenance(store)
    if made is None or made.feature_limit != feature_limit:
        return None
    old = made.source
    if old.get("bytes") != source.size or "checksum" not in old:
        return None
    if old.get("files") == source.fingerprint():
        return old["checksum"]
    return old["checksum"] if source.checksum() == old["checksum"] else None


def _progress(source: Source):
    return tqdm(total=source.size, unit="B", unit_scale=True, desc=f"ingesting {source.path.name}", disable=None, file=sys.stderr)


def ingest(src: str | os.PathLike, store: str | os.PathLike, force: bool = False, shard_rows: int = SHARD_ROWS,
           feature_limit: float = FEATURE_LIMIT) -> tuple[Path, bool]:
    """Ingest `src` into a store at `store`, refusing a feature beyond ±`feature_limit` (recorded in
    the manifest); returns (store path, whether anything was written)."""
    reader, store = Reader(src), Path(store)
    source, layout = reader.source, reader.layout()
    try:
        with StoreWriter(store, layout.features, layout.dtypes, {}, columns=layout.columns, shard_rows=shard_rows, inputs=[source.path],
                         group=layout.group, time=layout.time, feature_limit=feature_limit) as w:
            if not force and (checksum := up_to_date(store, source, feature_limit)):
                # every checksum: a read of the store, far cheaper than ingesting it again
                if (damage := damage_at(store, full=True)) is None:
                    w.abort()
                    log.info("store %s is up to date with %s (%s); --force re-ingests", store, source.path, checksum)
                    return store, False
                print(f"warning: store {store} is damaged ({damage}); re-ingesting {source.path}", file=sys.stderr)
            if layout.ignored:
                print(f"warning: {source.path}: ignoring {len(layout.ignored)} unknown column(s): {short(layout.ignored)}", file=sys.stderr)
            _write(reader, layout, w, feature_limit)
    except OSError as e:  # a full disk: the store takes about the source's size (a CSV's; a Parquet's more)
        raise disk_full_error(e, f"--store {store}", "the store", store.parent, source.size) or UserError(
            f"{e.filename or store}: cannot write the store ({e.strerror or e})") from None
    return store, True


def _write(reader: Reader, layout: Layout, w: StoreWriter, feature_limit: float) -> None:
    """Stream every checked row of `reader` to `w` with the source's checksum and NaN counts, then close it."""
    source = reader.source
    hasher = hashlib.new(HASH) if reader.csv else None
    nan_counts = np.zeros(len(layout.features), dtype=np.int64)
    t0 = time.perf_counter()
    rows = 0
    with _progress(source) as bar:
        for x, side, nbytes in reader.blocks(layout, hasher, feature_limit):
            nan_counts += np.isnan(x).sum(0)
            w.append(x, side)
            rows += len(x)
            bar.update(nbytes - bar.n)
            bar.set_postfix_str(f"{rows:,} rows, {rows / max(time.perf_counter() - t0, 1e-9):,.0f} rows/s", refresh=False)
    checksum = f"{HASH}:{hasher.hexdigest()}" if hasher is not None else source.checksum()
    w.source = source.manifest(checksum)
    w.close(extra={"nan_counts": nan_counts.tolist()})
