"""Replay a 2024-layout test source the way the competition's evaluation API served it: one call of
`predictor.predict_batch(test_df, lags_df)` per (date_id, time_id), the previous date's responders
(`lags_df`) at each date's first time_id, into `row_id,<target>` lines (docs/inference.md), the
target being the run's first data.targets entry (`row_id,responder_6` for every preset).

The source is a Parquet file or hive directory of the train (or test) layout (`date_id, time_id,
symbol_id, weight, feature_NN`, optionally `row_id`, `is_scored`, `responder_N`), or a grouped
store; it is read date by date (memory: one date, plus row_id and is_scored of all rows, checked
before any row is served). Lags come from a lags file (the lags.parquet
layout) or, when the source holds responders, from the source itself: date D's are date D - 1's
responders (as jsmp.batches.lags defines them), none when D - 1 is not in the source. A lags
file is cross-checked against a labelled source (LagsFile.check): a file carrying each date's own
responders, a leak, is refused.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from jsmp.data.parquetfile import parquet_file
from jsmp.data.reader import Layout, Reader
from jsmp.data.schema import (
    FEATURE_LIMIT,
    RTMDF_GROUP,
    RTMDF_KEYS,
    RTMDF_RENAME,
    RTMDF_TIME,
    is_responder,
    lag_name,
    plan_lags,
    responder_of,
    responders,
)
from jsmp.errors import UserError
from jsmp.inputs.columns import require_columns
from jsmp.inputs.lags import is_lag_date, lag_key
from jsmp.metrics import r2_score
from jsmp.predict.submission import submission
from jsmp.store.store import Store, is_store

KEYS = list(RTMDF_KEYS)  # date_id, time_id, symbol_id
_EXTRA = (("row_id", "integers (int8 ... int64)", pa.types.is_integer),  # read beside the reader's columns
          ("is_scored", "booleans (true/false)", pa.types.is_boolean))


def _missing(have, needed: list[str], where: str) -> None:
    require_columns(have, needed, where, hint="expected the 2024 test layout (date_id, time_id, symbol_id, weight and the "
                                              "features the run was trained on)")


@dataclass
class Day:
    """One date of the source: keys (n,) int32, weight (n,) float32, x (n, F) float32 (the model's raw
    features), row_id (n,) int64, is_scored (n,) bool, and its responder_N columns (n,) float32 (maybe none)."""

    date: int
    time_id: np.ndarray
    symbol_id: np.ndarray
    weight: np.ndarray
    x: np.ndarray
    row_id: np.ndarray
    is_scored: np.ndarray
    responders: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.time_id)


def _take(parts: list[dict[str, np.ndarray]], a: int, b: int | None) -> dict[str, np.ndarray]:
    """Rows a:b of the concatenated column dicts `parts`."""
    return {k: np.concatenate([p[k] for p in parts])[a:b] for k in parts[0]}


def _locate(i: int, files: list[Path], starts: np.ndarray) -> str:
    """`FILE row R` (1-based) of row `i` of the source, `starts` (len(files) + 1,) the files' first rows."""
    k = int(np.searchsorted(starts, i, side="right")) - 1
    return f"{files[k]} row {i - starts[k] + 1}"


def _row_columns(files: list[Path], pfs: list, starts: np.ndarray) -> dict[str, np.ndarray]:
    """row_id (n,) int64 and is_scored (n,) bool of a Parquet source's rows in read order (`pfs` the
    files opened, `starts` their first rows), each left out when no file has it; checked before any
    row is served (one-line UserError naming the file, row and column): each in every file or in none,
    no nulls, row_id an integer type (values in int64 range) and unique across all files, is_scored a
    boolean type. Memory: 9 bytes per row."""
    out: dict[str, np.ndarray] = {}
    for name, want, ok in _EXTRA:
        have = [f for f, pf in zip(files, pfs) if name in pf.schema_arrow.names]
        if not have:
            continue
        if len(have) < len(files):
            lacking = next(f for f, pf in zip(files, pfs) if name not in pf.schema_arrow.names)
            raise UserError(f"{lacking}: no {name!r} column, but {have[0]} has one; expected {name} in every part file or in none")
        parts = []
        for f, pf in zip(files, pfs):
            if not ok(t := pf.schema_arrow.field(name).type):
                raise UserError(f"{f}, column {name!r}: has type {t}; expected {want}")
            col = pf.read(columns=[name]).column(name).combine_chunks()
            if col.null_count:
                at = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                raise UserError(f"{f} row {at + 1}, column {name!r}: empty (null); expected {want} in every row")
            values = col.to_numpy(zero_copy_only=False)
            if values.dtype == np.uint64 and (big := np.flatnonzero(values > np.iinfo(np.int64).max)).size:
                raise UserError(f"{f} row {big[0] + 1}, column {name!r}: {values[big[0]]} is beyond int64 range; expected {want}")
            parts.append(values.astype(np.int64 if name == "row_id" else bool))
        out[name] = np.concatenate(parts)
    if "row_id" in out and not (np.diff(ids := out["row_id"]) > 0).all():  # increasing: unique without a sort
        order = np.argsort(ids, kind="stable")
        if (twice := np.flatnonzero(ids[order][1:] == ids[order][:-1])).size:
            again = int(order[twice + 1].min())  # the first row read that repeats an earlier one
            first = int(order[np.searchsorted(ids[order], ids[again])])
            raise UserError(f"{_locate(again, files, starts)}, column 'row_id': {ids[again]} appears again (first at "
                            f"{_locate(first, files, starts)}); expected a unique row_id in every row of the source")
    return out


def _day(date: int, side: dict[str, np.ndarray], x: np.ndarray, extra: dict[str, np.ndarray]) -> Day:
    row_id = extra.get("row_id", side["ts_id"])
    scored = extra.get("is_scored", np.ones(len(x), dtype=bool))
    return Day(date, side["time_id"].astype(np.int32), side[RTMDF_GROUP].astype(np.int32), side["weight"].astype(np.float32),
               x, row_id, scored, {c: v for c, v in side.items() if is_responder(c)})


def _by_date(blocks: Iterator[tuple[np.ndarray, dict, dict]]) -> Iterator[tuple[int, dict[str, np.ndarray], np.ndarray, dict]]:
    """Blocks of consecutive rows (x, side, extra) regrouped into whole dates: (date, side, x, extra)."""
    parts: list[tuple[np.ndarray, dict, dict]] = []

    def whole() -> tuple[int, dict, np.ndarray, dict]:
        side, extra = (_take([p[i] for p in parts], 0, None) for i in (1, 2))
        return int(side["date"][0]), side, np.concatenate([p[0] for p in parts]), extra

    for x, side, extra in blocks:
        date = side["date"]
        cuts = [0, *(np.flatnonzero(date[1:] != date[:-1]) + 1).tolist(), len(date)]
        for a, b in zip(cuts[:-1], cuts[1:]):
            if parts and parts[0][1]["date"][0] != date[a]:
                yield whole()
                parts = []
            parts.append((x[a:b], {k: v[a:b] for k, v in side.items()}, {k: v[a:b] for k, v in extra.items()}))
    if parts:
        yield whole()


def _parquet_days(path: Path, features: list[str], feature_limit: float) -> tuple[int, Iterator[Day]]:
    reader = Reader(path)
    if reader.csv:
        raise UserError(f"{path}: a {reader.source.kind} file; expected a 2024-layout Parquet file or directory (test.parquet), "
                        f"or a grouped store")

    def select(columns: list[str], where: str) -> Layout:
        _missing(columns, [*KEYS, "weight", *features], where)
        side = [*KEYS, "weight", *(c for c in columns if is_responder(c))]
        dtypes = {"date": "int32", "time_id": "int32", RTMDF_GROUP: "int32", "ts_id": "int64"}
        return Layout(columns, list(features), side, [c for c in columns if c not in side and c not in features],
                      dict(RTMDF_RENAME), dtypes, RTMDF_GROUP, list(RTMDF_TIME))

    layout = reader.layout(select)
    files = reader.source.files
    pfs = [parquet_file(f) for f in files]
    starts = np.cumsum([0, *(pf.metadata.num_rows for pf in pfs)])
    extra = _row_columns(files, pfs, starts)

    def blocks() -> Iterator[tuple[np.ndarray, dict, dict]]:
        at = 0
        for x, side, _ in reader.blocks(layout, feature_limit=feature_limit):
            yield x, side, {k: v[at : at + len(x)] for k, v in extra.items()}
            at += len(x)

    return int(starts[-1]), (_day(d, side, x, ex) for d, side, x, ex in _by_date(blocks()))


def _store_days(path: Path, features: list[str]) -> tuple[int, Iterator[Day]]:
    store = Store(path)
    if store.group is None or not store.has("time_id"):
        raise UserError(f"{path}: a store of the 2021 layout; expected a grouped (2024-layout) store, or a test.parquet")
    _missing([*store.features, *store.side_names, "date_id"], [*KEYS, "weight", *features], str(path))
    cols = [store.features.index(f) for f in features]
    names = ["date", "time_id", store.group, "weight", "ts_id", *(c for c in store.side_names if is_responder(c))]

    def days() -> Iterator[Day]:
        for d in range(store.n_days):
            a, b = int(store.day_offsets[d]), int(store.day_offsets[d + 1])
            x = np.concatenate([blk[:, cols] for blk in store.iter_blocks([(a, b)])])
            side = {c: np.asarray(store.side(c)[a:b]) for c in names}
            side[RTMDF_GROUP] = side.pop(store.group)
            yield _day(int(store.days[d]), side, x, {})

    return store.n_rows, days()


def read_days(path: Path, features: list[str], feature_limit: float = FEATURE_LIMIT) -> tuple[int, Iterator[Day]]:
    """(number of rows, the source's dates one by one) of a test Parquet file/dir or grouped store;
    x holds `features` in that order. Rows are checked by jsmp.data.reader (a bad value, or a feature
    beyond ±`feature_limit`, the run's: one-line UserError naming the file, row and column), a Parquet
    source's row_id and is_scored now (_row_columns)."""
    if path.is_dir() and is_store(path):
        return _store_days(path, features)
    return _parquet_days(path, features, feature_limit)


def read_lags(path: Path) -> Iterator[tuple[int, pd.DataFrame]]:
    """(date_id, its lags frame: date_id, time_id, symbol_id, responder_N_lag_1) per date of a lags file
    (its header checked now, its rows as they are read)."""
    reader = Reader(path)
    layout = reader.layout(plan_lags)
    blocks = ((x, side, {}) for x, side, _ in reader.blocks(layout))
    return ((d, _lags_frame(d, side["time_id"], side[RTMDF_GROUP], layout.features, x.T)) for d, side, x, _ in _by_date(blocks))


def _lags_frame(date: int, time_id: np.ndarray, symbol_id: np.ndarray, names: list[str], columns) -> pd.DataFrame:
    n = len(time_id)
    return pd.DataFrame({"date_id": np.full(n, date, dtype=np.int32), "time_id": np.asarray(time_id, np.int32),
                         "symbol_id": np.asarray(symbol_id, np.int32),
                         **{c: np.asarray(v, np.float32) for c, v in zip(names, columns)}})


def derived_lags(prev: Day | None, date: int) -> pd.DataFrame | None:
    """Date `date`'s lags from the previous date of the source: its responders when it is date - 1
    (jsmp.inputs.lags.is_lag_date)."""
    if prev is None or not is_lag_date(prev.date, date) or not prev.responders:
        return None
    names = responders(prev.responders)
    return _lags_frame(date, prev.time_id, prev.symbol_id, [lag_name(c) for c in names], [prev.responders[c] for c in names])


class LagsFile:
    """The lags of each date from a lags file read once in date order (`at(date)`: None when it has none)."""

    def __init__(self, path: Path):
        self.path, self.it, self.next = path, read_lags(path), None

    def at(self, date: int) -> pd.DataFrame | None:
        while self.next is None or self.next[0] < date:
            self.next = next(self.it, (float("inf"), None))
        return self.next[1] if self.next[0] == date else None

    def check(self, got: pd.DataFrame, want: pd.DataFrame) -> None:
        """Refuse date D's lags `got` (from this file) unless they are `want`, derived_lags of the source's
        labelled date D - 1: the same (time_id, symbol_id) rows, equal float32 values in the responder_N_lag_1
        columns both have (the source's responders are finite: a NaN lag differs). Lags carrying a date's own
        responders (a leak) fail here."""
        date = int(want.date_id.iloc[0])
        where = f"--lags {self.path}: date_id {date}"
        rule = (f"expected the responders of the date before (date_id {date - 1} of --data), labelled date_id {date}; "
                f"lags holding a date's own responders would leak its answers")
        g, w = (lag_key(df.time_id.to_numpy(), df.symbol_id.to_numpy()) for df in (got, want))
        both, gi, wi = np.intersect1d(g, w, assume_unique=True, return_indices=True)  # the rows both have, in key order
        for c in [c for c in want.columns[len(KEYS):] if c in got.columns]:
            a, b = got[c].to_numpy(np.float32)[gi], want[c].to_numpy(np.float32)[wi]
            if (bad := np.flatnonzero(a != b)).size:
                i = gi[bad[0]]
                raise UserError(f"{where}, column {c!r}: {a[bad[0]]!s} at (time_id, symbol_id) = ({got.time_id.iloc[i]}, "
                                f"{got.symbol_id.iloc[i]}), but --data's {responder_of(c)} there on date_id "
                                f"{date - 1} is {b[bad[0]]!s}; {rule}")
        for df, keys, other, what in ((got, g, w, f"is not in --data's date_id {date - 1}"), (want, w, g, "is missing")):
            if len(both) < len(keys) and (odd := np.flatnonzero(~np.isin(keys, other))).size:
                i = odd[0]
                raise UserError(f"{where}: the row (time_id, symbol_id) = ({df.time_id.iloc[i]}, {df.symbol_id.iloc[i]}) "
                                f"{what}; {rule}")


def frame_of(day: Day, a: int, b: int, features: list[str]) -> pd.DataFrame:
    """Rows a:b of `day` as the API hands them: row_id, date_id, time_id, symbol_id, weight, is_scored, features."""
    cols = {"row_id": day.row_id[a:b], "date_id": np.full(b - a, day.date, dtype=np.int32), "time_id": day.time_id[a:b],
            "symbol_id": day.symbol_id[a:b], "weight": day.weight[a:b], "is_scored": day.is_scored[a:b]}
    return pd.concat([pd.DataFrame(cols), pd.DataFrame(day.x[a:b], columns=features)], axis=1)


@dataclass
class Replayed:
    """What a replay did: rows, batches (time_ids), dates, per-batch latency (s) of all batches and of
    each date's first one (lags handed over: the day's fine-tune with online learning), and the R² of
    the predicted `target` over scored rows (None without that column in the source)."""

    rows: int
    dates: int
    latency: np.ndarray
    cpu: np.ndarray  # the CPU time this thread spent in each call: the latency without waits for a core
    first_latency: np.ndarray
    r2: float | None
    scored: int
    online: bool = False
    target: str = "responder_6"

    def summary(self) -> str:
        p50, p99 = np.percentile(self.latency, [50, 99]) * 1e3
        first = self.first_latency * 1e3
        r2 = f"; r2 {self.r2:.4f} over {self.scored:,} scored rows" if self.r2 is not None else f"; no {self.target} in the source: no r2"
        return (f"{self.rows:,} rows in {len(self.latency):,} batches (time_ids) of {self.dates} dates: latency per batch "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {self.latency.max() * 1e3:.2f} ms (CPU time p99 "
                f"{np.percentile(self.cpu, 99) * 1e3:.2f} ms); a date's first batch "
                f"(lags{', fine-tune' if self.online else ''}) mean {first.mean():.2f} ms, max {first.max():.2f} ms{r2}")


def replay(predictor, source: tuple[int, Iterator[Day]], out: Path, features: list[str], lags: LagsFile | None = None,
           online: bool = False, on_step: Callable[[], object] | None = None) -> Replayed:
    """Replay `source` (read_days(data, features): `features` the model's raw features) through
    `predictor.predict_batch` per time_id into submission `out` (written atomically: nothing there on
    an error). Lags from `lags` (LagsFile, checked against the source's responders when it has them), else
    derived from the source's responders when it has them. The submission's header is `row_id,<predictor.target>`
    and the R² is computed against the source's column of that name. With `online`, a date after the first without lags is an error (nothing to learn from).
    `on_step()`, if given, is called after each time step is served (jsmp eval keeps the members' outputs)."""
    total, days = source
    latency, cpu, first, labels = [], [], [], []
    prev, n_dates, rows, clock = None, 0, 0, time.perf_counter
    target = predictor.target
    with submission(out, f"row_id,{target}\n") as f, tqdm(total=total, unit="row", unit_scale=True, desc="replaying",
                                           disable=None, file=sys.stderr) as bar:
        for day in days:
            derived = derived_lags(prev, day.date)
            lags_df = lags.at(day.date) if lags is not None else derived
            if lags is not None and lags_df is not None and derived is not None:
                lags.check(lags_df, derived)
            if online and lags_df is None and n_dates:
                raise UserError(f"--online-learning: no answers for date {day.date - 1} before date {day.date}: "
                                f"give --lags, or a source with responder columns")
            cuts = [0, *np.flatnonzero(day.time_id[1:] != day.time_id[:-1]) + 1, len(day)]
            for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
                test_df = frame_of(day, a, b, features)
                t0, c0 = clock(), time.thread_time()
                pred = predictor.predict_batch(test_df, lags_df if k == 0 else None)
                latency.append(clock() - t0)
                cpu.append(time.thread_time() - c0)
                if on_step is not None:
                    on_step()
                if k == 0:
                    first.append(latency[-1])
                row_id, value = np.asarray(pred["row_id"]), np.asarray(pred[target], dtype=np.float64)
                if len(row_id) != b - a or not np.array_equal(row_id, day.row_id[a:b]):
                    raise RuntimeError(f"predict_batch returned {len(row_id)} rows for the {b - a} rows of "
                                       f"(date_id, time_id) = ({day.date}, {day.time_id[a]}), or other row_ids")
                f.write("".join(f"{r},{v}\n" for r, v in zip(row_id.tolist(), value.tolist())))
                if target in day.responders:
                    s = day.is_scored[a:b]
                    labels.append((day.responders[target][a:b][s], value[s], day.weight[a:b][s]))
                bar.update(b - a)
                rows += b - a
            prev, n_dates = day, n_dates + 1
    y, pred, w = (np.concatenate(c) for c in zip(*labels)) if labels else (None, None, None)
    return Replayed(rows, n_dates, np.asarray(latency), np.asarray(cpu), np.asarray(first), None if y is None else r2_score(y, pred, w),
                    0 if y is None else len(y), online, target)
