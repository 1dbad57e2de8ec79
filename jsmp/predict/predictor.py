"""The Predictor: a run's model, or an ensemble of several runs' models, behind one name; the runs'
input contracts (preprocess.json: group and task) choose which predictor serves them
(docs/inference.md):

- a RowPredictor (jsmp.predict.rows) for 2021-layout trade models: rows in the example_test.csv
  layout one at a time (`predict_row`, as the competition's scoring API hands them over) or all at
  once (`predict_batch(date, x)`), with identical actions; ensembles averaged in probability;
- a StepPredictor (jsmp.predict.steps) for 2024-layout (per instrument) regression models: one time
  step per call, `predict_batch(test_df, lags_df)`, optionally learning online (jsmp.predict.online).

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

import functools
import os
from collections.abc import Sequence

import numpy as np
import torch

from jsmp.errors import UserError
from jsmp.inputs.spec import InputSpec
from jsmp.predict.model import OpenRun, member_runs, open_run
from jsmp.predict.online import OnlineConfig


def mean_proba(probs: Sequence) -> np.ndarray:
    """The members' outputs averaged, in float32 and in member order: the same arithmetic for one
    row's scalars as for a batch's (n,) arrays, so both give the same actions."""
    return functools.reduce(np.add, probs) / np.float32(len(probs))


class Predictor:
    """`Predictor(run, online=None, threads=1)`: the RowPredictor or StepPredictor that serves `run`.

    run: a run dir (its best checkpoint), a checkpoint file, a multirun or CV dir (standing for
    the run dirs inside it: jsmp.predict.model.member_runs), or a list of these: with several, an
    ensemble of runs of one layout. online: online learning (2024-layout runs only). threads: sets
    torch's (process-wide) thread count; one is fastest for one row, and on a busy machine for
    batches too (an LSTM can run 10x slower on two); None leaves it as it is.

    Each subclass serves the runs whose spec it `serves`; a call of the other layout's (e.g.
    `predict_row` on a 2024-layout run) is one UserError saying which calls serve this run.
    `members`: the runs, each with its model and inputs; `feature_limit`: rows with a feature beyond
    ±feature_limit are refused (the members' preprocess.json; the smallest).
    """

    layout = ""
    """The runs a subclass serves, in words."""
    averaged = ""
    """How an ensemble's members are combined, in words."""
    calls = ""
    """The calls that serve them."""

    def __new__(cls, run: str | os.PathLike | Sequence[str | os.PathLike], online: OnlineConfig | None = None,
                threads: int | None = 1):
        if threads:
            torch.set_num_threads(threads)
        runs = [run] if isinstance(run, (str, os.PathLike)) else list(run)
        if not runs:
            raise UserError("Predictor: no run given; expected a run dir, checkpoint file or multirun dir")
        opened = [open_run(r) for given in runs for r in member_runs(given)]
        kinds = [serving(o) for o in opened]
        if len(set(kinds)) > 1:
            raise UserError("Predictor: an ensemble mixes 2024-layout (per instrument) and 2021-layout runs; "
                            "serve each layout with its own Predictor")
        if not issubclass(kinds[0], cls):
            raise UserError(f"{opened[0].run_dir}: trained on {kinds[0].layout}; {cls.__name__} serves {cls.layout}")
        self = super().__new__(kinds[0])
        self.members = [self.member(o, online) for o in opened]
        return self

    def __init__(self, run, online: OnlineConfig | None = None, threads: int | None = 1):
        """(The members are opened by __new__.)"""
        self.feature_limit = min(m.prep.feature_limit for m in self.members)

    @classmethod
    def serves(cls, spec: InputSpec) -> bool:
        """Whether this predictor serves a run with this input contract."""
        raise NotImplementedError

    def member(self, run: OpenRun, online: OnlineConfig | None):
        """The member serving one opened run."""
        raise NotImplementedError

    def other_layout(self, call: str) -> UserError:
        """The one error for a call of the other layout's predictor."""
        m = self.members[0]
        return UserError(f"{m.run_dir}: trained {self.trained(m.prep)}; {call} serves other runs: call {self.calls}")

    @staticmethod
    def trained(spec: InputSpec) -> str:
        return (f"per instrument ({spec.group}) on the 2024 layout" if spec.group is not None
                else "on the 2021 layout (one global row order)")

    # -- the calls of one layout, refused on the other's (overridden where served)
    def predict_row(self, row) -> int:
        raise self.other_layout("predict_row")

    def step(self, date: float, x: np.ndarray) -> int:
        raise self.other_layout("step(date, x)")

    def member_probas(self, date: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
        raise self.other_layout("member_probas(date, x)")

    def predict_proba_batch(self, date: np.ndarray, x: np.ndarray) -> np.ndarray:
        raise self.other_layout("predict_proba_batch(date, x)")

    def predict_time_step(self, test_df, lags_df=None):
        raise self.other_layout("predict_batch(test_df, lags_df)")

    # the single run's model, for one run (an ensemble's are in `members`)
    def _only(self):
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
        return f"ensemble of {len(self.members)} models {self.averaged}: " + ", ".join(
            f"{type(m.model).__name__} {m.name}" for m in self.members)


def serving(run: OpenRun) -> type[Predictor]:
    """The Predictor subclass that serves `run` (by its spec's group, task and sample); a run none serves is refused."""
    kinds = [k for k in Predictor.__subclasses__() if k.serves(run.spec)]
    if not kinds:
        spec = run.spec
        what = f"per instrument ({spec.group}) for data.task={spec.task}" if spec.group is not None else f"for data.task={spec.task}"
        raise UserError(f"{run.run_dir}: trained {what}; the predictor serves 2021-layout trade models row by row and "
                        f"2024-layout (per instrument) regression models per time step")
    return kinds[0]
