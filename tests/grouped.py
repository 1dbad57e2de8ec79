"""A small grouped store (the 2024 layout: instruments side by side) built from a pandas frame, for the
tests of grouped stores, per-instrument windows and fills (tests/store/test_groups.py, tests/batches/)."""

import numpy as np
import pandas as pd

from jsmp.store.store import Store, StoreWriter

FEATURES = ["feature_00", "feature_01", "feature_02"]
SIDE = {"date": "int32", "time_id": "int16", "symbol_id": "int16", "weight": "float32", "resp": "float32"}
DATES = [10, 11, 13, 14, 15]


def grouped_frame(times: int = 8, seed: int = 0) -> pd.DataFrame:
    """Rows in (date, time_id, symbol_id) order of five instruments: 0 always there, 1 entering on
    the first day at time 3, 3 absent on the third day, 7 entering mid-day on the third day, 12 at
    random times; three features with about a third NaN, weight, resp. Row i is store row i."""
    rng = np.random.default_rng(seed)
    keys = []
    for d, date in enumerate(DATES):
        for t in range(times):
            live = {0: True, 1: (d, t) >= (0, 3), 3: d != 2, 7: (d, t) >= (2, 5), 12: rng.random() < 0.6}
            keys += [(date, t, s) for s, on in live.items() if on]
    frame = pd.DataFrame(keys, columns=["date", "time_id", "symbol_id"])
    x = rng.normal(size=(len(frame), len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.35] = np.nan
    frame[FEATURES] = x
    frame["weight"] = rng.random(len(frame)).astype(np.float32)
    frame["resp"] = rng.normal(size=len(frame)).astype(np.float32)
    return frame


def write_grouped(path, frame: pd.DataFrame, shard_rows: int = 30, pieces: int = 3) -> Store:
    """`frame` written as a store grouped by symbol_id, in time order (date, time_id), appended in `pieces`."""
    with StoreWriter(path, FEATURES, SIDE, {"kind": "test"}, shard_rows=shard_rows,
                     group="symbol_id", time=["date", "time_id"]) as w:
        for rows in np.array_split(np.arange(len(frame)), pieces):
            part = frame.iloc[rows]
            w.append(part[FEATURES].to_numpy(), {k: part[k].to_numpy() for k in SIDE})
        return Store(w.close())
