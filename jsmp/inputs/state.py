"""The online input state of serving: per instrument, the fill (the forward fill of `spec.ffill`'s
features within a date, then the fill values) and, for sequence models, the window ring; exactly
what training's batches hold for the same rows (jsmp.inputs.fill, jsmp.inputs.windows).

`OnlineState.inputs(day, keys, x)` serves many instruments at once (2024: one time step's rows, one
per instrument); `OnlineState.row(x, new_day)` is the one-instrument case (2021: one row per call,
one global order), a fast path over the same state that keeps its output in preallocated buffers.
Each instrument's ring holds its last W filled rows twice (at i and i + W), so that its window is
the contiguous slice ring[i + 1 : i + 1 + W]. An instrument that appears starts with an empty
window and no forward-fill values; one that vanishes keeps its state until it returns.
"""

from __future__ import annotations

import numpy as np

from jsmp.inputs.fill import fill_nan
from jsmp.inputs.spec import InputSpec
from jsmp.inputs.windows import window_index


class OnlineState:
    """Per instrument (by key, e.g. symbol_id): its day, its forward fill's last values (k,) and its
    ring (2W, F) of filled rows, with the count of rows written (`seen`) and of its current window's
    real rows (`filled`, <= W); F = len(spec.features), k = len(spec.ffill), W the window length."""

    def __init__(self, spec: InputSpec):
        self.value, self.k = spec.values, len(spec.ffill)
        self.window = spec.window_spec
        self.W, self.F = (self.window.length if self.window else 1), len(spec.features)
        if self.k:  # the compiled ffill rule, compiled (or loaded) now, not on the first row
            from jsmp.store.kernels import ffill_row, ffill_rows

            self.ffill_row, self.ffill_rows = ffill_row, ffill_rows
            ffill_row(np.zeros(self.k, np.float32), np.full(self.k, np.nan, np.float32), True)
            ffill_rows(np.zeros((1, self.k), np.float32), np.zeros(1, bool), np.zeros(1, np.int32),
                       np.full((1, self.k), np.nan, np.float32))
        # row()'s output: the window (W, F) and its mask (W,) (True on real rows), read through views
        self.win = np.zeros((self.W, self.F), np.float32)
        self.mask = np.ones(self.W, bool)
        self.reset()

    def reset(self) -> None:
        """Forget every instrument."""
        self.slot: dict[int, int] = {}
        self.day = np.empty(0, np.int64)
        self.last = np.empty((0, self.k), np.float32)
        self.ring = np.empty((0, 2 * self.W if self.window else 0, self.F), np.float32)
        self.seen = np.empty(0, np.int64)
        self.filled = np.empty(0, np.int64)

    def slots(self, keys: np.ndarray) -> np.ndarray:
        """(n,) int32: each key's slot, new keys added with an empty state."""
        new = [k for k in dict.fromkeys(keys.tolist()) if k not in self.slot]
        if new:
            n, base = len(new), len(self.slot)
            self.slot.update((k, base + i) for i, k in enumerate(new))
            self.day = np.r_[self.day, np.full(n, -1, np.int64)]
            self.last = np.concatenate([self.last, np.full((n, self.k), np.nan, np.float32)])
            self.ring = np.concatenate([self.ring, np.zeros((n, *self.ring.shape[1:]), np.float32)])
            self.seen, self.filled = np.r_[self.seen, np.zeros(n, np.int64)], np.r_[self.filled, np.zeros(n, np.int64)]
        return np.fromiter((self.slot[k] for k in keys.tolist()), np.int32, len(keys))

    def inputs(self, day: int, keys: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
        """The model's batch for rows of distinct instruments `keys` (n,) on `day`: raw features x
        (n, F) float32 (NaNs allowed) filled in place; returns x (n, F), or for windows x (n, W, F)
        float32 (left padding zeroed) and mask (n, W) bool."""
        idx = self.slots(keys)
        new_day = self.day[idx] != day
        self.day[idx] = day
        if self.k:
            self.last[idx[new_day]] = np.nan
            head = np.ascontiguousarray(x[:, : self.k])
            self.ffill_rows(head, np.zeros(len(idx), bool), idx, self.last)
            x[:, : self.k] = head
        fill_nan(x, self.value)
        if self.window is None:
            return {"x": x}
        W = self.W
        if not self.window.cross_days:
            self.filled[idx[new_day]] = 0
        at = self.seen[idx] % W
        self.ring[idx, at] = self.ring[idx, at + W] = x
        self.seen[idx] += 1
        self.filled[idx] = np.minimum(self.filled[idx] + 1, W)
        xw = self.ring[idx[:, None], at[:, None] + np.arange(1, W + 1)]
        mask = window_index(self.filled[idx] - 1, W)[1]
        xw[~mask] = 0.0
        return {"x": xw, "mask": mask}

    def row(self, x: np.ndarray, new_day: bool) -> None:
        """The one-instrument case: fill the row x (F,) float32 in place (`new_day`: it starts a day)
        and, for windows, lay its window out in `win` and `mask` (as `inputs` would, for one key)."""
        if not self.slot:
            self.slots(np.zeros(1, np.int64))
        if self.k:
            self.ffill_row(x[: self.k], self.last[0], new_day)
        fill_nan(x, self.value)
        if self.window is None:
            return
        W = self.W
        if new_day and not self.window.cross_days:
            self.filled[0] = 0
        at = int(self.seen[0] % W)
        ring = self.ring[0]
        ring[at] = ring[at + W] = x
        self.seen[0] += 1
        filled = self.filled[0] = min(int(self.filled[0]) + 1, W)
        self.win[:] = ring[at + 1 : at + 1 + W]
        pad = W - filled
        if pad:
            self.win[:pad] = 0.0
        self.mask[:pad] = False
        self.mask[pad:] = True
