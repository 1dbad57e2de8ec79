"""Serving a 2024-layout (grouped, regression) run one time step at a time, as the 2024 API hands
rows over (docs/inference.md): test frames read, lag lookup, and a member's predictions.

A time step's rows (one per active instrument) become exactly the inputs training fed
(jsmp.batches.datamodule): the store features in preprocess.json order, then its lag features
looked up in the last `lags_df` by (time_id, symbol_id); NaNs filled and windows laid out per
instrument by jsmp.inputs.state.OnlineState, as training filled and windowed them.
"""

from __future__ import annotations

import numpy as np
import torch

from jsmp.data.schema import SYMBOL_MAX
from jsmp.errors import UserError
from jsmp.inputs.columns import require_columns
from jsmp.inputs.lags import KeyIndex
from jsmp.inputs.state import OnlineState
from jsmp.predict.model import OpenRun
from jsmp.predict.online import Learner, OnlineConfig

KEYS = ["date_id", "time_id", "symbol_id"]  # a test row's keys (besides row_id, weight, is_scored)


def is_polars(df) -> bool:
    return type(df).__module__.startswith("polars")


def frame_matrix(df, names: list[str]) -> np.ndarray:
    """(n, len(names)) float32 of a pandas or polars frame's columns (nulls -> NaN)."""
    if not names:  # polars selects no rows with no columns (a run trained with data.lags=false)
        return np.empty((len(df), 0), np.float32)
    if is_polars(df):
        return df.select(names).to_numpy().astype(np.float32)
    return df[names].to_numpy(dtype=np.float32, na_value=np.nan)


def frame_column(df, name: str) -> np.ndarray:
    return np.asarray(df[name].to_numpy())


class FrameColumns:
    """The reading of `names` from test frames whose column layout rarely changes (the API hands each time step
    a frame of the same columns): `matrix(df)` is frame_matrix(df, names); `required` (names among them) are
    checked (require_columns, naming `what`) and the names located once per layout. A pandas frame whose
    columns all convert to float32 is converted whole (one block copy, ~10 us for a time step) and the names
    taken by position: the same values as frame_matrix, which selects a sub-frame (~0.5 ms)."""

    def __init__(self, names: list[str], required: list[str], what: str):
        self.names, self.required, self.what = names, required, what
        self.layout: tuple[bool, list] | None = None  # (polars, the columns) of the last frame

    def check(self, df) -> None:
        """A one-line UserError when `df` lacks a required column (checked when its layout is new)."""
        polars = is_polars(df)
        columns = list(df.columns) if polars else df.columns.tolist()
        if (polars, columns) != self.layout:
            require_columns(columns, self.required, self.what)
            self.layout, self.at = (polars, columns), [columns.index(c) for c in self.names]
            self.whole = not polars and len(set(columns)) == len(columns)

    def matrix(self, df) -> np.ndarray:
        """(n, len(names)) float32 of df's columns `names` (nulls -> NaN); check(df) first."""
        if self.whole:
            try:
                return df.to_numpy(dtype=np.float32, na_value=np.nan)[:, self.at]
            except (TypeError, ValueError):  # a column that is not numeric (text, say): select the names
                self.whole = False
        return frame_matrix(df, self.names)


def row_ids(df) -> np.ndarray:
    """(n,) the row_id column of a pandas or polars test_df, refused (one line) unless integers in int64 range, no nulls."""
    col = df["row_id"]
    ids = np.asarray(col.to_numpy())
    if ids.dtype.kind == "i" or (ids.dtype.kind == "u" and (ids.size == 0 or ids.max() <= np.iinfo(np.int64).max)):
        return ids
    nulls = int(col.null_count() if hasattr(col, "null_count") else col.isna().sum())
    got = f"{nulls} null(s)" if nulls else f"dtype {col.dtype}" + (" beyond int64 range" if ids.dtype.kind == "u" else "")
    raise UserError(f"test_df, column 'row_id': {got}; expected integers (int8 ... int64) in every row")


def check_symbols(symbol: np.ndarray, where) -> None:
    """One-line UserError at the first symbol_id (n,) int64 outside 0..SYMBOL_MAX, the range ingest
    accepts, so that serving looks lags up as training computed them; `where(i)` names row i."""
    bad = (symbol < 0) | (symbol > SYMBOL_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{where(i)}, column 'symbol_id': got {symbol[i]}; expected an integer from 0 to {SYMBOL_MAX}")


class LagTable:
    """The last `lags_df`: rows by (time_id, symbol_id) (jsmp.inputs.lags.KeyIndex), valid on the date it
    came with. Its date_id column, when it has one, must be that date (the date served, as the API labels lags)."""

    def __init__(self, date: int, lags_df, names: list[str]):
        columns = FrameColumns(names, ["time_id", "symbol_id", *names], "lags_df")
        columns.check(lags_df)
        if "date_id" in lags_df.columns and (other := frame_column(lags_df, "date_id") != date).any():
            raise UserError(f"lags_df: date_id {frame_column(lags_df, 'date_id')[other][0]} handed with test_df's date_id {date}; "
                            f"expected the lags of date_id {date} (the previous date's responders, labelled with the date served)")
        self.date, self.names = date, names
        symbol = np.asarray(frame_column(lags_df, "symbol_id"), np.int64)
        check_symbols(symbol, lambda i: f"lags_df row {i}")
        self.index, self.values = KeyIndex(frame_column(lags_df, "time_id"), symbol), columns.matrix(lags_df)

    def __call__(self, time_id: np.ndarray, symbol: np.ndarray, names: list[str]) -> np.ndarray:
        """(n, len(names)) float32 values of the rows (time_id, symbol) (n,), NaN where absent."""
        out = np.full((len(time_id), len(names)), np.nan, dtype=np.float32)
        at = self.index.rows(time_id, symbol)
        hit = at >= 0
        out[hit] = self.values[np.ix_(at[hit], [self.names.index(c) for c in names])]
        return out


class GroupedMember:
    """One grouped regression run's model with its inputs (preprocess.json), per-instrument state
    (OnlineState) and, with `online`, its Learner (on the spec's targets).

    `features`: the store features it reads from test_df; `lags`: its lag features, from lags_df."""

    def __init__(self, run: OpenRun, online: OnlineConfig | None = None):
        self.run_dir, self.checkpoint, self.prep, self.model = run.run_dir, run.checkpoint, run.spec, run.model
        self.window = self.prep.window_spec
        self.features, self.lags, self.targets = self.prep.store_features, self.prep.lag_features, self.prep.targets
        if len(self.targets) != getattr(self.model, "n_targets", len(self.targets)):
            raise UserError(f"{self.run_dir / 'preprocess.json'}: {len(self.targets)} targets but the model has "
                            f"{self.model.n_targets} outputs")
        self.learner = None if online is None else Learner(self.model, self.targets, online, self.prep.sample_weight)
        self.state = OnlineState(self.prep)

    def reset(self) -> None:
        self.state.reset()

    @property
    def name(self) -> str:
        return self.run_dir.name

    def predict(self, date: int, time_id: np.ndarray, symbol: np.ndarray, x: np.ndarray, lags: LagTable | None,
                weight: np.ndarray) -> np.ndarray:
        """(n,) float32 predictions of target 0 for one time step's rows: raw store features x (n, F)
        in this member's order; lag features from `lags` (None: all missing)."""
        lag = lags(time_id, symbol, self.lags) if lags is not None else np.full((len(x), len(self.lags)), np.nan, np.float32)
        inputs = self.state.inputs(date, symbol, np.concatenate([x, lag], axis=1))
        if self.learner is not None:
            self.learner.keep(date, time_id, symbol, inputs, weight)
        with torch.inference_mode():
            return self.model.predict_output({k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
