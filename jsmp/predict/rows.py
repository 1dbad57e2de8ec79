"""The RowPredictor: 2021-layout trade models (one global row order) serving rows in the
example_test.csv layout, one at a time (`predict_row`) or all at once (`predict_batch(date, x)`),
with identical actions; a run, or an ensemble averaged in probability (docs/inference.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import torch

from jsmp.data.checks import check_feature_limit
from jsmp.data.reader import INT_COLUMNS, Checker, Layout
from jsmp.errors import UserError
from jsmp.inputs.columns import require_columns
from jsmp.inputs.fill import fill_rows
from jsmp.inputs.spec import PREPROCESS, InputSpec
from jsmp.inputs.state import OnlineState
from jsmp.inputs.windows import gather_windows
from jsmp.predict.model import OpenRun
from jsmp.predict.online import OnlineConfig
from jsmp.predict.predictor import Predictor, mean_proba

# target rows per forward pass in batch mode (cache-sized: bigger passes are slower on CPU)
BATCH_ROWS, WINDOW_BATCH_ROWS = 1024, 256
# the non-feature columns of a test row, checked as the reader checks them (date and ts_id also for order)
SIDE = ["date", "weight", "ts_id"]


def missing_columns(have, features: list[str], where: str) -> None:
    """Raise when `have` (column names) lacks `date`, `weight`, `ts_id` or a feature the model was trained on."""
    require_columns(have, [*SIDE, *features], where, f"the model needs (it was trained on {len(features)} features)")


def actions(proba: np.ndarray) -> np.ndarray:
    """(n,) int8: 1 where the trade probability is > 0.5 (the models' rule, as in validation)."""
    return (np.asarray(proba) > 0.5).astype(np.int8)


class Member:
    """One run's model with its inputs (preprocess.json) and its online state (NaN fill, window:
    jsmp.inputs.state.OnlineState's one-instrument case).

    `cols`: where its features sit in the Predictor's `features` (None: all of them, in order).
    """

    def __init__(self, run: OpenRun):
        self.run_dir, self.checkpoint, self.prep, self.model = run.run_dir, run.checkpoint, run.spec, run.model
        self.window = self.prep.window_spec
        if self.window is not None and not getattr(self.model, "sequence", False):
            raise UserError(f"{self.run_dir}: {PREPROCESS} has a window but {type(self.model).__name__} is not a sequence model")
        self.cols: np.ndarray | None = None
        self.state = OnlineState(self.prep)
        self.row = np.empty(len(self.prep.features), dtype=np.float32)  # the current row, filled in place
        if self.window is None:
            self.inputs = {"x": torch.from_numpy(self.row)[None]}
        else:
            self.inputs = {"x": torch.from_numpy(self.state.win)[None], "mask": torch.from_numpy(self.state.mask)[None]}

    def select(self, features: list[str]) -> None:
        """Take this member's features from rows laid out as `features` (a superset)."""
        cols = np.asarray([features.index(f) for f in self.prep.features])
        self.cols = None if np.array_equal(cols, np.arange(len(features))) else cols

    def reset(self) -> None:
        self.state.reset()

    def proba_row(self, x: np.ndarray, new_day: bool) -> np.float32:
        """The trade probability of one row of raw features x (NaNs allowed), in the Predictor's layout."""
        np.copyto(self.row, x if self.cols is None else x[self.cols])
        self.state.row(self.row, new_day)
        with torch.inference_mode():
            return np.float32(self.model.predict_proba(self.inputs)[0].item())

    def proba_batch(self, starts: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(n,) float32 trade probabilities of consecutive rows x (n, F) of this member's features
        (filled in place), `starts` the rows where a day begins."""
        filled = fill_rows(x, starts, self.prep)
        out = np.empty(len(filled), dtype=np.float32)
        step = BATCH_ROWS if self.window is None else WINDOW_BATCH_ROWS
        with torch.inference_mode():
            for a in range(0, len(filled), step):
                rows = np.arange(a, min(a + step, len(filled)))
                if self.window is None:
                    batch = {"x": torch.from_numpy(filled[rows])}
                else:
                    day_start = starts[np.searchsorted(starts, rows, side="right") - 1]
                    xw, mask = gather_windows(filled.__getitem__, rows, self.window, day_start)
                    batch = {"x": torch.from_numpy(xw), "mask": torch.from_numpy(mask)}
                out[rows] = self.model.predict_proba(batch).numpy()
        return out

    @property
    def name(self) -> str:
        """The run dir's name (a multirun job's `N[_overrides]`, `fold-k`, or a timestamp)."""
        return self.run_dir.name


class RowPredictor(Predictor):
    """Actions for rows in the example_test.csv layout, one at a time (`predict_row`) or all
    at once (`predict_batch`); both give identical actions.

    With several runs the predictor is an ensemble: each member reads its own features, NaN fill
    and window (its preprocess.json; members may differ in model class, fill or window), and the
    action is the mean of their trade probabilities > 0.5.

    State carried between rows: the day (a new `date` starts a day), each member's
    forward-fill's last values and, for sequence models, last W filled rows, and `predict_row`'s
    last date and ts_id (for its order checks). `reset()` forgets it all.
    `features`: the members' features (the first member's, then any others'); `columns` the
    layout `predict_row` expects of an array: date, weight, features, ts_id.
    """

    layout = "the 2021 layout (one global row order), trade decisions"
    averaged = "averaged in probability"
    calls = "predict_row(row) per row, or predict_batch(date, x) for consecutive rows"

    @classmethod
    def serves(cls, spec: InputSpec) -> bool:
        return spec.group is None and spec.task == "action"

    def member(self, run: OpenRun, online: OnlineConfig | None) -> Member:
        if online is not None:
            raise UserError(f"{run.run_dir}: online learning is for runs trained on the 2024 layout (per instrument); "
                            f"this one serves 2021-layout trade decisions")
        return Member(run)

    def __init__(self, run, online: OnlineConfig | None = None, threads: int | None = 1):
        super().__init__(run, online, threads)
        self.features = list(dict.fromkeys(f for m in self.members for f in m.prep.features))
        for m in self.members:
            m.select(self.features)
        self.columns = ["date", "weight", *self.features, "ts_id"]
        self.reset()

    def reset(self) -> None:
        """Forget every row seen (the next row starts a day and an empty window)."""
        self.day: float | None = None
        for m in self.members:
            m.reset()
        self.checker = Checker()  # predict_row's order checks
        self.rows = 0  # rows predict_row accepted

    # -- one row
    def predict_row(self, row) -> int:
        """The action (0/1) for one row: a dict or pandas Series/1-row DataFrame with (at
        least: other keys are ignored) the `columns` names, or an array in `columns` order.
        NaN (or None) marks a missing feature value.

        The row is checked as the reader checks a file's rows (its `Checker`, same
        messages): date, weight and ts_id present and finite, date and ts_id integers, no
        ±Inf feature nor one beyond ±feature_limit, date not below and ts_id above the previous row's (since `reset()`).
        A bad row raises UserError naming it (`row N`, counted from `reset()`) and changes no state.
        """
        values = self._values(row)
        with np.errstate(over="ignore"):  # beyond float32 range -> inf, which the check reports
            x = values[2:-1].astype(np.float32)
        check_feature_limit(x[None], self.features, self.feature_limit, lambda i, c: f"row {self.rows + 1}, column {c!r}")
        date = self._check(values, x)
        self.rows += 1
        return self.step(date, x)

    def step(self, date: float, x: np.ndarray) -> int:
        """The action for one row given its date and raw features x (F,) in `features` order
        (NaNs allowed), unchecked: for rows the reader (or `predict_row`) has checked."""
        new_day = date != self.day
        self.day = date
        return int(mean_proba([m.proba_row(x, new_day) for m in self.members]) > 0.5)

    def _values(self, row) -> np.ndarray:
        """The row's values in `columns` order, float64 (NaN for None)."""
        if isinstance(row, Mapping):
            try:
                values = [row[c] for c in self.columns]
            except KeyError:
                missing_columns(row.keys(), self.features, "row")
                raise
        elif hasattr(row, "columns"):  # a 1-row pandas DataFrame, as the Kaggle API hands over
            missing_columns(row.columns, self.features, "row")
            if len(row) != 1:
                raise UserError(f"row: expected a 1-row DataFrame, got {len(row)} rows")
            values = row[self.columns].to_numpy()[0]
        elif hasattr(row, "index") and hasattr(row, "to_numpy"):  # a pandas Series
            missing_columns(row.index, self.features, "row")
            values = row[self.columns].to_numpy()
        else:
            values = row
        try:
            a = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError):
            for c, v in zip(self.columns, values):
                try:
                    np.asarray(v, dtype=np.float64).item()
                except (ValueError, TypeError):
                    want = "an integer" if c in INT_COLUMNS else "a number"
                    raise UserError(f"row {self.rows + 1}, column {c!r}: got {v!r}, expected {want}") from None
            a = np.empty(0)  # no single bad value: report the shape below
        if a.shape != (len(self.columns),):
            raise UserError(f"row: expected {len(self.columns)} values (date, weight, {len(self.features)} features, ts_id), "
                            f"got shape {a.shape}")
        return a

    def _check(self, values: np.ndarray, x: np.ndarray) -> int:
        """The row's date, once the reader's Checker passed its date, weight, ts_id and any ±Inf
        feature (the only feature values it refuses) as a 1-row batch; a NaN (or None) there
        is a missing value, as an empty field is in a file."""
        bad = [int(j) for j in np.flatnonzero(np.isinf(x))]
        names = [*SIDE, *(self.features[j] for j in bad)]
        column = pa.array(np.r_[values[[0, 1, -1]], x[bad]], pa.float64(), from_pandas=True)
        batch = pa.RecordBatch.from_arrays([column.slice(k, 1) for k in range(len(names))], names=names)
        checker = dataclasses.replace(self.checker)  # kept only when the row passes
        _, side = checker(batch, Layout(names, names[len(SIDE):], SIDE, []), lambda i, c: f"row {self.rows + 1}, column {c!r}")
        self.checker = checker
        return int(side["date"][0])

    # -- all rows at once
    def member_probas(self, date: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
        """Each member's (n,) float32 trade probabilities for consecutive rows: date (n,), raw
        features x (n, F) in `features` order (filled in place when one member reads them all); a
        feature beyond ±feature_limit is a UserError naming its row (from 1) and column."""
        check_feature_limit(x, self.features, self.feature_limit, lambda i, c: f"row {i + 1}, column {c!r}")
        date = np.asarray(date)
        starts = np.flatnonzero(np.r_[True, date[1:] != date[:-1]])
        alone = len(self.members) == 1
        return [m.proba_batch(starts, x[:, m.cols] if m.cols is not None else x if alone else x.copy())
                for m in self.members]

    def predict_proba_batch(self, date: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(n,) float32 trade probabilities (the members' mean) of consecutive rows (as member_probas)."""
        return mean_proba(self.member_probas(date, x))

    def predict_batch(self, date, x=None) -> np.ndarray:
        """Actions (n,) int8 for consecutive rows: date (n,), raw features x (n, F) (as member_probas)."""
        if x is None or hasattr(date, "columns"):  # the 2024 call: predict_batch(test_df, lags_df)
            raise self.other_layout("predict_batch(test_df, lags_df)")
        return actions(self.predict_proba_batch(date, x))
