"""Sliding windows over the store by index arithmetic: never materialised, gathered per batch
(docs/sequence-models.md).

The window of target row t holds the W rows t-W+1 .. t in `ts_id` (= store row) order, so
its last step is always t itself. Rows before the window's first allowed row (the store's
first row, or with `cross_days=False` the first row of t's day) are left padding: zeros in
`x`, False in `mask`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jsmp.errors import UserError


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


def window_index(rows: np.ndarray, length: int, first: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Store rows of each target's window and which of them are real.

    rows: (B,) int64 target rows. first: (B,) or scalar, the first row a window may use.
    Returns idx (B, W) int64, padded positions clamped to `first` (a valid row to read), and
    mask (B, W) bool, True where idx is a real row of the window.
    """
    rows = np.asarray(rows, dtype=np.int64)
    idx = rows[:, None] + np.arange(1 - length, 1, dtype=np.int64)
    first = np.broadcast_to(np.asarray(first, dtype=np.int64), rows.shape)[:, None]
    mask = idx >= first
    return np.maximum(idx, first), mask


def gather_windows(features, rows: np.ndarray, spec: WindowSpec,
                   day_start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x (B, W, F) float32 and mask (B, W) bool for the target rows `rows` (B,).

    `features(store_rows) -> (n, F)` gathers (and fills) rows; it is called once, on the
    distinct rows of all B*W window steps (windows of nearby targets overlap, so with a
    block-shuffled batch these are few), and the windows are then taken from that block in
    memory. Padded steps are zeroed. `day_start` (B,) is the first row of each target's day,
    required when `spec.cross_days` is False.
    """
    idx, mask = window_index(rows, spec.length, 0 if spec.cross_days else day_start)
    distinct, step_row = np.unique(idx, return_inverse=True)
    x = features(distinct).take(step_row.ravel(), axis=0).reshape(*idx.shape, -1)
    if not mask.all():
        x[~mask] = 0.0
    return x, mask
