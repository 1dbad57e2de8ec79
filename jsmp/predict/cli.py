"""Online inference: replay a test file row by row, as the competition's scoring API did.

    python -m jsmp.predict --run RUN_DIR [--run RUN_DIR2 ...] --data TEST.csv --out submission.csv [--batch]

RUN_DIR is a training run dir (its best checkpoint is used), a checkpoint file inside one, or a
multirun/CV dir standing for the runs inside it; several runs are an ensemble, averaged in
probability before the 0.5 threshold. A run dir's `config.yaml` names the model class and its
`preprocess.json` holds the features, NaN fill and window training used (each member its own). The checkpoint is loaded weights-only. Both
modes read the file through jsmp.data.reader, checked as ingest checks a file, so a bad row
anywhere stops either mode with the same one-line error and no output. `--batch` scores the
whole file (or a store directory) at once and gives the same actions. `--out` is replaced
only when it is absent or a submission (first line `ts_id,action`), never the input.
See docs/inference.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from jsmp.errors import exit_on_user_error
from jsmp.predict.predictor import Predictor
from jsmp.predict.submission import claim_out, require_file, run_batch, run_online


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, action="append",
                   help="training run dir, a checkpoint file in one, or a multirun/CV dir; repeat for an ensemble")
    p.add_argument("--data", required=True,
                   help="test CSV(.gz) or Parquet file in the example_test.csv layout (with --batch also a store dir)")
    p.add_argument("--out", default="submission.csv",
                   help="where to write ts_id,action: absent, or a submission to replace (default: %(default)s)")
    p.add_argument("--batch", action="store_true", help="score all rows at once (same actions as row by row)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s, the fastest for one row)")
    args = p.parse_args(argv)
    data = Path(args.data)
    if not (args.batch and data.is_dir()):
        require_file(data)
    out = claim_out(args.out, data)
    predictor = Predictor(args.run, threads=args.threads)
    t0 = time.perf_counter()
    if args.batch:
        actions = run_batch(predictor, data, out)
        wall = time.perf_counter() - t0
        speed = f"batch mode, {len(actions) / wall:,.0f} rows/s ({wall:.2f} s)"
    else:
        actions, latency, cpu = run_online(predictor, data, out)
        p50, p99 = np.percentile(latency, [50, 99]) * 1e3
        per = "per row" if len(predictor.members) == 1 else f"of the {len(predictor.members)}-model ensemble per row"
        speed = (f"row by row, latency {per} p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {latency.max() * 1e3:.3f} ms "
                 f"(CPU time p99 {np.percentile(cpu, 99) * 1e3:.3f} ms)")
    print(f"{len(actions):,} rows -> {out}: {speed}; action=1 on {actions.mean():.1%} of rows "
          f"({predictor.describe()})")
    return 0
