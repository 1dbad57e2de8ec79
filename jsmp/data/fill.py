"""Missing-value fill statistics, computed once by streaming over training days only."""

from __future__ import annotations

import numpy as np

from jsmp.data.store import Store


def day_ranges(store: Store, day_index: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous (start, stop) row ranges covering the given ascending day indices."""
    ranges: list[tuple[int, int]] = []
    for d in np.asarray(day_index):
        start, stop = int(store.day_offsets[d]), int(store.day_offsets[d + 1])
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


def feature_means(store: Store, day_index: np.ndarray) -> np.ndarray:
    """(n_features,) float32 NaN-ignoring mean of each feature over the given days (0 if all NaN)."""
    total = np.zeros(store.n_features, dtype=np.float64)
    count = np.zeros(store.n_features, dtype=np.int64)
    for block in store.iter_blocks(day_ranges(store, day_index)):
        ok = ~np.isnan(block)
        total += np.where(ok, block, 0).sum(0, dtype=np.float64)
        count += ok.sum(0)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0).astype(np.float32)


def fill_nan(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Replace NaNs in `x` (..., n_features) by `value` (n_features,), in place when writable."""
    if not x.flags.writeable:
        x = x.copy()
    np.copyto(x, np.broadcast_to(value, x.shape), where=np.isnan(x))
    return x
