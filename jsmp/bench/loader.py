"""`python -m jsmp.bench loader`: DataLoader throughput vs a raw numpy gather of the same rows.

Windows/s from the windowed train DataLoader (index arithmetic, one gather, NaN fill,
padding mask, labels, tensors) against a raw numpy gather - numpy's `take` of each shard's
run of rows from the memmap - of the same window rows, precomputed; rows/s of the row loader
against the same raw gather of its rows; and the same for the per-instrument windows of a
synthetic 2024-layout store (jsmp.data.synthetic_rtmdf: 39 instruments entering and leaving, 79
features) of about the same size. The same batches, the same memmap, measured alternately; best of `--repeat`. Target:
loader / raw >= 0.75 for each.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time

import numpy as np

from jsmp.batches.datamodule import JsmpDataModule
from jsmp.bench.common import add_store_arguments, bench_data, rtmdf_rows, rtmdf_store, synthetic_store
from jsmp.inputs.windows import window_index
from jsmp.models.lstm import LSTM
from jsmp.models.mlp import MLP
from jsmp.store.store import Store

TARGET = 0.75


def _rate(fn, items: list, n_targets: int) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return n_targets / (time.perf_counter() - t0)


def numpy_gather(store: Store, rows: np.ndarray) -> np.ndarray:
    """The baseline: (len(rows), F) float32 by numpy's `take` of each shard's run of sorted
    (or nearly sorted) `rows` from the memmap, straight into place."""
    out = np.empty((len(rows), store.n_features), dtype=np.float32)
    shard = np.searchsorted(store.shard_starts, rows, side="right") - 1
    cuts = [0, *(np.flatnonzero(np.diff(shard)) + 1).tolist(), len(rows)]
    for a, b in zip(cuts[:-1], cuts[1:]):
        s = int(shard[a])
        np.take(store.shards[s], rows[a:b] - store.shard_starts[s], axis=0, out=out[a:b])
    return out


def window_rows(data: JsmpDataModule, positions: np.ndarray) -> np.ndarray:
    """The store rows of the windows of the training targets at `positions` (padding clamped), flat."""
    cols, store = data.train_set.table.take(positions), data.train_set.store
    if store.group is None:
        return window_index(cols["row"], data.window.length)[0].ravel()
    return window_index(cols["pos"], data.window.length, cols["first"], store.group_order)[0].ravel()


def compare(data: JsmpDataModule, batches: int, repeat: int) -> tuple[float, float]:
    """Best targets/s of (the train DataLoader, a raw gather of the same store rows).

    Steady state within an epoch: the loader's iterator is started (and the epoch's shuffle
    drawn) before the clock starts, and its first batch is skipped.
    """
    loader = data.train_dataloader()
    positions = list(itertools.islice(loader.batch_sampler, 1, batches + 1))
    if data.window is None:
        rows = [data.train_set.rows[p] for p in positions]
    else:
        rows = [window_rows(data, p) for p in positions]
    n = sum(len(p) for p in positions)
    store = data.train_set.store
    raw = functools.partial(numpy_gather, store)
    _rate(raw, rows, n)  # warm the page cache
    best_loader = best_raw = 0.0
    for _ in range(repeat):
        it = iter(loader)
        next(it)
        best_loader = max(best_loader, _rate(lambda _: None, itertools.islice(it, batches), n))
        best_raw = max(best_raw, _rate(raw, rows, n))
    return best_loader, best_raw


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.bench loader", description=__doc__.splitlines()[0])
    add_store_arguments(p)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    store = str(synthetic_store(a.days, a.rows_per_day))
    grouped = str(rtmdf_store(a.days, max(1, a.rows_per_day // 30), 39))  # ~30 instruments trade at a time
    print(f"store {store}; grouped store {grouped}; batch {a.batch_size}; {a.batches} batches, best of {a.repeat}")
    print(f"{'loader':<14} {'loader/s':>12} {'raw gather/s':>13} {'ratio':>6} {'target':>7}")
    ok = True
    cases = [("rows", store, MLP, None), (f"windows W={a.window}", store, LSTM, None),
             (f"groups W={a.window}", grouped, LSTM, rtmdf_rows(lags=False))]  # like for like: no lag columns
    for name, path, model_class, rows in cases:  # (as those models read them)
        data = bench_data(path, model_class, a.batch_size, a.window, rows=rows)
        got, raw = compare(data, a.batches, a.repeat)
        ok &= got / raw >= TARGET
        print(f"{name:<14} {got:>12.0f} {raw:>13.0f} {got / raw:>6.2f} {'>=' + str(TARGET):>7}  "
              f"{'ok' if got / raw >= TARGET else 'MISSED'}")
    return 0 if ok else 1
