"""A split's small per-row columns packed one record per row, so a batch takes them in one gather."""

from __future__ import annotations

import numpy as np

FAST_SIZES = (8, 16, 32)  # record sizes numpy's `take` copies with a specialised loop


class RowTable:
    """Columns of n rows (name -> (n,) or (n, k) array) stored as n packed records.

    A training batch picks rows at random, so each separate column array costs one cache miss
    per row; packed, a row's columns arrive together. `take(positions)` -> {name: array of
    len(positions) rows}, each contiguous. Records are padded to 8, 16 or 32 bytes and gathered
    as plain uint64 rows: numpy's `take` is over twice as fast on those sizes, and about ten
    times faster than on a structured dtype.
    """

    def __init__(self, columns: dict[str, np.ndarray]):
        n = len(next(iter(columns.values())))
        packed = np.dtype([(k, v.dtype, v.shape[1:]) for k, v in columns.items()])
        size = next((s for s in FAST_SIZES if s >= packed.itemsize), -(-packed.itemsize // 8) * 8)
        fields = [packed.fields[k] for k in packed.names]
        self.dtype = np.dtype({"names": list(packed.names), "formats": [f[0] for f in fields],
                               "offsets": [f[1] for f in fields], "itemsize": size})
        table = np.zeros(n, self.dtype)
        for k, v in columns.items():
            table[k] = v
        self.records = table.view(np.uint64).reshape(n, size // 8)

    def __len__(self) -> int:
        return len(self.records)

    def take(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        rec = self.records.take(positions, axis=0).view(self.dtype)[:, 0]
        return {k: np.ascontiguousarray(rec[k]) for k in self.dtype.names}
