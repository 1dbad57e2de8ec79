"""`python -m jsmp.bench rtmdf`: memory of training on a real-size 2024-layout store.

The store is synthetic (jsmp.data.synthetic_rtmdf) at the real data's size by default: 1,700
dates x 968 time_ids x 39 instruments entering and leaving, 49M rows x 79 float32 features, about
15.5 GB of shards, generated once into the bench cache (about 5 minutes). Each case trains for a
fixed number of steps as `data=rtmdf` does (regression on responder_6 weighted by `weight`, lag
features, per-instrument windows for the GRU; mean fill: ffill would first write a forward-filled
copy of the store) in its own child process. Printed: the child's peak anonymous memory (its heap:
what the process itself holds, sampled every 20 ms), its peak RSS (from wait4), which also counts
the store's pages it mapped (page cache, which the kernel reclaims under pressure: the fill
statistics and the lag and NaN passes stream over the whole store), and its file-backed resident
memory at the end. The first case also pays the one-time costs of a first run on a new store: the
NaN flags, the lag features (a 1.8 GB cache) and the fill statistics, each a streaming pass.
Target: peak anonymous memory <= 4 GB (the store is memory-mapped, never loaded: 15.5 GB).
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from jsmp.bench.common import rtmdf_store, run_child
from jsmp.store.store import Store

MAX_ANON_GB = 4.0


def rss(kind: str) -> float:
    """This process's resident memory of `kind` (RssAnon, RssFile) in GB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(kind))
    return int(line.split()[1]) / 1024**2


class PeakAnon(threading.Thread):
    """Samples RssAnon every 20 ms in the background; `peak` holds the largest seen."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0.0

    def run(self) -> None:
        while True:
            self.peak = max(self.peak, rss("RssAnon"))
            time.sleep(0.02)


def fit_steps(store: str, model: str, steps: int, batch_size: int, window: int) -> None:
    """(In the child) set up data=rtmdf's rows on `store` and train `model` (mlp | gru) for `steps` steps;
    print a JSON summary."""
    import warnings

    warnings.filterwarnings("ignore")
    from jsmp.bench.common import bench_data, rtmdf_rows
    from jsmp.bench.train import bench_model, bench_trainer
    from jsmp.models.mlp import MLP
    from jsmp.models.recurrent import GRU

    sampler = PeakAnon()
    sampler.start()
    t0 = time.perf_counter()
    model_class = {"mlp": MLP, "gru": GRU}[model]
    data = bench_data(store, model_class, batch_size, window, rows=rtmdf_rows())
    setup = time.perf_counter() - t0
    trainer = bench_trainer(steps)
    trainer.fit(bench_model(model_class, data), datamodule=data)
    print(json.dumps({"train_rows": len(data.train_set), "features": len(data.spec.features), "steps": trainer.global_step,
                      "setup_s": setup, "fit_s": time.perf_counter() - t0 - setup,
                      "peak_anon": max(sampler.peak, rss("RssAnon")), "file": rss("RssFile")}))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.bench rtmdf", description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=1700)
    p.add_argument("--times", type=int, default=968)
    p.add_argument("--symbols", type=int, default=39)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    path = str(rtmdf_store(a.days, a.times, a.symbols))
    made = time.perf_counter() - t0
    s = Store(path)
    gb = s.n_rows * s.n_features * 4 / 1e9
    print(f"store {path}: {s.n_rows:,} rows x {s.n_features} features ({gb:.1f} GB of float32), "
          f"{len(s.group_values)} instruments; {'generated in %.0f s' % made if made > 5 else 'cached'}")
    print(f"batch {a.batch_size}, {a.steps} steps per case, GRU windows W={a.window}")
    print(f"{'case':<10} {'peak anon':>10} {'peak RSS':>10} {'file (end)':>11} {'set-up':>8} {'fit':>7}")
    ok = True
    for model in ("mlp", "gru"):
        run = run_child(f"from jsmp.bench.rtmdf import fit_steps; fit_steps({path!r}, {model!r}, {a.steps}, "
                        f"{a.batch_size}, {a.window})", env={"PYTHONWARNINGS": "ignore"})
        out = json.loads(run.stdout.strip().splitlines()[-1])
        if out["steps"] != a.steps:
            raise RuntimeError(f"{model}: trained {out['steps']} steps, expected {a.steps}")
        ok &= out["peak_anon"] <= MAX_ANON_GB
        name = model.upper() if model == "mlp" else f"GRU W={a.window}"
        print(f"{name:<10} {out['peak_anon']:>7.2f} GB {run.peak_rss_mb / 1024:>7.2f} GB {out['file']:>8.2f} GB "
              f"{out['setup_s']:>7.0f}s {out['fit_s']:>6.0f}s")
    print(f"target: peak anonymous memory <= {MAX_ANON_GB:.0f} GB (the store: {gb:.1f} GB): {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1
