"""Day samples (docs/rtmdf.md, "Day samples"): one date of a grouped (2024-layout) store as a
(time step x instrument x feature) grid with a presence mask, for models whose class says
`sample = "day"` (jsmp.batches.contract.wants_days).

A date's rows are contiguous in the store (store.day_offsets), so a sample is gathered by index
arithmetic: each row's time step and instrument index are computed once per split (vectorised),
its features gathered and filled by RowBatches' gather (the same fill values, lag store and
forward-filled source as row batches), then scattered into the grid. No pandas in the loop.
"""

from __future__ import annotations

import numpy as np
import torch

from jsmp.batches.datamodule import RowBatches
from jsmp.batches.labels import Labels
from jsmp.errors import UserError
from jsmp.inputs.daygrid import time_of_day
from jsmp.inputs.spec import InputSpec
from jsmp.store.store import Store, concat_ranges

DAYS_PER_BATCH = 1  # dates per training and validation batch: a date is already ~N * T rows


def check_days(store: Store, model: str) -> None:
    """A one-line UserError unless `store` has instruments and time_id (the 2024 layout), which day samples need."""
    if store.group is None or not store.has("time_id"):
        raise UserError(f"model {model} reads day samples (sample = 'day'), but data store {store.path} has no instruments "
                        f"and time_id (a 2021-layout store); give a store of the 2024 layout (data=rtmdf)")


class DayBatches(RowBatches):
    """`dataset[positions]` -> the day samples of the split's dates at `positions` (int64, into `days`).

    store: the feature source (the forward-filled one for data.fill=ffill: jsmp.batches.fill.fill_source);
    days: ascending day indices of the split; spec, labels, lags: as RowBatches'; drop_zero_weight:
    rows of weight 0 are left out (absent: mask False). A sample (B dates, T time steps, N instruments,
    F features + lags, K targets):
    x (B, T, N, F) float32, filled as row batches fill, 0 where absent; mask (B, T, N) bool;
    time (B, T) float32 = t / T; y (B, T, N, K) float32; sample_weight (B, T, N) float32
    (data.sample_weight, or 1 on present rows when it is null); weight (B, T, N) float32 the
    competition weight; day (B,) int64 the store's day index. All 0 where absent.
    T and N are the whole store's (time_grid, store.group_values), the same for every date.
    """

    def __init__(self, store: Store, days: np.ndarray, rows: np.ndarray, spec: InputSpec, labels: Labels | None = None,
                 lags: Store | None = None):
        self.days = np.asarray(days, dtype=np.int64)
        self.times = np.asarray(spec.time_ids, dtype=np.int64)  # the run's grid (jsmp.inputs.daygrid.time_grid)
        self.n_times, self.n_groups = len(self.times), len(store.group_values)
        # this split's rows of date k: rows[self.starts[k] : self.starts[k + 1]]
        self.starts = np.append(np.searchsorted(rows, store.day_offsets[self.days]), len(rows)).astype(np.int64)
        super().__init__(store, rows, spec, labels, scoring=False, lags=lags)
        self.sample_weight = labels is not None and labels.sample_weight is not None
        self.n_targets = 1 if labels is None else len(labels)

    def index_columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Each row's store row (int32), time step t (rank of its time_id, int16), instrument n (int16) and
        competition weight (float32), packed in the split's table with the labels."""
        t = np.searchsorted(self.times, self.store.side("time_id")[rows])
        n = np.searchsorted(self.store.group_values, self.store.side(self.store.group)[rows])
        return {"row": rows.astype(np.int32), "t": t.astype(np.int16), "n": n.astype(np.int16),
                "weight": self.store.side("weight")[rows].astype(np.float32)}

    def __len__(self) -> int:
        return len(self.days)

    def row_positions(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The split-row positions of the dates at `positions` (concatenated, ascending within each date)
        and each one's batch index b."""
        a, b = self.starts[positions], self.starts[np.asarray(positions) + 1]
        return concat_ranges(a, b), np.repeat(np.arange(len(a)), b - a)

    def __getitem__(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        positions = np.asarray(positions, dtype=np.int64)
        rows, sample = self.row_positions(positions)
        cols = self.table.take(rows)
        B, T, N = len(positions), self.n_times, self.n_groups
        cell = (sample * T + cols["t"]) * N + cols["n"]  # each row's flat (b, t, n)
        x = np.zeros((B * T * N, len(self.fill_value)), dtype=np.float32)
        x[cell] = self.features(cols["row"], cols["has_nan"])

        def grid(values: np.ndarray, dtype=np.float32, *shape: int) -> np.ndarray:
            out = np.zeros((B * T * N, *shape), dtype=dtype)
            out[cell] = values
            return out.reshape(B, T, N, *shape)

        present = np.ones(len(rows), dtype=bool)
        batch = {"x": x.reshape(B, T, N, -1), "mask": grid(present, bool),
                 "time": np.broadcast_to(time_of_day(np.arange(T), T), (B, T)).copy(),
                 "y": grid(cols["y"].astype(np.float32).reshape(len(rows), self.n_targets), np.float32, self.n_targets),
                 "sample_weight": grid(cols["sample_weight"] if self.sample_weight else present),
                 "weight": grid(cols["weight"]), "day": self.days[positions]}
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    __getitems__ = __getitem__
