"""`python -m jsmp.evaluate` for 2024-layout (grouped, regression) runs: the R² of the first target
(weighted zero-mean, what training logs as val/r2) over the scored rows and per date, into eval.json,
daily_r2.csv and daily_r2.png (report.py). A run, or an ensemble (the members' mean prediction,
jsmp.predict.predictor.mean_proba: the StepPredictor's arithmetic), is scored on

- its own validation rows (default): the training DataModule's validation batches (rows.validation_batches),
  the same for every member of an ensemble;
- `--fold K`: CV fold K's validation days (the first run's data.cv) of its store, as the run's
  preprocess.json makes their inputs (the DataModule's batches, fill values not recomputed);
- `--data PATH`: a labelled 2024 source (grouped store, train.parquet-layout file or dir) served per time
  step through the frozen StepPredictor by jsmp.predict.replay (lags from the source's previous date),
  its `is_scored` rows (all without that column); with `--fold K`, the fold's dates of the source.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jsmp.batches.datamodule import batches
from jsmp.batches.days import DayBatches
from jsmp.errors import UserError
from jsmp.evaluate.report import R2_CSV, R2_PNG, claim_out, plot_r2, r2_table, write_report
from jsmp.evaluate.rows import config, span, split_of, validation_batches
from jsmp.evaluate.scoring import daily_r2
from jsmp.predict.days import day_sample_rows
from jsmp.predict.grouped import GroupedMember
from jsmp.predict.predictor import mean_proba
from jsmp.predict.replay import read_days, replay
from jsmp.predict.steps import StepPredictor


@dataclass
class Scored:
    """Labelled rows with each member's prediction of the target: date (n,) int64, y and weight (n,)
    float32, preds one (n,) float32 per member (member order); `what`: where the rows come from;
    notes for the report."""

    date: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    preds: list[np.ndarray]
    what: str
    notes: list[str] = field(default_factory=list)


def predictions(member: GroupedMember, dm, val) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(date, y, pred, weight) (n,) of `val` (RowBatches of `dm`'s store): the target (data.targets[0]), the
    member's prediction of it (float32), the competition weight; batches of eval_rows_per_batch rows in store order."""
    if isinstance(val, DayBatches):  # a day-sample run: its outputs read at each row's cell
        day, y, pred, weight = day_sample_rows(member.model, val)
        return dm.store.days[day], y, pred, weight
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
    return dm.store.days[day], y, pred, weight


def same_rows(members: list[GroupedMember], sets: list[tuple]) -> None:
    """Refuse (one line, the first difference) an ensemble whose members' scored rows differ: another store, or
    dates that one member validates on and member 0 does not (or the reverse). `sets`: each member's (dm, val)."""
    a, va = sets[0]
    for k, (m, (b, vb)) in enumerate(zip(members, sets)):
        if b.store.path.resolve() != a.store.path.resolve():
            raise UserError(f"--run: member {k} ({m.name}) was trained on store {b.store.path}, member 0 ({members[0].name}) "
                            f"on store {a.store.path}; an ensemble is scored on rows every member scores: pass --data SOURCE")
        if not np.array_equal(vb.rows, va.rows):
            da, db = (np.unique(d.store.days[d.store.row_day_index()[v.rows]]) for d, v in ((a, va), (b, vb)))
            date = int(np.setxor1d(da, db)[0])
            raise UserError(f"--run: member {k} ({m.name}) validates on dates {int(db[0])}..{int(db[-1])}, member 0 "
                            f"({members[0].name}) on {int(da[0])}..{int(da[-1])} (date {date} is member {0 if date in da else k}'s "
                            f"only); an ensemble is scored on rows every member scores: pass --fold K (a CV fold's validation "
                            f"days) or --data SOURCE")


def in_sample(members: list[GroupedMember], trained: list[np.ndarray], dates: np.ndarray) -> list[str]:
    """Notes naming the members whose training dates `trained` include some of the scored `dates`."""
    return [f"note: member {k} ({m.name}) trained on {n} of these days (in-sample for it)"
            for k, (m, t) in enumerate(zip(members, trained)) if (n := len(np.intersect1d(t, dates)))]


def store_rows(members: list[GroupedMember], fold: int | None) -> Scored:
    """The members' own validation rows, or (`fold`) fold K's validation days of their store, with each one's predictions."""
    sets = [validation_batches(m) for m in members]  # each checks that its store still makes its preprocess.json
    dm0, _, what = sets[0]
    if fold is not None:
        index = split_of(config(members[0].run_dir), dm0.store.days, fold, str(members[0].run_dir / "config.yaml")).val
        what = f"store {dm0.store_path}, fold {fold} validation days ({span(dm0.store.days, index)})"
        sets = [(dm, DayBatches(dm.val_set.store, index, dm.val_set.store.day_rows(index), dm.spec, dm.labels, dm.val_set.lags) if dm.spec.day else
                 batches(dm.val_set.store, dm.store.day_rows(index), dm.spec, dm.labels, scoring=True,
                         lags=dm.val_set.lags), what) for dm, _, _ in sets]
    same_rows(members, [(dm, val) for dm, val, _ in sets])
    scored = [predictions(m, dm, val) for m, (dm, val, _) in zip(members, sets)]
    date, y, _, weight = scored[0]
    notes = in_sample(members, [dm.store.days[dm.split.train] for dm, _, _ in sets], np.unique(date))
    return Scored(date, y, weight, [s[2] for s in scored], what, notes)


def served_rows(predictor: StepPredictor, data: Path, fold: int | None) -> Scored:
    """`data` served per time step through the frozen `predictor` (jsmp.predict.replay, lags derived from the
    source's previous date), each member's predictions kept; its is_scored rows (with `fold`: of that fold's dates)."""
    target, labels = predictor.target, []

    def labelled(days):
        for day in days:
            if target not in day.responders:
                raise UserError(f"--data {data}: no {target} column, so no labels to score against; expected a labelled "
                                f"2024 source (a grouped store, or train.parquet's layout); for test files use python -m jsmp.predict")
            labels.append((np.full(len(day), day.date, np.int64), day.responders[target], day.weight, day.is_scored))
            yield day

    total, days = read_days(data, predictor.features, predictor.feature_limit)
    members, kept = predictor.members, []
    with tempfile.TemporaryDirectory() as tmp:  # the submission replay writes is not part of the report
        replay(predictor, (total, labelled(days)), Path(tmp) / "submission.csv", predictor.features,
               on_step=lambda: kept.append(predictor.member_outputs))
    if not labels:
        raise UserError(f"--data {data}: no rows to score")
    date, y, weight, scored = (np.concatenate(c) for c in zip(*labels))
    dates = np.unique(date)
    index = np.arange(len(dates)) if fold is None else \
        split_of(config(members[0].run_dir), dates, fold, str(members[0].run_dir / "config.yaml")).val
    keep = scored & np.isin(date, dates[index])
    what = "all dates" if fold is None else f"fold {fold} validation days"
    preds = [np.concatenate([step[k] for step in kept])[keep] for k in range(len(members))]
    return Scored(date[keep], y[keep], weight[keep], preds, f"{data}, {what} ({span(dates, index)}), served per time step")


def evaluate(args: argparse.Namespace, predictor: StepPredictor, run_dir: Path, logged) -> int:
    """Score `predictor`'s runs (args: jsmp.evaluate.cli's); `logged(member, key)` -> (value, epoch, key) that
    training logged for the checkpoint's epoch, or None. Prints the R² and writes the report."""
    members = predictor.members
    data = Path(args.data) if args.data is not None else None
    if data is not None and not data.exists():
        raise UserError(f"--data {data}: no such file or store")
    out = claim_out(args.out, run_dir, [data] if data is not None else [])
    s = served_rows(predictor, data, args.fold) if data is not None else store_rows(members, args.fold)
    if len(s.y) == 0:
        raise UserError(f"{s.what}: no rows to score")
    d = daily_r2(s.date, s.y, mean_proba(s.preds), s.weight)
    ensemble, target = len(members) > 1, predictor.target
    own = data is None and args.fold is None  # each member's own validation rows: its logged val/r2 applies
    logs = [logged(m, "best/val/r2") if own else None for m in members]
    per_member = [daily_r2(s.date, s.y, p, s.weight) for p in s.preds] if ensemble else []
    print(f"scored {predictor.describe()}")
    print(f"on {s.what}: {len(s.y):,} rows, {len(d.dates)} days")
    print(f"r2 {d.r2:.4f}  (weighted zero-mean R² of {target}; per date: median {np.median(d.daily):.4f}, "
          f"> 0 on {int((d.daily > 0).sum())} of {len(d.dates)} dates)")
    if not ensemble and logs[0] is not None:
        print(f"logged by training at epoch {logs[0][1]} (metrics.json {logs[0][2]}): {logs[0][0]:.4f}")
    for k, (m, md, lg) in enumerate(zip(members, per_member, logs)):
        print(f"  member {k}: r2 {md.r2:.4f}" + (f"  (logged at epoch {lg[1]}: {lg[0]:.4f})" if lg else "") + f"  ({m.name})")
    for note in s.notes:
        print(note)

    def as_dict(lg):
        return None if lg is None else dict(zip(("value", "epoch", "key"), lg))

    summary = {"runs": [str(m.checkpoint) for m in members], "data": s.what, "target": target, "r2": d.r2,
               "rows": len(s.y), "days": len(d.dates), "logged_val_r2": None if ensemble else as_dict(logs[0]),
               "members": [{"run": str(m.run_dir), "r2": md.r2, "logged_val_r2": as_dict(lg)}
                           for m, md, lg in zip(members, per_member, logs)],
               "notes": s.notes}
    title = f"R² of {target} {d.r2:.4f} on {len(d.dates)} dates"
    write_report(out, summary, r2_table(d, {str(k): md.daily for k, md in enumerate(per_member)}),
                 lambda path: plot_r2(path, d, title), (R2_CSV, R2_PNG))
    print(f"wrote {out}/: eval.json, {R2_CSV}, {R2_PNG}")
    return 0
