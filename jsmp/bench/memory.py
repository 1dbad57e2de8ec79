"""`python -m jsmp.bench memory`: peak memory of LSTM training on the full-size store, W=8 vs W=128.

Each window length trains the LSTM for a fixed number of steps on all the rows of a cached
full-size synthetic store (500 days, ~2.39M rows x 130 features), in its own child process
(peak RSS from wait4). Printed: each peak RSS, their ratio, and the bytes a materialised
window tensor would need (rows x W x 130 x 4). Peak RSS counts the memory-mapped store
pages the child touched (the fill statistics stream over every training day once); the
`file` column is the child's file-backed resident memory at the end (mostly those pages),
`anon` its heap. The LSTM's own backpropagation-through-time activations grow with
batch x W whatever the loader does; the default batch keeps them small next to the rest.
Targets: RSS(W=128) <= 3 GB and RSS(W=128) / RSS(W=8) <= 1.2.

`--day-store DIR`: instead, the axial model (experiment=rtmdf_axial's settings) trained on day samples
of the 2024-layout store DIR (data=rtmdf: lag features, three targets, mean fill; `--days-per-batch` dates
a batch) in a child process: its peak anonymous memory (its own heap, sampled every 20 ms from before
set-up: jsmp.bench.rtmdf.PeakAnon; the memory-mapped store's pages are page cache, not counted) and peak
RSS. Target: <= 4 GB on the real-size store (python -m jsmp.data synth --layout rtmdf --store DIR --days
1700 --times 968 --symbols 39: ~47M rows, ~15.5 GB of features).
"""

from __future__ import annotations

import argparse
import json

from jsmp.bench.common import add_store_arguments, run_child, synthetic_store
from jsmp.store.store import Store

MAX_RSS_GB = 3.0
MAX_RATIO = 1.2
MAX_DAYS_GB = 4.0  # peak anonymous memory of training on day samples of a real-size 2024 store


def fit_steps(store: str, length: int, steps: int, batch_size: int, hidden: int) -> None:
    """(In the child) train the LSTM on windows of `length` rows for `steps` steps; print a JSON summary."""
    import warnings

    warnings.filterwarnings("ignore")
    from jsmp.bench.common import bench_data
    from jsmp.bench.train import bench_model, bench_trainer
    from jsmp.models.lstm import LSTM

    data = bench_data(store, LSTM, batch_size, length)
    model = bench_model(LSTM, data, hidden=hidden)
    trainer = bench_trainer(steps)
    trainer.fit(model, datamodule=data)
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("RssAnon", "RssFile")))
    print(json.dumps({"train_rows": len(data.train_set), "steps": trainer.global_step,
                      **{k: int(v.split()[0]) / 1024**2 for k, v in status.items()}}))


def fit_days(store: str, steps: int, days_per_batch: int) -> None:
    """(In the child) set up data=rtmdf's day samples of `store` (mean fill) and train the axial model
    (experiment=rtmdf_axial's settings) for `steps` steps; print a JSON summary."""
    import time
    import warnings

    warnings.filterwarnings("ignore")
    from jsmp.batches.config import LoaderConfig
    from jsmp.batches.datamodule import JsmpDataModule
    from jsmp.bench.common import rtmdf_rows
    from jsmp.bench.rtmdf import PeakAnon, rss
    from jsmp.bench.train import bench_model, bench_trainer
    from jsmp.models.axial import Axial

    sampler = PeakAnon()
    sampler.start()
    t0 = time.perf_counter()
    rows = rtmdf_rows()
    rows.targets = ["responder_6", "responder_7", "responder_8"]
    data = JsmpDataModule(store, rows=rows, loader=LoaderConfig(), verify=False, days_per_batch=days_per_batch)
    data.connect(Axial)
    data.setup("fit")
    setup = time.perf_counter() - t0
    trainer = bench_trainer(steps)
    trainer.fit(bench_model(Axial, data, hidden=64, layers=2, heads=4), datamodule=data)
    print(json.dumps({"train_rows": len(data.train_set.rows), "train_dates": len(data.train_set), "steps": trainer.global_step,
                      "setup_s": setup, "fit_s": time.perf_counter() - t0 - setup,
                      "peak_anon": max(sampler.peak, rss("RssAnon")), "file": rss("RssFile")}))


def days_main(store: str, steps: int, days_per_batch: int) -> int:
    """`--day-store`: the axial model's memory on day samples of `store` (fit_days in a child process)."""
    s = Store(store)
    print(f"store {store}: {s.n_rows:,} rows x {s.n_features} features ({s.n_rows * s.n_features * 4 / 1e9:.1f} GB of "
          f"float32); axial model, {days_per_batch} date(s) a batch, {steps} steps")
    run = run_child(f"from jsmp.bench.memory import fit_days; fit_days({store!r}, {steps}, {days_per_batch})",
                    env={"PYTHONWARNINGS": "ignore"})
    out = json.loads(run.stdout.strip().splitlines()[-1])
    if out["steps"] != steps:
        raise RuntimeError(f"trained {out['steps']} steps, expected {steps}")
    ok = out["peak_anon"] <= MAX_DAYS_GB
    print(f"{'peak anon':>10} {'peak RSS':>10} {'file (end)':>11} {'set-up':>8} {'fit':>7} {'train dates':>12}")
    print(f"{out['peak_anon']:>7.2f} GB {run.peak_rss_mb / 1024:>7.2f} GB {out['file']:>8.2f} GB {out['setup_s']:>7.0f}s "
          f"{out['fit_s']:>6.0f}s {out['train_dates']:>12}")
    print(f"target: peak anonymous memory <= {MAX_DAYS_GB:.0f} GB: {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.bench memory", description=__doc__.splitlines()[0])
    add_store_arguments(p)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--windows", type=int, nargs=2, default=[8, 128], metavar=("SMALL", "LARGE"))
    p.add_argument("--day-store", metavar="DIR", help="instead: the axial model on day samples of this 2024-layout store")
    p.add_argument("--days-per-batch", type=int, default=1, help="with --day-store: dates per batch")
    a = p.parse_args(argv)
    if a.day_store:
        return days_main(a.day_store, a.steps, a.days_per_batch)
    store = str(synthetic_store(a.days, a.rows_per_day))
    s = Store(store)
    print(f"store {store}: {s.n_rows:,} rows x {s.n_features} features; LSTM hidden {a.hidden}, "
          f"batch {a.batch_size}, {a.steps} steps per run")
    print(f"{'W':>5} {'peak RSS':>10} {'file':>9} {'anon':>9} {'wall':>7} {'materialised windows':>22}")
    rss = {}
    for w in a.windows:
        run = run_child(f"from jsmp.bench.memory import fit_steps; fit_steps({store!r}, {w}, {a.steps}, "
                        f"{a.batch_size}, {a.hidden})", env={"PYTHONWARNINGS": "ignore"})
        out = json.loads(run.stdout.strip().splitlines()[-1])
        if out["steps"] != a.steps:
            raise RuntimeError(f"W={w}: trained {out['steps']} steps, expected {a.steps}")
        rss[w] = run.peak_rss_mb / 1024
        materialised = s.n_rows * w * s.n_features * 4 / 1e9
        print(f"{w:>5} {rss[w]:>7.2f} GB {out['RssFile']:>6.2f} GB {out['RssAnon']:>6.2f} GB {run.wall_s:>6.0f}s "
              f"{materialised:>19.1f} GB")
    small, large = a.windows
    ratio = rss[large] / rss[small]
    ok = rss[large] <= MAX_RSS_GB and ratio <= MAX_RATIO
    print(f"RSS(W={large}) = {rss[large]:.2f} GB (target <= {MAX_RSS_GB} GB); "
          f"RSS(W={large}) / RSS(W={small}) = {ratio:.2f} (target <= {MAX_RATIO}): {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1
