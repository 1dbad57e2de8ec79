"""Serving a day-sample run (spec.day: jsmp.models.axial) one time step at a time, its state carried
from one step to the next (docs/inference.md): each step's rows are filled as training filled them
(jsmp.inputs.state.OnlineState, no window), lags looked up as jsmp.predict.grouped looks them up, and
the model's `step` advances one slot per instrument (symbol_id). A new date starts every slot afresh,
as a day sample starts each date; a time_id's time of day is its rank in the run's time grid
(spec.time_ids) over the grid's length, as jsmp.batches.days lays a date out. With online learning a
DayLearner keeps each step's filled inputs: the day sample served, fine-tuned on once its answers arrive.
"""

from __future__ import annotations

import numpy as np
import torch

from jsmp.batches.days import DayBatches
from jsmp.errors import UserError
from jsmp.inputs.daygrid import time_of_day
from jsmp.inputs.state import OnlineState
from jsmp.predict.grouped import LagTable
from jsmp.predict.model import OpenRun
from jsmp.predict.online import DayLearner, OnlineConfig


def day_sample_rows(model, days: DayBatches) -> tuple[np.ndarray, ...]:
    """The day-sample forward of `model` (sample = "day") on each date of `days`, read at each of the split's rows
    (days.rows, in that order): (day, y, pred, weight) (n,): the store's day index (int64), target 0, the model's
    output 0 at the row's cell (float32), the competition weight (float32). What serving per time step equals."""
    n = len(days.rows)
    day, y, pred, weight = np.empty(n, np.int64), np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.float32)
    model.eval()
    with torch.inference_mode():
        for k in range(len(days)):
            at = np.arange(days.starts[k], days.starts[k + 1])
            batch, cell = days[np.array([k])], days.table.take(at)
            t, i = torch.from_numpy(cell["t"].astype(np.int64)), torch.from_numpy(cell["n"].astype(np.int64))
            pred[at] = model(*model.inputs(batch))[0, t, i, 0].numpy()
            y[at], weight[at], day[at] = batch["y"][0, t, i, 0].numpy(), batch["weight"][0, t, i].numpy(), batch["day"][0].item()
    return day, y, pred, weight


class DayMember:
    """One day run's model with its inputs (preprocess.json), per-instrument fill state and per-instrument
    model state (model.initial_state / model.step: (layers, slots, hidden)) and, with `online`, its
    DayLearner (on the spec's targets); GroupedMember's interface.

    `features`: the store features it reads from test_df; `lags`: its lag features, from lags_df."""

    window = None

    def __init__(self, run: OpenRun, online: OnlineConfig | None = None):
        self.run_dir, self.checkpoint, self.prep, self.model = run.run_dir, run.checkpoint, run.spec, run.model
        if self.prep.time_ids is None:
            raise UserError(f"{self.run_dir / 'preprocess.json'}: a day-sample run without its time grid (time_ids; "
                            f"trained before serving recorded it): retrain it to serve it")
        self.features, self.lags, self.targets = self.prep.store_features, self.prep.lag_features, self.prep.targets
        if len(self.targets) != self.model.n_targets:
            raise UserError(f"{self.run_dir / 'preprocess.json'}: {len(self.targets)} targets but the model has "
                            f"{self.model.n_targets} outputs")
        self.time_ids = np.asarray(self.prep.time_ids, np.int64)
        self.learner = None if online is None else DayLearner(self.model, self.targets, online, len(self.time_ids),
                                                                 self.prep.sample_weight)
        self.fill = OnlineState(self.prep)
        self.reset()

    def reset(self) -> None:
        """Forget every instrument (fill and model state)."""
        self.fill.reset()
        self.date: int | None = None
        self.slot: dict[int, int] = {}
        self.state = self.model.initial_state(0)

    @property
    def name(self) -> str:
        return self.run_dir.name

    def rank(self, time_id: int) -> int:
        """A time_id's time step: its rank in the time grid (a time_id off the grid is one line)."""
        rank = int(np.searchsorted(self.time_ids, time_id))
        if rank == len(self.time_ids) or self.time_ids[rank] != time_id:
            raise UserError(f"test_df: time_id {time_id} is not in the time grid run {self.run_dir} was trained on "
                            f"({len(self.time_ids)} time_ids, {self.time_ids[0]} to {self.time_ids[-1]})")
        return rank

    def slots(self, symbol: np.ndarray) -> np.ndarray:
        """(n,) int64 each symbol's slot, new ones added with the model's initial state."""
        new = [s for s in symbol.tolist() if s not in self.slot]
        if new:
            base = len(self.slot)
            self.slot.update((s, base + i) for i, s in enumerate(new))
            self.state = torch.cat([self.state, self.model.initial_state(len(new))], dim=1)
        return np.fromiter((self.slot[s] for s in symbol.tolist()), np.int64, len(symbol))

    def predict(self, date: int, time_id: np.ndarray, symbol: np.ndarray, x: np.ndarray, lags: LagTable | None,
                weight: np.ndarray) -> np.ndarray:
        """(n,) float32 predictions of target 0 for one time step's rows (one time_id, distinct symbols): raw
        store features x (n, F) in this member's order; lag features from `lags` (None: all missing)."""
        rank = self.rank(int(time_id[0]))
        time = float(time_of_day(rank, len(self.time_ids)))  # as DayBatches' `time`
        if date != self.date:  # a day sample starts every instrument afresh
            self.date, self.slot, self.state = date, {}, self.model.initial_state(0)
        lag = lags(time_id, symbol, self.lags) if lags is not None else np.full((len(x), len(self.lags)), np.nan, np.float32)
        filled = self.fill.inputs(date, symbol, np.concatenate([x, lag], axis=1))["x"]
        if self.learner is not None:
            self.learner.keep(date, rank, time_id, symbol, filled, weight)
        with torch.inference_mode():
            slot = self.slots(symbol)
            inputs = torch.zeros(len(self.slot), filled.shape[1])
            inputs[slot] = torch.from_numpy(filled)
            present = torch.zeros(len(self.slot), dtype=torch.bool)
            present[slot] = True
            out, self.state = self.model.step(inputs, time, present, self.state)
        return out[slot, 0].numpy()
