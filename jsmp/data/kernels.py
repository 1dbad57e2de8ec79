"""A compiled row gather (numba): copies rows and fills their NaNs in one pass over each row.

numpy needs a `take` and then three more passes to fill (isnan, where, write back); here a row
is filled while it is in registers, which makes gather + fill faster than numpy's `take` alone
(jsmp.bench loader). Compiled on first use and cached next to this module.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def take_rows(src: np.ndarray, rows: np.ndarray, out: np.ndarray, fill: np.ndarray, has_nan: np.ndarray) -> None:
    """out[i] = src[rows[i]] for 2-D float32 `src` and `out`; in the rows where has_nan[i], NaNs
    become fill (n_features,) (`fill` may be empty when no has_nan is set)."""
    n_features = src.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        if has_nan[i]:
            for j in range(n_features):
                v = src[r, j]
                out[i, j] = fill[j] if v != v else v
        else:
            for j in range(n_features):
                out[i, j] = src[r, j]
