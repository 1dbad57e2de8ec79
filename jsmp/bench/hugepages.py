"""`python -m jsmp.bench hugepages`: training throughput and peak memory with and without huge pages.

For the LSTM (windows) and the MLP (rows), `Trainer.fit` runs a fixed number of steps in
child processes, alternately with THP_MEM_ALLOC_ENABLE=0 (PyTorch's default) and =1 (jsmp's
default, see jsmp/allocator.py). Printed per model and setting: samples/s (best of `--repeat`
children), page faults per step, peak RSS (the largest of its children); then the speed-up
and the peak RSS ratio (on / off).
"""

from __future__ import annotations

import argparse
import json

from jsmp.allocator import ENV
from jsmp.bench.common import add_store_arguments, run_child, synthetic_store


def fit_child(store: str, model: str, steps: int, warmup: int, batch_size: int, window: int) -> None:
    """(In the child) fit `model` ('lstm' or 'mlp') for `steps` steps; print samples/s, faults/step
    and whether huge pages were in effect, as JSON."""
    import resource
    import warnings

    warnings.filterwarnings("ignore")
    from jsmp.allocator import huge_pages_in_effect
    from jsmp.bench.common import bench_data
    from jsmp.bench.train import bench_model, fit_rate
    from jsmp.models.lstm import LSTM
    from jsmp.models.mlp import MLP

    model_class = LSTM if model == "lstm" else MLP
    data = bench_data(store, model_class, batch_size, window)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rate = fit_rate(bench_model(model_class, data), data, steps, warmup, batch_size)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"rate": rate, "faults_per_step": faults / steps, "huge_pages": huge_pages_in_effect()}))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.bench hugepages", description=__doc__.splitlines()[0])
    add_store_arguments(p)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--lstm-steps", type=int, default=8)
    p.add_argument("--mlp-steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2, help="children per model and setting")
    a = p.parse_args(argv)
    store = str(synthetic_store(a.days, a.rows_per_day))
    print(f"store {store}; batch {a.batch_size}; LSTM window {a.window}")
    print(f"{'model':<12} {'huge pages':<10} {'samples/s':>10} {'faults/step':>12} {'peak RSS':>9}")
    for model, steps in (("lstm", a.lstm_steps), ("mlp", a.mlp_steps)):
        best: dict[str, dict] = {}
        for _ in range(a.repeat):
            for setting in ("0", "1"):
                run = run_child(f"from jsmp.bench.hugepages import fit_child; fit_child({store!r}, {model!r}, {steps}, "
                                f"{a.warmup}, {a.batch_size}, {a.window})", env={ENV: setting, "PYTHONWARNINGS": "ignore"})
                out = json.loads(run.stdout.strip().splitlines()[-1])
                if out["huge_pages"] != (setting == "1"):
                    print(f"warning: {ENV}={setting} but huge pages in effect: {out['huge_pages']} "
                          "(the kernel's transparent_hugepage mode may be [never])")
                b = best.setdefault(setting, {"rate": 0.0, "rss_gb": 0.0})
                if out["rate"] > b["rate"]:
                    b.update(rate=out["rate"], faults_per_step=out["faults_per_step"])
                b["rss_gb"] = max(b["rss_gb"], run.peak_rss_mb / 1024)
        name = f"LSTM W={a.window}" if model == "lstm" else "MLP"
        for setting, label in (("0", "off"), ("1", "on")):
            b = best[setting]
            print(f"{name:<12} {label:<10} {b['rate']:>10.0f} {b['faults_per_step']:>12.0f} {b['rss_gb']:>6.2f} GB")
        print(f"{name:<12} on / off: speed {best['1']['rate'] / best['0']['rate']:.2f}x, "
              f"peak RSS {best['1']['rss_gb'] / best['0']['rss_gb']:.2f}x")
    return 0
