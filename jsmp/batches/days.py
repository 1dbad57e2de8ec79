"""Day samples (docs/rtmdf.md, "Day samples"): one date of a grouped (2024-layout) store as a
(time step x instrument x feature) grid with a presence mask, for models whose class says
`sample = "day"` (jsmp.batches.contract.wants_days).

A date's rows are contiguous in the store (store.day_offsets), so a sample is gathered by index
arithmetic: each row's cell in its date's grid (t * N + n) is computed once per split (vectorised),
and per batch its rows' features are copied straight into their cells, NaNs filled as row batches
fill them (the same fill values, lag store and forward-filled source), the absent cells zeroed, in
one compiled pass that writes the grid once, in order (`take_cells`). No pandas in the loop. The
resident path (jsmp.batches.resident.ResidentDays) reads the same cells (`day_cells`) from tensors.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from jsmp.batches.datamodule import RowBatches
from jsmp.batches.labels import Labels
from jsmp.errors import UserError
from jsmp.inputs.daygrid import time_of_day
from jsmp.inputs.spec import InputSpec
from jsmp.store.kernels import PREFETCH_ROWS, prefetch_row, shard_list
from jsmp.store.store import Store, concat_ranges


def check_days(store: Store, model: str) -> None:
    """A one-line UserError unless `store` has instruments and time_id (the 2024 layout), which day samples need."""
    if store.group is None or not store.has("time_id"):
        raise UserError(f"model {model} reads day samples (sample = 'day'), but data store {store.path} has no instruments "
                        f"and time_id (a 2021-layout store); give a store of the 2024 layout (data=rtmdf)")


def check_days_per_batch(value) -> int:
    """`data.days_per_batch` as an int >= 1, else a one-line UserError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise UserError(f"data.days_per_batch must be an integer >= 1 (dates per day-sample batch), got {value!r}")
    return int(value)


def day_cells(starts, positions) -> tuple:
    """The split rows of the dates at `positions` (B,) int64, numpy arrays or torch tensors alike: starts (D + 1,)
    the split's row offset of each date (its rows: starts[k] .. starts[k + 1] - 1). Returns (pos, sample) (n,) int64:
    the split-row positions, date by date in `positions`' order, ascending within each, and each one's index b in
    the batch; a row's flat cell in the batch's grid is then b * T * N + its cell t * N + n (ascending in pos)."""
    a, b = starts[positions], starts[positions + 1]
    if isinstance(a, np.ndarray):
        return concat_ranges(a, b), np.repeat(np.arange(len(a)), b - a)
    lengths = b - a
    first = lengths.cumsum(0) - lengths  # each date's first index in the result
    sample = torch.repeat_interleave(torch.arange(len(a), device=a.device), lengths)
    return torch.arange(len(sample), device=a.device) + (a - first)[sample], sample


@numba.njit(nogil=True, cache=True)
def take_cells(shards, shard_starts: np.ndarray, rows: np.ndarray, at: np.ndarray, out: np.ndarray, fill: np.ndarray,
               has_nan: np.ndarray) -> None:
    """out[at[i]] = the store row rows[i] (in shards, shard k's first row shard_starts[k]), NaNs -> fill (F,) in the
    rows where has_nan[i] (in every row when has_nan is empty); every other row of out (C, F) = 0. `at` ascending:
    out is written once, in order. Rows are prefetched as jsmp.store.kernels.take_rows prefetches them."""
    n, n_shards = len(at), len(shard_starts)
    every = len(has_nan) == 0
    c, current, lo, hi = 0, 0, 0, 0
    src = shards[0]
    for i in range(n):
        ahead = i + PREFETCH_ROWS
        if ahead < n and lo <= rows[ahead] < hi:  # (rows of another shard than the current one are not prefetched)
            prefetch_row(src, rows[ahead] - lo)
        r = rows[i]
        if not lo <= r < hi:
            current = np.searchsorted(shard_starts, r, side="right") - 1
            src, lo = shards[current], shard_starts[current]
            hi = shard_starts[current + 1] if current + 1 < n_shards else lo + len(src)
        out[c : at[i]] = 0.0
        c = at[i]
        r -= lo
        if every or has_nan[i]:
            for j in range(out.shape[1]):
                v = src[r, j]
                out[c, j] = fill[j] if v != v else v
        else:
            for j in range(out.shape[1]):
                out[c, j] = src[r, j]
        c += 1
    out[c:] = 0.0


@numba.njit(nogil=True, cache=True)
def put_cells(at: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, weight: np.ndarray, mask_out: np.ndarray,
              y_out: np.ndarray, sample_weight_out: np.ndarray, weight_out: np.ndarray) -> None:
    """Row i's values into cell at[i] of the zeroed grids (C,) mask (True), (C, K) y, (C,) weights; y (n, K),
    weight (n,), sample_weight (n,) or empty: 1 on present rows."""
    for i in range(len(at)):
        c = at[i]
        mask_out[c] = True
        for k in range(y.shape[1]):
            y_out[c, k] = y[i, k]
        sample_weight_out[c] = sample_weight[i] if len(sample_weight) else 1.0
        weight_out[c] = weight[i]


class DayBatches(RowBatches):
    """`dataset[positions]` -> the day samples of the split's dates at `positions` (int64, into `days`).

    store: the feature source (the forward-filled one for data.fill=ffill: jsmp.batches.fill.fill_source);
    days: ascending day indices of the split; rows: the split's store rows (of those dates, ascending);
    spec, labels, lags: as RowBatches'. A sample (B dates, T time steps, N instruments, F features + lags,
    K targets):
    x (B, T, N, F) float32, filled as row batches fill, 0 where absent; mask (B, T, N) bool;
    time (B, T) float32 = t / T; y (B, T, N, K) float32; sample_weight (B, T, N) float32
    (data.sample_weight, or 1 on present rows when it is null); weight (B, T, N) float32 the
    competition weight; day (B,) int64 the store's day index. All 0 where absent.
    T and N are the whole store's (spec.time_ids, store.group_values), the same for every date.
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
        self.time = time_of_day(np.arange(self.n_times), self.n_times)
        self._shards: dict[int, object] = {}  # id(store) -> its shards as take_cells reads them

    def index_columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Each row's store row (int32), time step t (rank of its time_id, int16), instrument n (int16) and
        competition weight (float32), packed in the split's table with the labels."""
        t = np.searchsorted(self.times, self.store.side("time_id")[rows])
        n = np.searchsorted(self.store.group_values, self.store.side(self.store.group)[rows])
        return {"row": rows.astype(np.int32), "t": t.astype(np.int16), "n": n.astype(np.int16),
                "weight": self.store.side("weight")[rows].astype(np.float32)}

    def __len__(self) -> int:
        return len(self.days)

    def __getstate__(self):  # (to DataLoader workers: the shard lists are made again there)
        return {**self.__dict__, "_shards": {}}

    def row_positions(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The split-row positions of the dates at `positions` (concatenated, ascending within each date)
        and each one's batch index b (day_cells)."""
        return day_cells(self.starts, np.asarray(positions, dtype=np.int64))

    def gather_cells(self, store: Store, rows: np.ndarray, at: np.ndarray, out: np.ndarray, fill: np.ndarray,
                     has_nan: np.ndarray | None = None) -> None:
        """take_cells from `store` (the features or the lag store): its `rows` into out's cells `at`; has_nan None:
        every row is looked at for NaNs."""
        shards = self._shards.get(id(store))
        if shards is None:
            shards = self._shards[id(store)] = shard_list(store.shards)
        take_cells(shards, store.shard_starts, rows, at, out, fill, np.zeros(0, bool) if has_nan is None else has_nan)

    def date_rows(self, k: int) -> np.ndarray:
        """The table's records of the split's date k (views, no copy: a date's rows are contiguous in the split)."""
        return self.table.records[self.starts[k] : self.starts[k + 1]].view(self.table.dtype)[:, 0]

    def __getitem__(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        positions = np.asarray(positions, dtype=np.int64)
        B, T, N, K = len(positions), self.n_times, self.n_groups, self.n_targets
        cells, n = T * N, self.store.n_features
        x = np.empty((B, cells, len(self.fill_value)), dtype=np.float32)
        mask = np.zeros((B, cells), dtype=bool)
        y, sample_weight, weight = (np.zeros((B, cells, *shape), np.float32) for shape in ((K,), (), ()))
        no_weight = np.zeros(0, np.float32)
        for b, k in enumerate(positions):
            rec = self.date_rows(k)
            at = rec["t"].astype(np.int64) * N + rec["n"]  # each row's cell t * N + n, ascending
            self.gather_cells(self.store, rec["row"], at, x[b, :, :n], self.fill_value[:n], rec["has_nan"])
            if self.lags is not None:
                self.gather_cells(self.lags, rec["row"], at, x[b, :, n:], self.fill_value[n:])
            put_cells(at, rec["y"].reshape(len(at), K), rec["sample_weight"] if self.sample_weight else no_weight,
                      rec["weight"], mask[b], y[b], sample_weight[b], weight[b])
        batch = {"x": x.reshape(B, T, N, -1), "mask": mask.reshape(B, T, N), "time": np.tile(self.time, (B, 1)),
                 "y": y.reshape(B, T, N, K), "sample_weight": sample_weight.reshape(B, T, N),
                 "weight": weight.reshape(B, T, N), "day": self.days[positions]}
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    __getitems__ = __getitem__
