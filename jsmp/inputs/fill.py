"""The NaN-fill rules (`data.fill`, docs/store.md), one implementation each, for training batches,
the forward-fill cache and serving alike.

`fill_nan`: NaN -> value (fill modes mean and zero, and the NaNs ffill leaves). `ffill_days`: the
forward fill within a day (and within each instrument's own rows in a grouped store), over the
compiled jsmp.store.kernels.ffill_rows; jsmp.inputs.state applies the same kernel row by row while
serving. `fill_rows`: both, on consecutive rows, as an InputSpec says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jsmp.inputs.spec import InputSpec

FILLS = ("mean", "ffill", "zero")


def fill_nan(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The NaN -> value rule (`data.fill` mean and zero, and what ffill leaves): NaNs in `x`
    (..., n_features) become `value` (n_features,); in place when writable."""
    if not x.flags.writeable:
        x = x.copy()
    np.copyto(x, value, where=np.isnan(x))
    return x


def ffill_days(x: np.ndarray, day_starts: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """A forward-filled copy of `x` (n, F): the ffill rule (jsmp.store.kernels.ffill_row) down its
    rows, never across a day; `day_starts`: the rows where days begin (ascending, incl. 0). With
    `group` (n,) int32 (0-based group indices: a grouped store's instruments), each row takes only
    its own group's values. NaNs before a (group's) day's first value stay NaN."""
    from jsmp.store.kernels import ffill_rows  # compiled on first use

    out = np.array(x, copy=True)
    new_day = np.zeros(len(out), dtype=bool)
    new_day[day_starts] = True
    if group is None:
        group = np.zeros(len(out), dtype=np.int32)
    n_groups = int(group.max()) + 1 if len(group) else 1
    ffill_rows(out, new_day, group, np.full((n_groups, out.shape[1]), np.nan, dtype=out.dtype))
    return out


def fill_rows(x: np.ndarray, day_starts: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The NaNs of consecutive rows x (n, F) filled as `spec` says: its `ffill` features (the leading
    ones) forward-filled within each day, then the fill values; `day_starts`: the ascending rows
    (incl. 0) where a day begins. In place when writable and nothing is forward-filled."""
    if k := len(spec.ffill):
        x = np.concatenate([ffill_days(x[:, :k], day_starts), x[:, k:]], axis=1) if k < x.shape[1] else ffill_days(x, day_starts)
    return fill_nan(x, spec.values)
