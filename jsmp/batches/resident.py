"""Device-resident batches (`data.resident`): a split's filled features, labels and per-row fields
held as tensors on the training device, each batch gathered there by tensor indexing: no DataLoader
worker, no host copy of the data per step. The batches equal the memory-mapped path's
(jsmp.batches.datamodule.RowBatches / WindowBatches, jsmp.batches.days.DayBatches: ResidentDays)
for the same seed and epoch.

Under DDP each rank holds its own copy of its split (every rank samples its share from all of it).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from jsmp.batches.sampler import BatchIndexSampler
from jsmp.errors import UserError
from jsmp.inputs.windows import window_positions, window_start

log = logging.getLogger(__name__)
RESIDENT_SHARE = 0.5  # data.resident=auto: resident when the split's tensors fit this share of the device's free memory
SETTINGS = ("auto", "true", "false")


def setting(value) -> str:
    """`data.resident` as one of SETTINGS (a bool, or a string in any case, from the command line)."""
    s = str(value).lower()
    if s not in SETTINGS:
        raise UserError(f"data.resident must be one of {list(SETTINGS)}, got {value!r}")
    return s


def wanted(value: str, device: torch.device, nbytes: int) -> bool:
    """Whether to serve resident batches: `true`, or `auto` on a CUDA device whose free memory is
    over nbytes / RESIDENT_SHARE (so on CPU `auto` keeps the memory-mapped path)."""
    if value != "auto":
        return value == "true"
    return device.type == "cuda" and nbytes <= RESIDENT_SHARE * torch.cuda.mem_get_info(device)[0]


class ResidentBatches:
    """The batches of `dataset` (a RowBatches or WindowBatches) from tensors on `device`.

    Holds features (R, F [+ L]) float32, filled: the contiguous store rows lo .. hi-1 from the
    split's first row any window reaches to its last row (for windows then a row of zeros, which
    padded steps read); per target (N,) its columns (y, [sample_weight], [weight, resp, day]) and,
    for windows, its end and first allowed position (store rows, or positions in a grouped store's
    group_order); each batch's windows by jsmp.inputs.windows.window_positions, as the memory-mapped path's.
    `self[positions]` ((B,) int64 tensor on `device`) -> the same batch dict as `dataset[positions]`.
    """

    def __init__(self, dataset, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        n = len(dataset)
        cols = dataset.table.take(np.arange(n))
        cols.pop("has_nan")
        index = {k: cols.pop(k) for k in dataset.index_keys}
        row = index["row"].astype(np.int64)
        self.window = getattr(dataset, "window", None)
        order = None
        if self.window is None:
            ends = first = None
            reach = row  # the store rows the batches read
        else:
            if "pos" in index:  # grouped store: positions in group_order
                ends, first = index["pos"].astype(np.int64), index["first"].astype(np.int64)
                order = np.asarray(dataset.store.group_order, dtype=np.int64)
            else:
                ends = row
                first = np.zeros(n, np.int64) if dataset.day_start is None else dataset.day_start.take(row)
            start = window_start(ends, self.window.length, first)
            reach = start if order is None else order[start]
        self.lo, hi = (int(reach.min()), int(row.max()) + 1) if n else (0, 0)
        cols["y"] = cols["y"].astype(np.float32, copy=False)
        if "day" in cols:
            cols["day"] = cols["day"].astype(np.int64)
        features = dataset.features(np.arange(self.lo, hi, dtype=np.int64))
        if self.window is not None:  # then one row of zeros, which windows' padded steps read
            features = np.concatenate([features, np.zeros((1, features.shape[1]), np.float32)])
        self.zero_row = hi - self.lo
        self.features = self.put(features)
        self.columns = {k: self.put(v) for k, v in cols.items()}
        self.row = self.put(row - self.lo)
        self.ends, self.first = (None, None) if ends is None else (self.put(ends), self.put(first))
        self.order = None if order is None else self.put(order - self.lo)

    def put(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    @property
    def nbytes(self) -> int:
        tensors = [self.features, self.row, *self.columns.values(), self.ends, self.first, self.order]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def __len__(self) -> int:
        return len(self.row)

    def __getitem__(self, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.window is None:
            batch = {"x": self.features.index_select(0, self.row.index_select(0, positions))}
        else:
            pos, mask = window_positions(self.ends.index_select(0, positions), self.window.length,
                                         self.first.index_select(0, positions))  # (B, W) each
            local = pos - self.lo if self.order is None else self.order[pos]
            local = torch.where(mask, local, self.zero_row)  # padding reads the zero row
            batch = {"x": self.features.index_select(0, local.view(-1)).view(*local.shape, -1), "mask": mask}
        batch.update((k, v.index_select(0, positions)) for k, v in self.columns.items())
        return batch


class ResidentDays:
    """The day samples of `dataset` (a jsmp.batches.days.DayBatches) from tensors on `device`.

    Holds the split's rows' filled features (R + 1, F [+ L]) float32 and their y (R + 1, K), sample_weight
    and weight (R + 1,) (row R: zeros, which absent cells read), each row's cell t * N + n in its date's
    grid (R,) and the dates' row offsets (D + 1,). A batch's cells are found by the memory-mapped path's
    index arithmetic (jsmp.batches.days.day_cells) and every grid is one index_select of its rows.
    `self[positions]` ((B,) int64 tensor on `device`) -> the same batch dict as `dataset[positions]`.
    """

    def __init__(self, dataset, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        cols = dataset.table.take(np.arange(len(dataset.rows)))
        n, K = len(dataset.rows), dataset.n_targets
        self.T, self.N, self.K, self.absent = dataset.n_times, dataset.n_groups, K, n
        sample_weight = cols["sample_weight"] if dataset.sample_weight else np.ones(n, np.float32)
        x = dataset.features(cols["row"].astype(np.int64), cols["has_nan"])
        columns = {"x": x, "y": cols["y"].astype(np.float32).reshape(n, K), "sample_weight": sample_weight,
                   "weight": cols["weight"]}
        self.columns = {k: self.put(np.concatenate([v, np.zeros((1, *v.shape[1:]), v.dtype)])) for k, v in columns.items()}
        self.cell = self.put(cols["t"].astype(np.int64) * self.N + cols["n"])
        self.starts, self.days = self.put(dataset.starts), self.put(dataset.days)
        self.time = self.put(dataset.time)

    put = ResidentBatches.put

    @property
    def nbytes(self) -> int:
        tensors = [*self.columns.values(), self.cell, self.starts, self.days]
        return sum(t.numel() * t.element_size() for t in tensors)

    def __len__(self) -> int:
        return len(self.days)

    def __getitem__(self, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        from jsmp.batches.days import day_cells

        B, T, N = len(positions), self.T, self.N
        pos, sample = day_cells(self.starts, positions)
        index = torch.full((B * T * N,), self.absent, dtype=torch.int64, device=self.device)
        index[sample * (T * N) + self.cell[pos]] = pos  # each cell's split row; absent cells read the zero row
        grid = {k: v.index_select(0, index).view(B, T, N, *v.shape[1:]) for k, v in self.columns.items()}
        return {"x": grid.pop("x"), "mask": (index < self.absent).view(B, T, N), "time": self.time.expand(B, T).clone(),
                **grid, "day": self.days.index_select(0, positions)}


class ResidentLoader:
    """The loader of resident batches: iterates `data`'s batches in `batch_sampler`'s order (the
    memory-mapped DataLoader's), the epoch's positions copied to the device in one go."""

    def __init__(self, data: ResidentBatches, batch_sampler: BatchIndexSampler):
        self.data, self.batch_sampler = data, batch_sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        batches = list(self.batch_sampler)
        if not batches:
            return
        flat = torch.from_numpy(np.concatenate(batches)).to(self.data.device)
        for positions in flat.split([len(b) for b in batches]):
            yield self.data[positions]


def resident(dataset, device: torch.device) -> ResidentBatches | ResidentDays:
    """`dataset`'s resident tensors on `device`: ResidentDays for day samples, else ResidentBatches."""
    from jsmp.batches.days import DayBatches  # (days.py builds on the datamodule, which imports this module)

    return (ResidentDays if isinstance(dataset, DayBatches) else ResidentBatches)(dataset, device)


def estimate_bytes(dataset) -> int:
    """Device bytes of `dataset`'s resident tensors, about (before building them): features of its
    row span (plus windows' reach) and ~32 bytes of columns per target."""
    n = len(dataset)
    if n == 0:
        return 0
    span = int(dataset.rows.max() - dataset.rows.min()) + 1 + (dataset.window.length if hasattr(dataset, "window") else 0)
    return span * len(dataset.fill_value) * 4 + n * 32
