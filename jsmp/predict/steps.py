"""The StepPredictor: 2024-layout (per instrument) regression models serving one time step per
call, `predict_batch(test_df, lags_df)`, as the 2024 API hands rows over, optionally learning online
(jsmp.predict.online); a run, or an ensemble of runs of one target (docs/inference.md)."""

from __future__ import annotations

import numpy as np

from jsmp.data.checks import check_feature_limit
from jsmp.errors import UserError
from jsmp.inputs.spec import InputSpec
from jsmp.predict.days import DayMember
from jsmp.predict.grouped import KEYS, FrameColumns, GroupedMember, LagTable, check_symbols, frame_column, is_polars, row_ids
from jsmp.predict.model import OpenRun
from jsmp.predict.online import OnlineConfig
from jsmp.predict.predictor import Predictor, mean_proba


class StepPredictor(Predictor):
    """The members' mean prediction of their target per time step, each member keeping
    per-instrument state (jsmp.predict.grouped) and, with `online`, fine-tuning on each date's
    revealed answers. `target`: the output column, the runs' first target (preprocess.json
    `targets`); `features` and `lag_features`: what the members read from test_df and lags_df;
    `member_outputs`: each member's (n,) float32 predictions of the last time step served, in member
    order (what `jsmp eval` scores an ensemble's members by)."""

    layout = "the 2024 layout (per instrument), regression"
    averaged = "averaged"
    calls = "predict_batch(test_df, lags_df) once per time_id"

    @classmethod
    def serves(cls, spec: InputSpec) -> bool:
        return spec.group is not None and spec.task == "regression"

    def member(self, run: OpenRun, online: OnlineConfig | None) -> GroupedMember | DayMember:
        return (DayMember if run.spec.day else GroupedMember)(run, online)

    def __init__(self, run, online: OnlineConfig | None = None, threads: int | None = 1):
        super().__init__(run, online, threads)
        targets = {m.targets[0] for m in self.members}
        if len(targets) > 1:
            raise UserError(f"Predictor: the ensemble's runs predict different targets ({', '.join(sorted(targets))}: "
                            f"their data.targets[0]); averaging them would mean nothing: ensemble runs of one target")
        self.target = targets.pop()
        self.features = list(dict.fromkeys(f for m in self.members for f in m.features))
        self.lag_features = list(dict.fromkeys(f for m in self.members for f in m.lags))
        # lags_df's columns kept: the lag features, then the online learners' labels
        self.lag_columns = self.lag_features + [c for m in self.members if m.learner is not None
                                                for c in m.learner.labels if c not in self.lag_features]
        self.columns = [[self.features.index(f) for f in m.features] for m in self.members]  # each member's, of `features`
        self.test_columns = FrameColumns(self.features, ["row_id", *KEYS, "weight", *self.features], "test_df")
        self.output_columns = None  # the output frame's column names, made once (pandas' Index of str costs ~50 us)
        self.reset()

    def reset(self) -> None:
        """Forget every instrument's state and the last lags."""
        self.day: int | None = None
        self.lags: LagTable | None = None
        self.member_outputs: list[np.ndarray] = []
        for m in self.members:
            m.reset()

    def predict_batch(self, test_df, lags_df=None):
        """As predict_time_step."""
        if not hasattr(test_df, "columns"):  # the 2021 call: predict_batch(date, x)
            raise self.other_layout("predict_batch(date, x)")
        return self.predict_time_step(test_df, lags_df)

    def predict_time_step(self, test_df, lags_df=None):
        """The members' mean prediction of `target` for one time step's rows, as a frame of the
        input's kind (pandas or polars) with columns row_id and `target`.

        test_df: the rows of one (date_id, time_id), one per instrument: row_id, date_id, time_id,
        symbol_id, weight and the features (other columns ignored). lags_df (at a date's first time
        step): the previous date's responders as responder_N_lag_1 by time_id, symbol_id; they serve
        as lag features until the date ends, and, with online learning, label the rows served on the
        previous date, on which each model is fine-tuned before this step is served.
        """
        self.test_columns.check(test_df)
        n = len(test_df)
        date = frame_column(test_df, "date_id")
        time_id = np.asarray(frame_column(test_df, "time_id"), np.int64)
        symbol = np.asarray(frame_column(test_df, "symbol_id"), np.int64)
        if n and ((date != date[0]).any() or (time_id != time_id[0]).any()):
            raise UserError(f"test_df: expected the rows of one date_id and time_id, got date_id {np.unique(date).tolist()[:5]} "
                            f"and time_id {np.unique(time_id).tolist()[:5]}")
        ordered = np.sort(symbol)
        if (twice := ordered[1:] == ordered[:-1]).any():
            raise UserError(f"test_df: symbol_id {int(ordered[1:][twice][0])} appears more than once at one time step")
        row_id = row_ids(test_df)
        if n == 0:
            self.member_outputs = [np.empty(0, np.float32) for _ in self.members]
            return self._frame(test_df, row_id, np.empty(0, np.float32))
        check_symbols(symbol, lambda i: f"test_df row_id {row_id[i]}")
        x = self.test_columns.matrix(test_df)
        check_feature_limit(x, self.features, self.feature_limit, lambda i, c: f"test_df row_id {row_id[i]}, column {c!r}")
        date = int(date[0])
        if lags_df is not None:
            self.lags = LagTable(date, lags_df, self.lag_columns)
        lags = self.lags if self.lags is not None and self.lags.date == date else None
        if date != self.day:
            for m in self.members:
                if m.learner is not None:
                    m.learner.reveal(date, lags)
            self.day = date
        weight = frame_column(test_df, "weight").astype(np.float32)
        self.member_outputs = [m.predict(date, time_id, symbol, x[:, cols], lags, weight)
                               for m, cols in zip(self.members, self.columns)]
        return self._frame(test_df, row_id, mean_proba(self.member_outputs))

    def _frame(self, like, row_id: np.ndarray, pred: np.ndarray):
        """row_id, `target` as a frame of `like`'s kind (polars imported only when given one)."""
        if is_polars(like):
            import polars as pl

            return pl.DataFrame({"row_id": row_id, self.target: pred})
        import pandas as pd

        if self.output_columns is None:
            self.output_columns = pd.Index(["row_id", self.target])
        out = pd.DataFrame({0: row_id.copy(), 1: pred}, copy=False)  # row_id may be a view of test_df's
        out.columns = self.output_columns
        return out
