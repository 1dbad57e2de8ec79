"""The value checks of the reader: a pyarrow batch -> x (n, F) float32 (NaN = missing) and its side
columns, every value checked against the schema rules (docs/ingest.md), order kept across batches
(and files): 2021 rows in date and ts_id order; 2024 rows in (date_id, time_id) order, each
symbol_id at most once per time step."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from jsmp.data import schema
from jsmp.data.schema import Layout
from jsmp.errors import UserError


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


def feature_limit_error(where: str, value, limit: float) -> UserError:
    """The one line for a feature value beyond ±`limit` at `where` (a file's row and column, a served row's)."""
    return UserError(f"{where}: got {value!s}, beyond the feature limit ±{limit:g} (real features are O(1..100), and one such "
                     f"value can turn a model into a constant); if such values are real, ingest with a larger --feature-limit "
                     f"(a model serves rows within the limit of the store it was trained on)")


def check_feature_limit(x: np.ndarray, names: list[str], limit: float, where) -> None:
    """Raise feature_limit_error at the first (row, then column) finite value of x (n, F) beyond ±`limit`
    (NaN and ±Inf pass: those are checked elsewhere); `where(i, column)` names row i."""
    bad = np.abs(x) > limit
    if bad.any() and (bad := bad & np.isfinite(x)).any():
        i, j = np.argwhere(bad)[0]
        raise feature_limit_error(where(int(i), names[j]), x[i, j], limit)


@dataclass
class Checker:
    """Per-batch value checks across batch boundaries (it keeps the last date, ts_id, time_id and
    the current time step's symbols seen); raises UserError at the first bad value, after which its
    state is partly updated: to check rows tentatively, check them with a copy (dataclasses.replace).

    `nan_values`: a float NaN (not a null) is NaN in features (Parquet); else it is an error (CSV,
    where every NaN spelling pandas reads is a null, and pyarrow reads only others such as `nan(1)`
    as NaN). In the other columns a null or NaN is always an error. `feature_limit`: a feature value
    beyond +-feature_limit is an error (schema.FEATURE_LIMIT).
    """

    last_date: int | None = None
    last_ts: int | None = None
    nan_values: bool = False
    feature_limit: float = schema.FEATURE_LIMIT
    last_time: int | None = None  # grouped layouts: the last (date, time_id) step ...
    step_symbols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ... and its symbols so far

    def __call__(self, batch: pa.RecordBatch, layout: Layout, where) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Arrays of a batch: x (n, F) float32 row-major (NaN where missing) and the side columns (n,)
        under their store names (`layout.rename`): integer columns (schema.INT_RANGES) int64, others
        float32, ts_id numbered on from the last one when the layout has none. `where(i, column)`
        names row i in messages."""
        n = batch.num_rows
        side = {layout.rename.get(c, c): self._side(batch.column(c), c, where) for c in layout.side}
        x = np.empty((n, len(layout.features)), dtype=np.float32)
        cols = [batch.column(c) for c in layout.features]
        with np.errstate(over="ignore"):  # beyond float32 range: Inf, an error below
            for j, col in enumerate(cols):
                x[:, j] = _numpy(col)
        if not (np.abs(x) <= self.feature_limit).all():  # null slots hold 0 as pyarrow writes them; NaN, Inf and beyond the limit are checked one by one
            self._features(x, cols, layout.features, where)
        for j, col in enumerate(cols):
            if col.null_count:
                x[_nulls(col), j] = np.nan
        self._order(side, n, where, layout)
        return x, side

    def _features(self, x: np.ndarray, cols: list[pa.Array], names: list[str], where) -> None:
        """Raise at the first (row, then column) ±Inf, value beyond ±feature_limit, or NaN unless
        `nan_values`, that is no null."""
        first = (len(x), 0)
        for j, col in enumerate(cols):
            bad = ~(np.abs(x[:, j]) <= self.feature_limit)
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
        if np.isinf(x[i, j]):
            raise UserError(f"{where(i, names[j])}: got {x[i, j]!s} (±Inf, or beyond float32 range); expected a finite number or an empty field for NaN")
        raise feature_limit_error(where(i, names[j]), x[i, j], self.feature_limit)

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

    def _order(self, side: dict[str, np.ndarray], n: int, where, layout: Layout) -> None:
        date = side["date"]
        if layout.group is not None:
            self._steps(date, side["time_id"], side[layout.group], where, layout)
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

    def _steps(self, date: np.ndarray, time: np.ndarray, symbol: np.ndarray, where, layout: Layout) -> None:
        """Grouped rows: (date, time_id) never decreases, and no symbol twice in one (date, time_id) step,
        also across batch boundaries; keeps the last step and its symbols."""
        d, t, g = layout.source_name("date"), layout.source_name("time_id"), layout.source_name(layout.group)
        first = self.last_time is None
        prev_d = np.r_[date[0] if first else self.last_date, date[:-1]]
        prev_t = np.r_[time[0] if first else self.last_time, time[:-1]]
        bad = np.flatnonzero((date < prev_d) | ((date == prev_d) & (time < prev_t)))
        if len(bad):
            i = int(bad[0])
            raise UserError(f"{where(i, d if date[i] < prev_d[i] else t)}: ({d}, {t}) = ({date[i]}, {time[i]}) after ({prev_d[i]}, {prev_t[i]}); "
                            f"expected rows in ({d}, {t}) order")
        new = (date != prev_d) | (time != prev_t)
        new[0] |= first
        step = np.cumsum(new)  # 0: the step the previous batch ended in
        carried = len(self.step_symbols) if not new[0] else 0
        steps = np.r_[np.zeros(carried, np.int64), step]
        symbols = np.r_[self.step_symbols[:carried], symbol]
        key = (steps << 32) | (symbols - np.iinfo(np.int32).min)  # symbols are int32 (checked): one int64 key per (step, symbol)
        order = np.argsort(key, kind="stable")  # a repeat sorts right after its first row
        repeat = order[1:][key[order[1:]] == key[order[:-1]]]
        if len(repeat):
            i = int(repeat.min()) - carried
            raise UserError(f"{where(i, g)}: {g} {symbol[i]} appears twice at ({d}, {t}) = ({date[i]}, {time[i]}); "
                            f"expected at most one row per {g} and time step")
        self.last_time = int(time[-1])
        self.step_symbols = symbols[steps == steps[-1]]
