"""`python -m jsmp.bench days`: day-sample gather throughput vs a raw Store.gather of the same rows.

Rows/s of the day-sample train DataLoader (jsmp.batches.days.DayBatches: a date's rows by index
arithmetic, copied with the NaN fill straight into their cells of the (T, N, F) grid and the absent
cells zeroed in one compiled pass, mask, targets and weights, tensors) against a raw Store.gather
(no fill) of the same store rows, on a synthetic 2024-layout store (jsmp.data.synthetic_rtmdf: --times
time_ids x --symbols instruments entering and leaving, 79 features; --days dates, 1,700 for the real
size). Like for like: no lag features, mean fill. The same dates, the same memmap, measured
alternately; best of `--repeat`. Also printed: the grid's density (present cells / (T x N) over the
timed dates: a sample writes x for every cell, the raw gather only for the present rows), the
process's peak anonymous memory (its heap, sampled every 20 ms from set-up on: jsmp.bench.rtmdf.PeakAnon)
and its peak RSS (which also counts the store pages it mapped, and the store's generation on a first
run). Target: day samples / raw >= 0.75.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import time

from jsmp.bench.common import bench_data, rtmdf_rows, rtmdf_store
from jsmp.bench.rtmdf import PeakAnon

TARGET = 0.75


class DayReader:
    """A model class that reads day samples (only its `sample` attribute is used)."""

    sample = "day"


def _seconds(fn, items: list) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.bench days", description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=40)
    p.add_argument("--times", type=int, default=968)
    p.add_argument("--symbols", type=int, default=39)
    p.add_argument("--batches", type=int, default=10, help="dates timed per repeat")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    path = rtmdf_store(a.days, a.times, a.symbols)
    anon = PeakAnon()
    anon.start()
    data = bench_data(path, DayReader, 1, rows=rtmdf_rows(lags=False))
    days = data.train_set
    loader = data.train_dataloader()
    positions = list(itertools.islice(loader.batch_sampler, 1, a.batches + 1))
    rows = [days.rows[days.row_positions(q)[0]] for q in positions]
    n = sum(len(r) for r in rows)
    raw = days.store.gather
    _seconds(raw, rows)  # warm the page cache
    best_day = best_raw = 0.0
    for _ in range(a.repeat):
        it = iter(loader)
        next(it)  # steady state: the epoch's shuffle drawn, its first date skipped
        best_day = max(best_day, n / _seconds(next, [it] * len(positions)))  # (fewer when the store has few dates)
        best_raw = max(best_raw, n / _seconds(raw, rows))
    ratio = best_day / best_raw
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    T, N, F = days.n_times, days.n_groups, len(days.fill_value)
    density = n / (T * N * len(positions))
    print(f"store {path}: {days.store.n_rows} rows; {len(days)} training dates; a sample T={T} x N={N} x F={F} "
          f"({T * N * F * 4 / 2**20:.1f} MB of x); {len(positions)} dates, best of {a.repeat}")
    print(f"{'day samples rows/s':>19} {'raw gather rows/s':>18} {'ratio':>6} {'target':>7} {'density':>8} {'peak anon MB':>13} {'peak RSS MB':>12}")
    print(f"{best_day:>19.0f} {best_raw:>18.0f} {ratio:>6.2f} {'>=' + str(TARGET):>7} {density:>8.2f} {anon.peak * 1024:>13.0f} {peak:>12.0f}  "
          f"{'ok' if ratio >= TARGET else 'MISSED'}")
    return 0 if ratio >= TARGET else 1
