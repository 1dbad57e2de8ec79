"""Online inference: replay a test file row by row, as the competition's scoring API did.

    python -m jsmp.predict --run RUN_DIR [--run RUN_DIR2 ...] --data TEST.csv --out submission.csv [--batch]
    python -m jsmp.predict --run RUN_2024 --data test.parquet [--lags lags.parquet] [--online-learning ...]

RUN_DIR is a training run dir (its best checkpoint is used), a checkpoint file inside one, or a
multirun/CV dir standing for the runs inside it; several runs are an ensemble, averaged in
probability before the 0.5 threshold. A run dir's `config.yaml` names the model class and its
`preprocess.json` holds the features, NaN fill and window training used (each member its own). The checkpoint is loaded weights-only. Both
modes read the file through jsmp.data.reader, checked as ingest checks a file, so a bad row
anywhere stops either mode with the same one-line error and no output. `--batch` scores the
whole file (or a store directory) at once and gives the same actions. `--out` is replaced
only when it is absent or a submission (first line `ts_id,action`), never the input.
A run trained on the 2024 layout (preprocess.json `group`) is replayed per time_id instead
(jsmp.predict.replay): `row_id,<its first target>` lines (`row_id,responder_6`), lags from `--lags` or the source's responders,
`--online-learning` fine-tuning on each date's answers. See docs/inference.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from jsmp.errors import UserError, exit_on_user_error
from jsmp.inputs.spec import InputSpec
from jsmp.predict.model import member_runs
from jsmp.predict.model import run_spec as read_spec
from jsmp.predict.online import OnlineConfig, summary
from jsmp.predict.predictor import Predictor
from jsmp.predict.replay import LagsFile, read_days, replay
from jsmp.predict.submission import claim_out, require_file, run_batch, run_online

ONLINE = {"online_steps": "steps", "online_lr": "lr", "online_budget": "budget_s"}  # option -> OnlineConfig field


def number_options(argv: list[str]) -> list[str]:
    """argv with `--online-X VALUE` joined into `--online-X=VALUE`, so that a negative value such as -1e-3
    (which argparse takes for an option) reaches online_settings' check."""
    options, out, i = {f"--{o.replace('_', '-')}" for o in ONLINE}, [], 0
    while i < len(argv):
        joined = argv[i] in options and i + 1 < len(argv) and not argv[i + 1].startswith("--")
        out.append(f"{argv[i]}={argv[i + 1]}" if joined else argv[i])
        i += 2 if joined else 1
    return out


def add_online_options(parser, learning: str) -> None:
    """`--online-learning` (help: `learning`) and its settings, as `jsmp predict` and `jsmp kaggle bundle` take them."""
    parser.add_argument("--online-learning", action="store_true", help=learning)
    parser.add_argument("--online-steps", help="optimizer steps per date, 0..1000 (default: OnlineConfig's)")
    parser.add_argument("--online-lr", help="learning rate of the fine-tune, in (0, 1] (default: OnlineConfig's)")
    parser.add_argument("--online-budget", help="a guard: seconds a date's fine-tune may take before it stops; the "
                                                "summary counts the dates that hit it (default: OnlineConfig's)")


def online_config(args: argparse.Namespace) -> OnlineConfig | None:
    """The OnlineConfig the options ask for, None without --online-learning; a setting given without it, or a
    bad value, is one line naming the option."""
    if any(getattr(args, o) is not None for o in ONLINE) and not args.online_learning:
        given = next(o for o in ONLINE if getattr(args, o) is not None).replace("_", "-")
        raise UserError(f"--{given}: needs --online-learning")
    settings = online_settings(args)
    return OnlineConfig(**settings) if args.online_learning else None


def online_settings(args: argparse.Namespace) -> dict:
    """The OnlineConfig fields given as options, each checked (a bad value: one line naming the option)."""
    given = {}
    for option, field in ONLINE.items():
        if (raw := getattr(args, option)) is None:
            continue
        try:
            value = (int if field == "steps" else float)(raw)
        except ValueError:
            value = raw
        OnlineConfig.check(field, value, f"--{option.replace('_', '-')} {raw}")
        given[field] = value
    return given


def run_spec(run: str) -> InputSpec:
    """The preprocess.json of `run`'s first member run (grouped or not, its features)."""
    return read_spec(member_runs(run)[0])


def grouped_spec(run: str) -> InputSpec | None:
    """run_spec(run) when it is a 2024-layout (grouped) run; None otherwise, also when it cannot be read:
    the 2021 path then says why, after checking --data and --out as it always did."""
    try:
        spec = run_spec(run)
    except UserError:
        return None
    return spec if spec.group is not None else None


def replay_2024(args: argparse.Namespace, data: Path, spec: InputSpec, online: OnlineConfig | None) -> int:
    """The replay path of a grouped (2024-layout) run: per time_id, into row_id,<target> lines."""
    if args.batch:
        raise UserError(f"--batch: {args.run[0]} was trained on the 2024 layout, which is replayed per time_id; drop --batch")
    lags = Path(args.lags) if args.lags is not None else None
    if lags is not None and not lags.exists():
        raise UserError(f"--lags {lags}: no such file or directory; expected a lags.parquet (date_id, time_id, symbol_id, responder_N_lag_1)")
    if not data.exists():
        raise UserError(f"--data {data}: no such file or directory; expected a 2024-layout Parquet file or directory, or a grouped store")
    out = claim_out(args.out, data, lags)
    features = spec.store_features
    source, lag_file = read_days(data, features, spec.feature_limit), LagsFile(lags) if lags is not None else None  # headers checked here
    predictor = Predictor(args.run, online=online, threads=args.threads)
    done = replay(predictor, source, out, features, lag_file, online is not None)
    learned = f"; {summary([m.learner for m in predictor.members])}" if online else ""
    print(f"{done.summary()} -> {out} ({predictor.describe()}{learned})")
    return 0


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, action="append",
                   help="training run dir, a checkpoint file in one, or a multirun/CV dir; repeat for an ensemble")
    p.add_argument("--data", required=True,
                   help="test CSV(.gz) or Parquet file in the example_test.csv layout (with --batch also a store dir); "
                        "for a 2024-layout run a test.parquet file or dir, or a grouped store")
    p.add_argument("--out", default="submission.csv",
                   help="where to write ts_id,action (2024: row_id,responder_N, the run's first target): absent, or a submission "
                        "to replace (default: %(default)s)")
    p.add_argument("--batch", action="store_true", help="score all rows at once (same actions as row by row)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s, the fastest for one row)")
    g = p.add_argument_group("2024-layout runs (replayed per time_id)")
    g.add_argument("--lags", help="lags.parquet (date_id, time_id, symbol_id, responder_N_lag_1); default: from --data's responders")
    add_online_options(g, "fine-tune on each date's answers when its lags arrive")
    args = p.parse_args(number_options(sys.argv[1:] if argv is None else argv))
    data = Path(args.data)
    online = online_config(args)  # checked before anything is read or written
    if (spec := grouped_spec(args.run[0])) is not None:
        return replay_2024(args, data, spec, online)
    if args.lags is not None or args.online_learning:
        flag = "--lags" if args.lags is not None else "--online-learning"
        run_spec(args.run[0])  # a run that cannot be read: that error first
        raise UserError(f"{flag}: {args.run[0]} was trained on the 2021 layout (one global row order); {flag} is for 2024-layout runs")
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
