"""`python -m jsmp.bench ingest [--rows N [N ...]]`: `jsmp.data ingest` vs `pandas.read_csv` to float32.

For each size, a Kaggle-layout CSV is written once by the generator (cached in
`cache_dir()/ingest/`), then two child processes each read it: (a) the way users do it now,
`pandas.read_csv(path).astype('float32')` of the whole file; (b) `jsmp.data.ingest` into a
fresh store. Reported: MB/s of CSV, peak RSS, and the ratios jsmp/pandas (targets: throughput
>= 0.8x, peak RSS <= 0.25x and flat as the file grows).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from jsmp.bench.common import ChildRun, cache_dir, run_child
from jsmp.data.synthetic import SynthSpec, write_csv

ROWS_PER_DAY = SynthSpec.real_size().rows_per_day  # the real file's mean

PANDAS = "import numpy as np, pandas as pd; x = pd.read_csv({path!r}).astype(np.float32); print(len(x))"
JSMP = "from jsmp.data.__main__ import run_and_exit; run_and_exit(['ingest', {path!r}, '--store', {store!r}, '--force'])"


def kaggle_csv(rows: int) -> Path:
    """The cached generator CSV of about `rows` rows (whole days of ROWS_PER_DAY rows on average)."""
    spec = SynthSpec(days=max(1, round(rows / ROWS_PER_DAY)), rows_per_day=min(rows, ROWS_PER_DAY), seed=0)
    path = cache_dir() / "ingest" / f"{spec.name}.csv"
    return path if path.is_file() else write_csv(spec, path)


def measure(rows: int, repeat: int) -> dict:
    """Each reader `repeat` times, alternating: the fastest wall time and the highest peak RSS."""
    path = kaggle_csv(rows)
    out = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="ingest-store-"))
    runs: dict[str, list[ChildRun]] = {"pandas": [], "jsmp": []}
    try:
        for _ in range(repeat):
            runs["pandas"].append(run_child(PANDAS.format(path=str(path))))
            runs["jsmp"].append(run_child(JSMP.format(path=str(path), store=str(out / "store"))))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    best = {k: (min(r.wall_s for r in v), max(r.peak_rss_mb for r in v)) for k, v in runs.items()}
    return {"rows": int(runs["pandas"][0].stdout.split()[-1]), "mb": path.stat().st_size / 1e6, **best}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.bench ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[200_000, 800_000], help="CSV sizes in rows (default: 200000 800000)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each reader, alternating; the fastest counts (default 2)")
    args = p.parse_args(argv)
    print(f"{'rows':>9} {'CSV MB':>8} | {'pandas MB/s':>11} {'RSS MB':>8} | {'jsmp MB/s':>9} {'RSS MB':>8} | {'speed x':>7} {'RSS x':>6}")
    for rows in args.rows:
        r = measure(rows, max(1, args.repeat))
        (pd_s, pd_mb), (js_s, js_mb) = r["pandas"], r["jsmp"]
        print(f"{r['rows']:>9,} {r['mb']:>8.0f} | {r['mb'] / pd_s:>11.1f} {pd_mb:>8.0f} | "
              f"{r['mb'] / js_s:>9.1f} {js_mb:>8.0f} | {pd_s / js_s:>7.2f} {js_mb / pd_mb:>6.2f}", flush=True)
    print("speed x = jsmp throughput / pandas (target >= 0.8); RSS x = jsmp peak RSS / pandas (target <= 0.25)")
    return 0
