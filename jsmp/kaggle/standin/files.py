"""A competition folder for the stand-in 2024 gateway, cut from a labelled source (a dry run on synthetic data,
docs/kaggle.md#a-local-dry-run): dates FIRST..LAST of a train.parquet renumbered from 0 into
`test.parquet/date_id=K/part-0.parquet` (row_id from 0, is_scored true, no responders) and
`lags.parquet/date_id=K/part-0.parquet` (date K's: the previous source date's responders as responder_N_lag_1;
none for a date whose previous date the source lacks)."""

from __future__ import annotations

import os
from pathlib import Path

from jsmp.errors import UserError


def write_2024(source: str | os.PathLike, out: str | os.PathLike, first: int, last: int) -> Path:
    """Write the competition folder `out` (test.parquet/, lags.parquet/) of `source`'s dates first..last."""
    import polars as pl

    frame = pl.scan_parquet(Path(source), hive_partitioning=True)
    have = frame.collect_schema().names()
    responders = [c for c in have if c.startswith("responder_")]
    if not responders or "date_id" not in have:
        raise UserError(f"{source}: expected a labelled 2024-layout Parquet source (date_id, ..., responder_N)")
    rows = frame.filter(pl.col("date_id").is_between(first - 1, last)).drop("partition_id", strict=False).collect()
    if rows.filter(pl.col("date_id") >= first).is_empty():
        raise UserError(f"{source}: no rows of date_id {first}..{last}")
    out, row_id = Path(out), 0
    for date in range(first, last + 1):
        k = date - first
        day = rows.filter(pl.col("date_id") == date)
        test = day.drop(responders).with_columns(pl.lit(k, pl.Int16).alias("date_id"), pl.lit(True).alias("is_scored"))
        test = test.with_columns(pl.int_range(row_id, row_id + len(day), dtype=pl.Int64).alias("row_id"))
        keys = ["row_id", "date_id", "time_id", "symbol_id", "weight", "is_scored"]
        _write(test.select(*keys, pl.exclude(keys)), out / "test.parquet" / f"date_id={k}")
        lags = rows.filter(pl.col("date_id") == date - 1).select(
            pl.lit(k, pl.Int16).alias("date_id"),
            "time_id",
            "symbol_id",
            *(pl.col(r).alias(f"{r}_lag_1") for r in responders),
        )
        _write(lags, out / "lags.parquet" / f"date_id={k}")
        row_id += len(day)
    return out


def _write(df, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    df.write_parquet(folder / "part-0.parquet")
