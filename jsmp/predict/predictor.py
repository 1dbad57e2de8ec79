"""The Predictor: a run's model, or an ensemble of several runs' models (averaged in probability),
serving rows in the example_test.csv layout, one at a time (as the competition's scoring API hands
them over) or all at once, with identical actions (docs/inference.md). A run trained on the 2024
layout (grouped, regression) is served the 2024 way instead: one time step per call,
`predict_batch(test_df, lags_df)` (jsmp.predict.grouped), optionally learning online
(jsmp.predict.online).

From Python, e.g. in a notebook loop over the Kaggle API's `iter_test()`::

    predictor = Predictor("logs/train/runs/2021-02-22_10-00-00")   # or several runs, or a multirun dir
    for test_df, sample_prediction_df in env.iter_test():
        sample_prediction_df.action = predictor.predict_row(test_df)
        env.predict(sample_prediction_df)

and for a 2024 run, in the 2024 API's `predict(test, lags)`::

    predictor = Predictor("logs/train/runs/2024-11-01_10-00-00", online=OnlineConfig())
    def predict(test, lags):
        return predictor.predict_batch(test, lags)      # row_id, <the run's first target> (polars in, polars out)
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch
from omegaconf import OmegaConf

from jsmp.batches.inputs import PREPROCESS, InputSpec, OnlineFill, fill_rows
from jsmp.batches.windows import gather_windows
from jsmp.data.checks import check_feature_limit
from jsmp.data.reader import INT_COLUMNS, Checker, Layout
from jsmp.errors import UserError
from jsmp.predict.grouped import (
    KEYS,
    GroupedMember,
    LagTable,
    check_symbols,
    frame_column,
    frame_matrix,
    require_columns,
    row_ids,
)
from jsmp.predict.model import find_checkpoint, load_model, member_runs
from jsmp.predict.online import OnlineConfig

# target rows per forward pass in batch mode (cache-sized: bigger passes are slower on CPU)
BATCH_ROWS, WINDOW_BATCH_ROWS = 1024, 256
# the non-feature columns of a test row, checked as the reader checks them (date and ts_id also for order)
SIDE = ["date", "weight", "ts_id"]


def missing_columns(have, features: list[str], where: str) -> None:
    """Raise when `have` (column names) lacks `date`, `weight`, `ts_id` or a feature the model was trained on."""
    have = set(have)
    missing = [c for c in [*SIDE, *features] if c not in have]
    if missing:
        shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        raise UserError(f"{where}: missing column(s) the model needs (it was trained on {len(features)} features): {shown}")


def actions(proba: np.ndarray) -> np.ndarray:
    """(n,) int8: 1 where the trade probability is > 0.5 (the models' rule, as in validation)."""
    return (np.asarray(proba) > 0.5).astype(np.int8)


def mean_proba(probs: Sequence) -> np.ndarray:
    """The members' trade probabilities averaged, in float32 and in member order: the same
    arithmetic for one row's scalars as for a batch's (n,) arrays, so both give the same actions."""
    return functools.reduce(np.add, probs) / np.float32(len(probs))


def open_member(run: str | os.PathLike, online: OnlineConfig | None = None) -> Member | GroupedMember:
    """The run's model and inputs: a GroupedMember for a 2024-layout regression run (preprocess.json
    `group`), else a Member (2021 layout, trade decisions); a run that is neither is refused."""
    run_dir, checkpoint = find_checkpoint(run)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise UserError(f"{cfg_path}: not found; expected the run dir that train.py wrote around the checkpoint")
    prep = InputSpec.load(run_dir / PREPROCESS)
    cfg = OmegaConf.load(cfg_path)
    model = load_model(checkpoint, cfg.model._target_)
    task = model.hparams.get("task", "action")
    if prep.group is not None and task == "regression":
        return GroupedMember(run_dir, checkpoint, prep, model, list(OmegaConf.select(cfg, "data.targets") or ["responder_6"]),
                             online)
    if prep.group is not None or task != "action":
        what = f"per instrument ({prep.group}) for data.task={task}" if prep.group is not None else f"for data.task={task}"
        raise UserError(f"{run_dir}: trained {what}; the predictor serves 2021-layout trade models row by row and "
                        f"2024-layout (per instrument) regression models per time step")
    if online is not None:
        raise UserError(f"{run_dir}: online learning is for runs trained on the 2024 layout (per instrument); "
                        f"this one serves 2021-layout trade decisions")
    return Member(run_dir, checkpoint, prep, model)


class Member:
    """One run's model with its inputs (preprocess.json) and its online state (NaN fill, window).

    `cols`: where its features sit in the Predictor's `features` (None: all of them, in order).
    """

    def __init__(self, run_dir, checkpoint, prep: InputSpec, model):
        self.run_dir, self.checkpoint, self.prep, self.model = run_dir, checkpoint, prep, model
        self.window = self.prep.window_spec
        if self.window is not None and not getattr(self.model, "sequence", False):
            raise UserError(f"{self.run_dir}: {PREPROCESS} has a window but {type(self.model).__name__} is not a sequence model")
        F, W = len(self.prep.features), self.window.length if self.window is not None else 1
        self.cols: np.ndarray | None = None
        self.fill = OnlineFill(self.prep)
        # preallocated buffers: the current row; for windows a ring of the last W rows, written
        # twice (at i and i + W) so the window is always the contiguous slice ring[i + 1 : i + 1 + W]
        self.row = np.empty(F, dtype=np.float32)
        self.ring = np.zeros((2 * W, F), dtype=np.float32)
        self.win = np.zeros((W, F), dtype=np.float32)
        self.mask = torch.ones(1, W, dtype=torch.bool)
        if self.window is None:
            self.inputs = {"x": torch.from_numpy(self.row)[None]}
        else:
            self.inputs = {"x": torch.from_numpy(self.win)[None], "mask": self.mask}
        self.reset()

    def select(self, features: list[str]) -> None:
        """Take this member's features from rows laid out as `features` (a superset)."""
        cols = np.asarray([features.index(f) for f in self.prep.features])
        self.cols = None if np.array_equal(cols, np.arange(len(features))) else cols

    def reset(self) -> None:
        self.seen = 0  # rows written to the ring
        self.filled = 0  # rows of the current window that are real (<= W)
        self.fill.reset()

    def proba_row(self, x: np.ndarray, new_day: bool) -> np.float32:
        """The trade probability of one row of raw features x (NaNs allowed), in the Predictor's layout."""
        np.copyto(self.row, x if self.cols is None else x[self.cols])
        self.fill(self.row, new_day)
        if self.window is not None:
            self._push(new_day)
        with torch.inference_mode():
            return np.float32(self.model.predict_proba(self.inputs)[0].item())

    def _push(self, new_day: bool) -> None:
        """Append the filled row to the ring and lay out the window (left padding zeroed, masked)."""
        W = self.window.length
        if new_day and not self.window.cross_days:
            self.filled = 0
        i = self.seen % W
        self.ring[i] = self.ring[i + W] = self.row
        self.seen += 1
        self.filled = min(self.filled + 1, W)
        self.win[:] = self.ring[i + 1 : i + 1 + W]
        pad = W - self.filled
        if pad:
            self.win[:pad] = 0.0
        self.mask[0, :pad] = False
        self.mask[0, pad:] = True

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


class Predictor:
    """Actions for rows in the example_test.csv layout, one at a time (`predict_row`) or all
    at once (`predict_batch`); both give identical actions.

    run: a run dir (its best checkpoint), a checkpoint file, a multirun or CV dir (standing for
    the run dirs inside it: jsmp.predict.model.member_runs), or a list of these. With several
    runs the Predictor is an ensemble: each member reads its own features, NaN fill and window
    (its preprocess.json; members may differ in model class, fill or window), and the action is
    the mean of their trade probabilities > 0.5.

    State carried between rows: the day (a new `date` starts a day), each member's
    forward-fill's last values and, for sequence models, last W filled rows, and `predict_row`'s
    last date and ts_id (for its order checks). `reset()` forgets it all.
    `features`: the members' features (the first member's, then any others'); `columns` the
    layout `predict_row` expects of an array: date, weight, features, ts_id.
    A run trained on the 2024 layout (preprocess.json `group`, data.task=regression) is served per
    time step instead: `predict_batch(test_df, lags_df=None)` (predict_time_step), each member
    keeping per-instrument state (jsmp.predict.grouped) and, with `online` (jsmp.predict.online),
    fine-tuning on each date's revealed answers; `grouped` tells which kind serves.
    threads: sets torch's (process-wide) thread count. One is fastest for one row, and on a
    busy machine for batches too (an LSTM can run 10x slower on two). None leaves it as it is.
    """

    def __init__(self, run: str | os.PathLike | Sequence[str | os.PathLike], online: OnlineConfig | None = None,
                 threads: int | None = 1):
        if threads:
            torch.set_num_threads(threads)
        runs = [run] if isinstance(run, (str, os.PathLike)) else list(run)
        if not runs:
            raise UserError("Predictor: no run given; expected a run dir, checkpoint file or multirun dir")
        self.members = [open_member(r, online) for given in runs for r in member_runs(given)]
        self.grouped = isinstance(self.members[0], GroupedMember)
        if any(isinstance(m, GroupedMember) != self.grouped for m in self.members):
            raise UserError("Predictor: an ensemble mixes 2024-layout (per instrument) and 2021-layout runs; "
                            "serve each layout with its own Predictor")
        self.feature_limit = min(m.prep.feature_limit for m in self.members)
        """Rows with a feature beyond ±feature_limit are refused (the members' preprocess.json; the smallest)."""
        if self.grouped:
            self.target = self._target()
            """The output column: the members' first data.targets entry (responder_6 for every preset)."""
            self.features = list(dict.fromkeys(f for m in self.members for f in m.features))
            self.lag_features = list(dict.fromkeys(f for m in self.members for f in m.lags))
            self.reset()
            return
        self.features = list(dict.fromkeys(f for m in self.members for f in m.prep.features))
        for m in self.members:
            m.select(self.features)
        self.columns = ["date", "weight", *self.features, "ts_id"]
        self.reset()

    def _target(self) -> str:
        """The target every grouped member predicts (its data.targets[0]); members predicting different ones are refused."""
        targets = {m.targets[0] for m in self.members}
        if len(targets) > 1:
            raise UserError(f"Predictor: the ensemble's runs predict different targets ({', '.join(sorted(targets))}: "
                            f"their data.targets[0]); averaging them would mean nothing: ensemble runs of one target")
        return targets.pop()

    # the single run's model, for one run (an ensemble's are in `members`)
    def _only(self) -> Member:
        if len(self.members) != 1:
            raise AttributeError(f"an ensemble of {len(self.members)} runs has no single model; see Predictor.members")
        return self.members[0]

    model = property(lambda self: self._only().model)
    checkpoint = property(lambda self: self._only().checkpoint)
    run_dir = property(lambda self: self._only().run_dir)
    prep = property(lambda self: self._only().prep)
    window = property(lambda self: self._only().window)

    def describe(self) -> str:
        """Which model(s) serve: `model MLP from CKPT`, or the ensemble's members."""
        if len(self.members) == 1:
            return f"model {type(self.model).__name__} from {self.checkpoint}"
        return f"ensemble of {len(self.members)} models averaged in probability: " + ", ".join(
            f"{type(m.model).__name__} {m.name}" for m in self.members)

    def reset(self) -> None:
        """Forget every row seen (the next row starts a day and an empty window; for a 2024 run,
        every instrument's state and the last lags)."""
        self.day: float | None = None
        self.lags: LagTable | None = None
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
        self._layout_2021("predict_row")
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
        self._layout_2021("predict_batch(date, x)")
        check_feature_limit(x, self.features, self.feature_limit, lambda i, c: f"row {i + 1}, column {c!r}")
        date = np.asarray(date)
        starts = np.flatnonzero(np.r_[True, date[1:] != date[:-1]])
        alone = len(self.members) == 1
        return [m.proba_batch(starts, x[:, m.cols] if m.cols is not None else x if alone else x.copy())
                for m in self.members]

    def predict_proba_batch(self, date: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(n,) float32 trade probabilities (the members' mean) of consecutive rows (as member_probas)."""
        return mean_proba(self.member_probas(date, x))

    def predict_batch(self, date, x=None):
        """2021 runs: actions (n,) int8 for consecutive rows: date (n,), raw features x (n, F) (as
        member_probas). 2024 runs: `predict_batch(test_df, lags_df=None)`, see predict_time_step."""
        if self.grouped:
            return self.predict_time_step(date, x)
        return actions(self.predict_proba_batch(date, x))

    def _layout_2021(self, what: str) -> None:
        if self.grouped:
            raise UserError(f"{self.members[0].run_dir}: trained per instrument ({self.members[0].prep.group}) on the "
                            f"2024 layout; {what} serves 2021-layout trade models: call predict_batch(test_df, lags_df) "
                            f"once per time_id")

    # -- 2024 layout: one time step per call
    def predict_time_step(self, test_df, lags_df=None):
        """The members' mean prediction of their target (`target`: the runs' first data.targets entry, e.g.
        responder_6) for one time step's rows, as a frame of the input's kind (pandas or polars) with columns
        row_id and `target`.

        test_df: the rows of one (date_id, time_id), one per instrument: row_id, date_id, time_id,
        symbol_id, weight and the features (other columns ignored). lags_df (at a date's first time
        step): the previous date's responders as responder_N_lag_1 by time_id, symbol_id; they serve
        as lag features until the date ends, and, with online learning, label the rows served on the
        previous date, on which each model is fine-tuned before this step is served.
        """
        require_columns(test_df, ["row_id", *KEYS, "weight", *self.features], "test_df")
        n = len(test_df)
        date = np.unique(frame_column(test_df, "date_id"))
        time_id = np.asarray(frame_column(test_df, "time_id"), np.int64)
        symbol = np.asarray(frame_column(test_df, "symbol_id"), np.int64)
        if len(date) > 1 or len(np.unique(time_id)) > 1:
            raise UserError(f"test_df: expected the rows of one date_id and time_id, got date_id {date.tolist()[:5]} "
                            f"and time_id {np.unique(time_id).tolist()[:5]}")
        values, counts = np.unique(symbol, return_counts=True)
        if (counts > 1).any():
            raise UserError(f"test_df: symbol_id {int(values[counts > 1][0])} appears more than once at one time step")
        row_id = row_ids(test_df)
        if n == 0:
            return self._frame(test_df, row_id, np.empty(0, np.float32))
        check_symbols(symbol, lambda i: f"test_df row_id {row_id[i]}")
        x = frame_matrix(test_df, self.features)
        check_feature_limit(x, self.features, self.feature_limit, lambda i, c: f"test_df row_id {row_id[i]}, column {c!r}")
        date = int(date[0])
        if lags_df is not None:
            self.lags = LagTable(date, lags_df, self.lag_features + [
                c for m in self.members if m.learner is not None for c in m.learner.labels if c not in self.lag_features])
        if date != self.day:
            for m in self.members:
                if m.learner is not None:
                    m.learner.reveal(date, self.lags if self.lags is not None and self.lags.date == date else None)
            self.day = date
        lags = self.lags if self.lags is not None and self.lags.date == date else None
        weight = frame_column(test_df, "weight").astype(np.float32)
        preds = [m.predict(date, time_id, symbol, x[:, [self.features.index(f) for f in m.features]], lags, weight)
                 for m in self.members]
        return self._frame(test_df, row_id, mean_proba(preds))

    def _frame(self, like, row_id: np.ndarray, pred: np.ndarray):
        """row_id, `target` as a frame of `like`'s kind (polars imported only when given one)."""
        if type(like).__module__.startswith("polars"):
            import polars as pl

            return pl.DataFrame({"row_id": row_id, self.target: pred})
        import pandas as pd

        return pd.DataFrame({"row_id": row_id, self.target: pred})
