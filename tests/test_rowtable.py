"""RowTable: packed per-row columns come back as the columns' own rows; parallel slices cover a range once."""

import threading

import numpy as np
import pytest
import torch

from jsmp.data import parallel
from jsmp.data.rowtable import RowTable


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


@pytest.mark.parametrize("n, threads, expected_slices", [(10, 2, 1), (4 * parallel.MIN_ROWS, 2, 2),
                                                         (4 * parallel.MIN_ROWS, 1, 1)])
def test_for_slices_covers_the_range_once(n, threads, expected_slices):
    seen, names = np.zeros(n, dtype=int), set()
    lock = threading.Lock()

    def fn(s: slice) -> None:
        with lock:
            seen[s] += 1
            names.add(threading.current_thread().name)

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        parallel.for_slices(fn, n)
    finally:
        torch.set_num_threads(old)
    assert (seen == 1).all()
    assert len(names) == expected_slices  # the caller runs one slice, pool threads the others


def test_for_slices_reraises_a_slice_error():
    def fn(s: slice) -> None:
        if s.start == 0:
            raise ValueError("bad slice")

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match="bad slice"):
            parallel.for_slices(fn, 4 * parallel.MIN_ROWS)
    finally:
        torch.set_num_threads(old)
