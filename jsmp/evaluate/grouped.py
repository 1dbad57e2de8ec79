"""`python -m jsmp.evaluate --run RUN` for a 2024-layout (grouped, regression) run: its predictions of its
first target on its own validation rows (the training DataModule's validation batches: rows.validation_batches),
the weighted zero-mean R² over them (what training logged as val/r2) and per date, into eval.json,
daily_r2.csv and daily_r2.png (report.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from jsmp.errors import UserError
from jsmp.evaluate.report import R2_CSV, R2_PNG, claim_out, plot_r2, r2_table, write_report
from jsmp.evaluate.rows import validation_batches
from jsmp.evaluate.scoring import DailyR2, daily_r2
from jsmp.predict.grouped import GroupedMember


def predictions(member: GroupedMember) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(date, y, pred, weight) (n,) of the run's validation rows: its target (data.targets[0]), the model's
    prediction of it (float32), the competition weight; and where the rows come from. The batches are those
    validation feeds the model (eval_rows_per_batch rows each, in store order)."""
    dm, val, what = validation_batches(member)
    step, n = dm.eval_rows_per_batch(), len(val)
    pred, y, weight, day = np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.int64)
    member.model.eval()
    with torch.inference_mode():
        for a in range(0, n, step):
            rows = np.arange(a, min(a + step, n))
            batch = val[rows]
            pred[rows] = member.model.predict_output(batch).numpy()
            y[rows] = batch["y"].reshape(len(rows), -1)[:, 0].numpy()
            weight[rows], day[rows] = batch["weight"].numpy(), batch["day"].numpy()
    return dm.store.days[day], y, pred, weight, what


def evaluate(args: argparse.Namespace, members: list, run_dir: Path, logged) -> int:
    """Score the one grouped run `members[0]` (args: jsmp.evaluate.cli's); `logged(member, key)` ->
    (value, epoch, key) that training logged for the checkpoint's epoch, or None. Prints the R² and writes the report."""
    if len(members) > 1:
        raise UserError(f"--run: {len(members)} runs of the 2024 layout; jsmp.evaluate scores one 2024-layout run at a time")
    for option in ("data", "fold"):
        if getattr(args, option) is not None:
            raise UserError(f"--{option}: a 2024-layout run is scored on its own validation days only (drop --{option}); "
                            f"to score it on other data, replay it: python -m jsmp.predict --run RUN --data TEST")
    member = members[0]
    out = claim_out(args.out, run_dir, [])
    date, y, pred, weight, what = predictions(member)
    if len(y) == 0:
        raise UserError(f"{what}: no rows to score")
    d: DailyR2 = daily_r2(date, y, pred, weight)
    target = member.targets[0]
    logged_r2 = logged(member, "best/val/r2")
    print(f"scored model {type(member.model).__name__} from {member.checkpoint}")
    print(f"on {what}: {len(y):,} rows, {len(d.dates)} days")
    print(f"r2 {d.r2:.4f}  (weighted zero-mean R² of {target}; per date: median {np.median(d.daily):.4f}, "
          f"> 0 on {int((d.daily > 0).sum())} of {len(d.dates)} dates)")
    if logged_r2 is not None:
        print(f"logged by training at epoch {logged_r2[1]} (metrics.json {logged_r2[2]}): {logged_r2[0]:.4f}")
    summary = {"runs": [str(member.checkpoint)], "data": what, "target": target, "r2": d.r2, "rows": len(y),
               "days": len(d.dates),
               "logged_val_r2": None if logged_r2 is None else dict(zip(("value", "epoch", "key"), logged_r2))}
    title = f"R² of {target} {d.r2:.4f} on {len(d.dates)} validation dates"
    write_report(out, summary, r2_table(d), lambda path: plot_r2(path, d, title), (R2_CSV, R2_PNG))
    print(f"wrote {out}/: eval.json, {R2_CSV}, {R2_PNG}")
    return 0
