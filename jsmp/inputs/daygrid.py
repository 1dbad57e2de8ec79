"""The day-sample grid, one rule for training and serving: a date of a grouped store is laid out as
T time steps x N instruments (jsmp.batches.days), a row's time step being its time_id's rank among the
store's time_id values, and a model reads each step's time of day as rank / T."""

from __future__ import annotations

import numpy as np

from jsmp.errors import UserError
from jsmp.store.store import Store


def time_grid(store: Store) -> np.ndarray:
    """The store's distinct time_id values, ascending: a row's time step is its time_id's rank among
    them, and T = their number. A store whose dates do not share them (more values than the most
    distinct time_ids on one date) is a one-line UserError. Rows are in time order within a date."""
    time = np.asarray(store.side("time_id"))
    new = np.ones(len(time), dtype=bool)  # a row whose time_id differs from the row before, or starts a date
    new[1:] = time[1:] != time[:-1]
    new[store.day_offsets[:-1]] = True
    per_day = np.add.reduceat(new, store.day_offsets[:-1], dtype=np.int64) if store.n_rows else np.zeros(0, np.int64)
    values, most = np.unique(time[new]), int(per_day.max(initial=0))
    if len(values) > most:
        raise UserError(f"store {store.path}: its dates use {len(values)} distinct time_ids, but at most {most} on one "
                        f"date; day samples need the same time_ids on every date")
    return values


def time_of_day(rank, steps: int) -> np.ndarray:
    """The time-of-day input of time steps `rank` (an int or an int array) in a grid of `steps`: rank / steps, float32."""
    return (np.asarray(rank) / steps).astype(np.float32)
