"""RowTable: packed per-row columns come back as the columns' own rows."""

import numpy as np

from jsmp.batches.rowtable import RowTable


def test_take_returns_each_columns_rows():
    rng = np.random.default_rng(0)
    n = 1000
    cols = {
        "row": rng.integers(0, 2**31 - 1, n).astype(np.int32),
        "has_nan": rng.random(n) < 0.2,  # 1-byte field: records are not 4-byte aligned
        "y": rng.random((n, 5)).astype(np.float32),  # (n, T) column
        "weight": rng.standard_normal(n).astype(np.float32),
        "day": rng.integers(0, 500, n).astype(np.int32),
    }
    table = RowTable(cols)
    assert len(table) == n
    positions = np.sort(rng.choice(n, 300, replace=False))
    got = table.take(positions)
    assert list(got) == list(cols)
    for k, v in cols.items():
        np.testing.assert_array_equal(got[k], v[positions])
        assert got[k].dtype == v.dtype and got[k].flags.c_contiguous
