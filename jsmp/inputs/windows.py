"""Sliding windows by index arithmetic, the one rule for training batches (memory-mapped and
device-resident) and serving (docs/sequence-models.md): never materialised, gathered per batch.

The window of target row t holds the W rows t-W+1 .. t in `ts_id` (= store row) order, so
its last step is always t itself. Rows before the window's first allowed row (the store's
first row, or with `cross_days=False` the first row of t's day) are left padding: zeros in
`x`, False in `mask`.

In a grouped store (instruments side by side, jsmp.store.store) the same arithmetic runs on
positions in the group order instead of rows: the window of t is the W rows of t's own group
ending at t, positions group_pos[t] - W + 1 .. group_pos[t], read through group_order, and
padded before the group's first row (with `cross_days=False`, its first row on t's day). Each
target's position and first allowed position are computed once per split (`window_starts`).
Serving's per-instrument ring of the last W rows (jsmp.inputs.state) takes which of its steps are
real from the same rule (`window_index` on the count of the instrument's rows in its window).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from jsmp.errors import UserError
from jsmp.store.store import Store


@dataclass
class WindowSpec:
    """The windows served to sequence models (`data.window`, docs/sequence-models.md)."""

    length: int = 32
    """W: rows per window (>= 1), the last one the target row."""
    cross_days: bool = True
    """Windows reach into earlier days (True) or stop at the target's day start, left-padded (False)."""
    shuffle_block: int = 256
    """Training shuffles contiguous blocks of this many targets (cache friendly; 1: rows)."""

    def __post_init__(self):
        if not isinstance(self.length, int) or self.length < 1:
            raise UserError(f"data.window.length must be an integer >= 1, got {self.length!r}")
        if not isinstance(self.shuffle_block, int) or self.shuffle_block < 1:
            raise UserError(f"data.window.shuffle_block must be an integer >= 1, got {self.shuffle_block!r}")


def window_bytes(rows: int, length: int, n_features: int) -> int:
    """Host bytes a batch of `rows` windows of `length` steps over `n_features` takes while it is
    gathered (take_windows): x (B, W, F) float32 and the distinct rows it is taken from (at most as
    many), the window rows and their inverse index (int64 each) and the mask."""
    return rows * length * (2 * 4 * n_features + 8 + 8 + 1)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping (Linux: /proc/meminfo
    MemAvailable; elsewhere free pages), or None when the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def longest_series(store: Store, cross_days: bool) -> tuple[int, str]:
    """The most rows one window can reach, and whose they are: with `cross_days`, the longest
    instrument's (a grouped store) or the whole store's; without, the longest day's."""
    if not cross_days:
        return int(np.diff(store.day_offsets).max()), "one day's rows"
    if store.group is not None:
        return int(np.diff(store.group_offsets).max()), f"one {store.group}'s rows"
    return int(store.n_rows), "the whole store"


def check_window(spec: WindowSpec, store: Store, n_features: int, batch_rows: int, workers: int = 0) -> None:
    """Refuse, before any batch is gathered, a window that is longer than every series it could
    cover (beyond that it is only padding) or whose batches do not fit in the memory available:
    `batch_rows` windows per batch (the larger of the training and evaluation batches), over
    `n_features`, gathered by max(1, `workers`) processes at once (window_bytes)."""
    longest, what = longest_series(store, spec.cross_days)
    if spec.length > longest:
        raise UserError(f"data.window.length={spec.length} is longer than any series in store {store.path}: the longest "
                        f"({what}, with data.window.cross_days={str(spec.cross_days).lower()}) has {longest} rows, and "
                        f"the rest of every window would be padding; choose at most {longest}")
    need, free = max(1, workers) * window_bytes(batch_rows, spec.length, n_features), available_memory()
    if free is not None and need > free:
        fit = free * spec.length // need  # (need grows with the length linearly)
        raise UserError(f"data.window.length={spec.length}: a batch of {batch_rows} windows x {n_features} features needs "
                        f"{need / 2**30:.1f} GiB while it is gathered{f' ({workers} loader workers)' if workers > 1 else ''}, "
                        f"and {free / 2**30:.1f} GiB of memory is available; lower data.window.length (at most {fit} "
                        "here) or data.batch_size / data.eval_batch_size")


def window_start(ends, length: int, first):
    """(B,) the first position each window reads: its earliest step, or `first` (B,) where it is
    padded. numpy arrays or torch tensors alike."""
    return _module(ends).maximum(ends - (length - 1), first)


def window_positions(ends, length: int, first) -> tuple:
    """Positions of each target's window and which of them are real, numpy arrays or torch
    tensors alike (the result on `ends`' device).

    ends: (B,) int64 the targets' positions; first: (B,) int64 the first position each window may
    use. Returns positions (B, W) int64, ends - W + 1 .. ends with padded steps clamped to `first`
    (a position that exists), and mask (B, W) bool, True where the step is a real row.
    """
    xp = _module(ends)
    steps = np.arange(1 - length, 1, dtype=np.int64) if xp is np else xp.arange(1 - length, 1, device=ends.device)
    pos, first = ends[:, None] + steps, first[:, None]
    mask = pos >= first
    return xp.maximum(pos, first), mask


def _module(a):
    """numpy for an array, torch for a tensor (then imported already: the caller holds one)."""
    if isinstance(a, np.ndarray):
        return np
    import torch

    return torch


def window_index(ends: np.ndarray, length: int, first: np.ndarray | int = 0,
                 order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Store rows of each target's window and which of them are real (window_positions).

    ends: (B,) the targets' positions: store rows, or with `order` (a grouped store's
    group_order) positions in it. first: (B,) or scalar, the first position a window may use.
    Returns idx (B, W) int64 store rows, padded steps clamped to `first` (a valid row to read),
    and mask (B, W) bool, True where idx is a real row of the window.
    """
    ends = np.asarray(ends, dtype=np.int64)
    pos, mask = window_positions(ends, length, np.broadcast_to(np.asarray(first, dtype=np.int64), ends.shape))
    return (pos if order is None else order[pos]), mask


def take_windows(features, idx: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (B, W, F) float32 and mask (B, W) of the windows at store rows idx (B, W) (window_index).

    `features(store_rows) -> (n, F)` gathers (and fills) rows; it is called once, on the
    distinct rows of all B*W window steps (windows of nearby targets overlap, so with a
    block-shuffled batch these are few), and the windows are then taken from that block in
    memory. Padded steps are zeroed.
    """
    distinct, step_row = np.unique(idx, return_inverse=True)
    x = features(distinct).take(step_row.ravel(), axis=0).reshape(*idx.shape, -1)
    if not mask.all():
        x[~mask] = 0.0
    return x, mask


def gather_windows(features, rows: np.ndarray, spec: WindowSpec,
                   day_start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x (B, W, F) float32 and mask (B, W) bool for the target rows `rows` (B,) of a store
    without groups (take_windows). `day_start` (B,) is the first row of each target's day,
    required when `spec.cross_days` is False.
    """
    return take_windows(features, *window_index(rows, spec.length, 0 if spec.cross_days else day_start))


def group_day_starts(store: Store) -> np.ndarray:
    """(G, n_days) int64: the position (in group_order) of group g's first row on day d, or where
    it would be (the position after the group's rows of earlier days) when it has none that day.
    One pass over the group column, a day at a time."""
    counts = np.stack([np.bincount(store.group_index(a, b), minlength=len(store.group_values))
                       for a, b in zip(store.day_offsets[:-1], store.day_offsets[1:])], axis=1)
    return store.group_offsets[:-1, None] + np.cumsum(counts, axis=1) - counts


def window_starts(store: Store, rows: np.ndarray, cross_days: bool) -> tuple[np.ndarray, np.ndarray]:
    """For target `rows` (B,) of a grouped store: their positions in group_order and the first
    position each one's window may use (its group's first row, or with `cross_days` False its
    group's first row on its day), both (B,) int64. Vectorised: computed once per split."""
    pos = np.asarray(store.group_pos).take(rows)
    group = np.searchsorted(store.group_offsets, pos, side="right") - 1
    if cross_days:
        return pos, store.group_offsets[group]
    day = np.searchsorted(store.day_offsets, rows, side="right") - 1
    return pos, group_day_starts(store)[group, day]
