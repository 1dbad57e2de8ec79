"""Score a training run's checkpoint, or an ensemble of runs, on labelled data.

    python -m jsmp.evaluate --run RUN [--run RUN2 ...] [--data STORE|CSV|PARQUET] [--fold K] [--out DIR]

RUN is a run dir (its best checkpoint), a checkpoint file, or a multirun/CV dir standing for the runs
inside it; several are an ensemble averaged in probability (jsmp.predict.Predictor). By default the
rows are the run's own validation rows of its own store (for the folds of a CV: the last fold's,
which no fold trained on), so a single run's utility equals its logged val/utility for the
checkpoint's epoch. `--data` scores every row of another store or labelled train.csv/Parquet file;
`--fold K` takes CV fold K's validation days instead. Prints utility, AUC, accuracy, the oracle's
utility, rows and days; writes eval.json, daily_pnl.csv and cumulative_pnl.png into a new dir
(default `<first run>/eval-<n>`). 2024-layout runs (a run or an ensemble; its validation days, a fold's,
or `--data` served per time step) are scored by the R² of their first target instead, into eval.json,
daily_r2.csv and daily_r2.png (jsmp.evaluate.grouped). See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from jsmp import checkpoint
from jsmp.errors import UserError, exit_on_user_error
from jsmp.evaluate import grouped
from jsmp.evaluate.report import claim_out, daily_table, plot, write_report
from jsmp.evaluate.rows import choose_rows
from jsmp.evaluate.scoring import score
from jsmp.files import read_json
from jsmp.metrics import daily_pnl
from jsmp.predict.grouped import GroupedMember
from jsmp.predict.model import find_checkpoint
from jsmp.predict.predictor import Predictor, mean_proba
from jsmp.predict.rows import Member, actions
from jsmp.predict.steps import StepPredictor


def logged_score(member: Member | GroupedMember, key: str = "best/val/utility") -> tuple[float, int, str] | None:
    """(value, epoch, key) that `member`'s run logged in metrics.json under `key` (best/val/utility; best/val/r2
    for a 2024-layout run) for its checkpoint's epoch, if any."""
    epoch = checkpoint.load(member.checkpoint).get("epoch")
    m = read_json(member.run_dir / "metrics.json") or {}
    if epoch is not None and m.get("best_epoch") == epoch and key in m:
        return m[key], epoch, key
    return None


def lookback(predictor: Predictor) -> int:
    """Rows before the first scored one that a member's windows reach (crossing days)."""
    return max([m.window.length - 1 for m in predictor.members if m.window is not None and m.window.cross_days], default=0)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, action="append",
                   help="run dir, checkpoint file, or multirun/CV dir; repeat for an ensemble (mean probability)")
    p.add_argument("--data", help="a store dir or a labelled train.csv(.gz)/Parquet file (default: the run's own store)")
    p.add_argument("--fold", type=int, help="score CV fold K's validation days (the run's data.cv) instead")
    p.add_argument("--out", help="output dir: absent or empty (default: <first run>/eval-<n>)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    predictor = Predictor(args.run, threads=args.threads)
    members = predictor.members
    first = Path(args.run[0])
    run_dir = first if first.is_dir() else find_checkpoint(first)[0]
    if isinstance(predictor, StepPredictor):  # 2024-layout runs: R² of their target
        return grouped.evaluate(args, predictor, run_dir, logged_score)
    out = claim_out(args.out, run_dir, [Path(args.data)] if args.data else [])
    rows, notes = choose_rows(members, predictor.features, args.data, args.fold, lookback(predictor))
    if len(rows.weight) == 0:
        raise UserError(f"{rows.what}: no rows to score")

    probas = [q[rows.first :] for q in predictor.member_probas(rows.date, rows.x)]
    proba = mean_proba(probas)
    date = rows.scored_date
    s = score(date, rows.weight, rows.resp, proba)
    dates, pnl = daily_pnl(date, rows.weight, rows.resp, actions(proba))
    oracle = daily_pnl(date, rows.weight, rows.resp, rows.resp > 0)[1]
    ensemble = len(members) > 1
    # members by their index (run dir names of a multirun hold its overrides, commas included)
    member_pnl = {str(k): daily_pnl(date, rows.weight, rows.resp, actions(q))[1] for k, q in enumerate(probas)} if ensemble else {}
    member_scores = [score(date, rows.weight, rows.resp, q) for q in probas] if ensemble else []
    logged = logged_score(members[0]) if not ensemble and args.data is None and args.fold is None else None

    print(f"scored {predictor.describe()}")
    print(f"on {rows.what}: {s.rows:,} rows, {s.days} days")
    print(f"utility {s.utility:.4f}  (oracle {s.oracle:.4f}, {s.utility / s.oracle if s.oracle else 0:.1%} of it)  "
          f"AUC {s.auc:.4f}  accuracy {s.accuracy:.4f}  action=1 on {s.traded:.1%} of rows")
    if logged is not None:
        print(f"logged by training at epoch {logged[1]} (metrics.json {logged[2]}): {logged[0]:.4f}")
    for k, (m, ms) in enumerate(zip(members, member_scores)):
        print(f"  member {k}: utility {ms.utility:.4f}  AUC {ms.auc:.4f}  accuracy {ms.accuracy:.4f}  ({m.name})")
    for note in notes:
        print(note)
    summary = {"runs": [str(m.checkpoint) for m in members], "data": rows.what, **dataclasses.asdict(s),
               "logged_val_utility": None if logged is None else {"value": logged[0], "epoch": logged[1], "key": logged[2]},
               "members": [{"run": str(m.run_dir), **dataclasses.asdict(v)} for m, v in zip(members, member_scores)],
               "notes": notes}
    title = f"utility {s.utility:.1f} (oracle {s.oracle:.1f}) on {s.days} days"
    write_report(out, summary, daily_table(dates, pnl, oracle, member_pnl),
                 lambda path: plot(path, dates, pnl, oracle, member_pnl, title))
    print(f"wrote {out}/: eval.json, daily_pnl.csv, cumulative_pnl.png")
    return 0
