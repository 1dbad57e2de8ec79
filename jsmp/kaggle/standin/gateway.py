"""The stand-in gateways: what the Kaggle scoring APIs do with a participant's code, with their checks
(a breach raises GatewayError, one line, as the real gateway fails the run).

2024 (`serve_2024`): the test folder `test.parquet/date_id=K/` (hive, dates numbered from 0) is served
date by date in order; each date's rows are grouped by time_id in file order, one call
`predict(test, lags)` per group with polars frames, `lags` the date's whole `lags.parquet/date_id=K/`
frame at its first time_id and None at the others. Each answer (polars or pandas) must have the batch's
row count, its first column the batch's row_id in order, and come within 60 s (the first within 15 min,
start-up); the answers go to `submission.parquet`.

2021 (`Env2021`): example_test.csv served one row a call (test_df: a 1-row pandas frame of the file's
columns, ts_id its index; sample_prediction_df: `action` 0 with the same index); predict() must be given
that row's answer (action 0 or 1) before the next row comes; the answers go to `submission.csv`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from jsmp.kaggle import DATA_ENV

FIRST_LIMIT_S, LIMIT_S = 15 * 60, 60.0
SUBMISSIONS = ("submission.parquet", "submission.csv")  # 2024's, 2021's (in the working directory)
_DATE = re.compile(r"^date_id=(\d+)$")


class GatewayError(Exception):
    """The stand-in refused the participant's answers (the real gateway fails the run)."""


def data_dir() -> Path:
    """The competition folder the stand-ins serve: $JSMP_KAGGLE_DATA."""
    if not (path := os.environ.get(DATA_ENV)):
        raise GatewayError(f"${DATA_ENV} is not set; expected the competition folder the stand-in serves")
    return Path(path)


def dates(root: Path) -> list[tuple[int, Path]]:
    """(date_id, its partition dir) of hive folder `root` in date order."""
    if not root.is_dir():
        raise GatewayError(f"{root}: no such directory; expected the test.parquet / lags.parquet layout")
    found = sorted((int(m.group(1)), d) for d in root.iterdir() if d.is_dir() and (m := _DATE.match(d.name)))
    if not found:
        raise GatewayError(f"{root}: no date_id=K partitions; expected the test.parquet / lags.parquet layout")
    return found


def read_date(part: Path, date: int):
    """The polars frame of one date's partition (its date_id column added where the files leave it to the path)."""
    import polars as pl

    df = pl.concat([pl.read_parquet(f) for f in sorted(part.glob("*.parquet"))], how="vertical")
    return df if "date_id" in df.columns else df.insert_column(0, pl.lit(date, pl.Int16).alias("date_id"))


def _answer(out, batch, where: str):
    """The answer `out` as a polars frame, checked against the batch: its row count, its first column the row_ids."""
    import polars as pl

    if type(out).__module__.startswith("pandas"):
        out = pl.from_pandas(out)
    if not isinstance(out, pl.DataFrame):
        raise GatewayError(f"{where}: predict returned {type(out).__name__}; expected a polars or pandas DataFrame")
    if len(out) != len(batch):
        raise GatewayError(f"{where}: predict returned {len(out)} rows for a batch of {len(batch)}")
    if out.width < 2 or not out.to_series(0).cast(pl.Int64).equals(batch["row_id"].cast(pl.Int64)):
        raise GatewayError(f"{where}: the answer's first column is not the batch's row_id in order")
    return out


def serve_2024(predict: Callable, test: Path, lags: Path, out: Path = Path(SUBMISSIONS[0])) -> Path:
    """Serve test folder `test` with `lags` through `predict(test, lags)` and write the answers to `out`."""
    import polars as pl

    test_dates, lag_dates = dates(Path(test)), dict(dates(Path(lags)))
    if test_dates[0][0] != 0:
        raise GatewayError(f"{test}: its first date_id is {test_dates[0][0]}; the test dates are numbered from 0")
    answers, took, limit = [], [], FIRST_LIMIT_S
    for date, part in test_dates:
        if date not in lag_dates:
            raise GatewayError(f"{lags}: no date_id={date} partition; expected the lags of every test date")
        day, lag = read_date(part, date), read_date(lag_dates[date], date)
        for k, batch in enumerate(day.partition_by("time_id", maintain_order=True)):
            where = f"date_id {date}, time_id {batch['time_id'][0]}"
            t0 = time.perf_counter()
            answer = predict(batch, lag if k == 0 else None)
            took.append(time.perf_counter() - t0)
            if took[-1] > limit:
                raise GatewayError(f"{where}: predict took {took[-1]:.0f} s; the limit is {limit:.0f} s")
            answers.append(_answer(answer, batch, where))
            limit = LIMIT_S
    pl.concat(answers, how="vertical_relaxed").write_parquet(out)
    later = max(took[1:], default=0.0)
    print(
        f"stand-in gateway: {len(took)} batches of {len(test_dates)} dates answered -> {out}; the first in "
        f"{took[0]:.2f} s (limit {FIRST_LIMIT_S / 60:.0f} min), the slowest later one in {later:.3f} s "
        f"(limit {LIMIT_S:.0f} s)",
        flush=True,
    )
    return out


class Env2021:
    """The 2021 `janestreet` environment over `test` (an example_test.csv), one row a call."""

    def __init__(self, test: Path, out: Path = Path(SUBMISSIONS[1])):
        import pandas as pd

        if not test.is_file():
            raise GatewayError(f"{test}: no such file; expected the competition's example_test.csv")
        self.df, self.out = pd.read_csv(test).set_index("ts_id"), out
        self.pending, self.answers = None, []

    def iter_test(self) -> Iterator[tuple]:
        import pandas as pd

        if self.answers or self.pending is not None:
            raise GatewayError("iter_test() can only be called once")
        for i in range(len(self.df)):
            if self.pending is not None:
                raise GatewayError("You must call `predict()` successfully before you can continue with `iter_test()`")
            test_df = self.df.iloc[[i]]
            self.pending = pd.DataFrame({"action": [0]}, index=test_df.index)
            yield test_df, self.pending.copy()
        if self.pending is not None:
            raise GatewayError("You must call `predict()` successfully before you can continue with `iter_test()`")
        pd.concat(self.answers).to_csv(self.out, index_label="ts_id")
        print(f"stand-in janestreet: {len(self.answers)} rows answered -> {self.out}", flush=True)

    def predict(self, answer) -> None:
        if self.pending is None:
            raise GatewayError("predict() called without a row from iter_test() to answer")
        where = f"ts_id {self.pending.index[0]}"
        if list(answer.columns) != ["action"] or not answer.index.equals(self.pending.index):
            raise GatewayError(
                f"{where}: expected sample_prediction_df's frame (column action, the row's ts_id as index)"
            )
        if answer.action.iloc[0] not in (0, 1):
            raise GatewayError(f"{where}: action {answer.action.iloc[0]!r}; expected 0 or 1")
        self.answers.append(answer.astype({"action": "int64"}))
        self.pending = None
