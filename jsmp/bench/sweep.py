"""`python -m jsmp.bench sweep`: the same MLP search (conf/hparams_search/mlp.yaml, same seed) on
synthetic data, run as `python tune.py` children:

    pruning off, n_jobs=1   (hydra.sweeper.pruner=null: every trial runs all its epochs)
    pruning on,  n_jobs=1   once per --pruners option (default: median, the search's own,
                            and successive_halving)
    pruning on,  n_jobs=2   (the first pruner; two worker processes on one SQLite study)

Early stopping is off in all three, so the pruner is the only thing that ends a trial early,
and `max_failure_rate` is 0.5 so that every run has all its trials (the seed's lr range makes
RMSprop diverge above ~5e-2: those trials fail fast). The default data, 150 days x 800 rows,
is the smallest where val/utility is rarely clipped to 0 and a trial's epochs, not its
start-up, take most of its time, as on the real data; at 80 x 300 most epochs score 0 and
the search is noise.
Prints each run's wall time, best val/utility_best and trial states, then the ratios:
off/on wall time (target >= 2), best on/off (target within 10%), n_jobs 1/2 wall time.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import optuna

import jsmp
from jsmp.bench.common import cache_dir, run_child
from jsmp.files import claim_destination

ROOT = Path(jsmp.__file__).resolve().parents[1]


def run_sweep(name: str, args: argparse.Namespace, *overrides: str) -> dict:
    """One tune.py run in a fresh sweep dir; its wall time and what its study holds."""
    sweep_dir = claim_destination(cache_dir() / "sweeps" / name, "JSMP_BENCH_DIR", "benchmark sweep (optuna.db)",
                                  lambda p: (p / "optuna.db").is_file(), directory=True)
    shutil.rmtree(sweep_dir, ignore_errors=True)  # a sweep this benchmark ran before: it starts afresh
    argv = [
        "tune.py", "model=mlp", f"data.data_dir={cache_dir()}", f"data.synthetic.days={args.days}",
        f"data.synthetic.rows_per_day={args.rows}", "logger=none", "callbacks.progress_bar=null",
        "callbacks.model_checkpoint=null", "callbacks.early_stopping=null", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
        f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.sampler.seed={args.seed}",
        f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.max_failure_rate=0.5", *overrides,
    ]
    code = (f"import os, runpy, sys; os.chdir({str(ROOT)!r}); sys.argv = {argv!r}; "
            "runpy.run_path('tune.py', run_name='__main__')")
    run = run_child(code)
    study = optuna.load_study(study_name="mlp", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    states = [t.state.name.lower() for t in study.trials]
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    return {"name": name, "wall_s": run.wall_s, "best": study.best_value, "epochs": epochs,
            "states": {s: states.count(s) for s in sorted(set(states))}}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m jsmp.bench sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--days", type=int, default=150, help="synthetic days (default 150)")
    ap.add_argument("--rows", type=int, default=800, help="synthetic rows per day (default 800)")
    ap.add_argument("--seed", type=int, default=1234, help="the sampler's seed")
    ap.add_argument("--pruners", default="median,successive_halving",
                    help="hydra/sweeper/pruner options to compare with no pruning (comma-separated)")
    args = ap.parse_args(argv)
    pruners = args.pruners.split(",")

    # first a tiny run so the synthetic store exists before anything is timed
    run_sweep("warmup", argparse.Namespace(**{**vars(args), "trials": 1}), "trainer.max_epochs=1")
    off = run_sweep("pruning-off", args, "hydra.sweeper.pruner=null")
    on = [run_sweep(f"pruning-{p}", args, f"hydra/sweeper/pruner={p}") for p in pruners]
    two = run_sweep(f"pruning-{pruners[0]}-2jobs", args, f"hydra/sweeper/pruner={pruners[0]}", "hydra.sweeper.n_jobs=2")
    print(f"MLP search, {args.trials} trials, synthetic {args.days} days x {args.rows} rows, seed {args.seed}")
    for r in (off, *on, two):
        print(f"  {r['name']:32s} {r['wall_s']:7.1f} s  best val/utility_best {r['best']:8.3f}  "
              f"epochs run {r['epochs']:4d}  trials {r['states']}")
    for p, r in zip(pruners, on):
        print(f"{p}: {off['wall_s'] / r['wall_s']:.2f}x faster than no pruning (target >= 2; "
              f"{off['epochs'] / r['epochs']:.2f}x fewer epochs, which no other load on the machine sways), "
              f"best {r['best'] / off['best']:.3f} of the unpruned best (target >= 0.9)")
    print(f"n_jobs=2 vs 1 ({pruners[0]}): {on[0]['wall_s'] / two['wall_s']:.2f}x faster")
    return 0
