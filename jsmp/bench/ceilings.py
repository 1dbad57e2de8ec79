"""`python -m jsmp.bench ceilings`: the utilities a model can and cannot reach on synthetic data.

On the validation rows of a split (by default the holdout of `python train.py`; `--fold` for a
purged CV fold as `data.fold`, `--min-date` as `data.min_date`): the
oracle (resp > 0), the ideal (the hidden state's sign, `val/utility_ideal`: no model sees
it), and the Bayes-optimal rules on what a model does see (jsmp.data.synthetic.posterior_mean):
a row's own features (the ceiling of the MLP and AE-MLP) and the last `--window` rows (the
ceiling of a sequence model with that window). Each as a fraction of the ideal. See docs/results.md.

`--layout rtmdf`: the 2024 layout's ceilings on the validation dates (the last `--val-frac`), the weighted R²
of responder_6 given the row, its instrument's history, every instrument's (the ideal), each also with lags
(jsmp.data.synthetic_rtmdf.ceilings; `--market`, `--sectors`, `--drift` as data.synthetic's).
"""

from __future__ import annotations

import argparse

import numpy as np

from jsmp.batches.splits import choose
from jsmp.data.synthetic import SynthSpec, iter_days, posterior_mean, row_evidence
from jsmp.data.synthetic_rtmdf import RtmdfSpec
from jsmp.data.synthetic_rtmdf import ceilings as rtmdf_ceilings
from jsmp.errors import UserError
from jsmp.metrics import utility_score


def ceilings(spec: SynthSpec, window: int = 32, val_frac: float = 0.2, gap_days: int = 5, fold: int | None = None,
             folds: int = 5, cv_gap_days: int = 31, min_date: int | None = None) -> dict:
    """{"rows", "days", and the utilities "ideal", "oracle", "row rule", "window rule"} on the validation
    rows of `spec`'s split, chosen as the DataModule does with these `data.*` settings (generated day
    by day; no store needed)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("b", "p", "date", "weight", "resp", "ideal")}
    for day in iter_days(spec):
        b, p = row_evidence(day["x"], spec)
        for k, v in (("b", b), ("p", p), *((k, day[k]) for k in ("date", "weight", "resp", "ideal"))):
            parts[k].append(v)
    d = {k: np.concatenate(v) for k, v in parts.items()}
    split = choose(np.arange(spec.days), 1.0, "end", {"val_frac": val_frac, "gap_days": gap_days},
                   {"folds": folds, "gap_days": cv_gap_days}, fold, min_date)
    val = np.isin(d["date"], split.val)
    actions = {
        "ideal": d["ideal"],
        "oracle": d["resp"] > 0,
        "row rule": posterior_mean(d["b"], d["p"], 1) > 0,
        "window rule": posterior_mean(d["b"], d["p"], window) > 0,
    }
    out = {"rows": int(val.sum()), "days": len(np.unique(d["date"][val]))}
    for name, a in actions.items():
        out[name] = utility_score(d["date"][val], d["weight"][val], d["resp"][val], a[val])
    return out


RTMDF_LABELS = {"row": "row (own features: MLP)", "instrument": "instrument (own history: any per-instrument model)",
                "ideal": "ideal (all instruments: the joint filter)"}


def rtmdf_main(args: argparse.Namespace) -> int:
    """Print the 2024 layout's ceilings (`--layout rtmdf`), each without and with lags and as a fraction of the ideal."""
    given = {k: getattr(args, k) for k in ("days", "times", "symbols", "market", "sectors", "drift") if getattr(args, k) is not None}
    try:
        spec = RtmdfSpec(seed=args.seed, **given)
    except ValueError as e:
        raise UserError(str(e)) from None
    c = rtmdf_ceilings(spec, args.val_frac)
    print(f"{spec.name}: {c['rows']:,} validation rows (the last {args.val_frac:g} of the dates); weighted R² of responder_6")
    print(f"  {'given':<52} {'R²':>8} {'with lags':>10}  of the ideal")
    for name, label in RTMDF_LABELS.items():
        print(f"  {label:<52} {c[name]:>8.4f} {c[name + '_lags']:>10.4f}  {c[name] / c['ideal']:.2f}")
    print(f"  {'ideal, each date afresh (a day sample: model=axial)':<52} {c['day']:>8.4f} {'':>10}  {c['day'] / c['ideal']:.2f}")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m jsmp.bench ceilings", description=__doc__.splitlines()[0])
    ap.add_argument("--layout", choices=["jsmp", "rtmdf"], default="jsmp", help="which generator: 2021 (jsmp) or 2024 (rtmdf)")
    ap.add_argument("--window", type=int, default=32, help="rows the window rule sees (data.window.length)")
    ap.add_argument("--days", type=int, default=None, help="default: SynthSpec's (jsmp), RtmdfSpec's (rtmdf)")
    ap.add_argument("--rows-per-day", type=int, default=SynthSpec.rows_per_day)
    ap.add_argument("--times", type=int, default=None, help="rtmdf: time_ids per date")
    ap.add_argument("--symbols", type=int, default=None, help="rtmdf: instruments")
    ap.add_argument("--market", type=float, default=None, help="rtmdf: data.synthetic.market")
    ap.add_argument("--sectors", type=int, default=None, help="rtmdf: data.synthetic.sectors")
    ap.add_argument("--drift", type=float, default=None, help="rtmdf: data.synthetic.drift")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-frac", type=float, default=0.2, help="data.split.val_frac")
    ap.add_argument("--gap-days", type=int, default=5, help="data.split.gap_days")
    ap.add_argument("--fold", type=int, default=None, help="data.fold: a purged CV fold instead of the holdout")
    ap.add_argument("--folds", type=int, default=5, help="data.cv.folds")
    ap.add_argument("--cv-gap-days", type=int, default=31, help="data.cv.gap_days")
    ap.add_argument("--min-date", type=int, default=None, help="data.min_date")
    args = ap.parse_args(argv)
    if args.layout == "rtmdf":
        return rtmdf_main(args)
    if only := [f"--{k}" for k in ("times", "symbols", "market", "sectors", "drift") if getattr(args, k) is not None]:
        raise UserError(f"{', '.join(only)}: only with --layout rtmdf")
    spec = SynthSpec(days=SynthSpec.days if args.days is None else args.days, rows_per_day=args.rows_per_day, seed=args.seed)
    c = ceilings(spec, args.window, args.val_frac, args.gap_days, args.fold, args.folds, args.cv_gap_days, args.min_date)
    where = (f"holdout val_frac {args.val_frac}, gap {args.gap_days}" if args.fold is None else
             f"fold {args.fold} of {args.folds}, gap {args.cv_gap_days}")
    if args.min_date is not None:
        where += f", min_date {args.min_date}"
    print(f"{spec.name}: {c['rows']:,} validation rows on {c['days']} days ({where})")
    labels = {"ideal": "ideal (hidden state; unreachable)", "oracle": "oracle (resp > 0)",
              "row rule": "row rule (own features: MLP, AE-MLP)",
              "window rule": f"window rule (last {args.window} rows: LSTM, W={args.window})"}
    for name, label in labels.items():
        print(f"  {label:<46} {c[name]:>9.1f}  {c[name] / c['ideal']:.2f} of the ideal")
    return 0
