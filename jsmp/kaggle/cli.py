"""`jsmp kaggle COMMAND` (docs/kaggle.md):

    jsmp kaggle bundle --run RUN [--run RUN ...] --out DIR [--wheels [NAME ...]] [--online-learning [--online-steps N]
                       [--online-lr X] [--online-budget S]] [--threads N]
    jsmp kaggle dryrun --bundle DIR --data COMPETITION_DIR [--work DIR]

bundle: the runs (an ensemble when several), wheels and a submission.py, in one folder to upload as a Kaggle
dataset. dryrun: that folder's submission.py run here against the stand-in scoring API (jsmp.kaggle.standin)
over a competition-like folder (2024: test.parquet/ and lags.parquet/; 2021: example_test.csv).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jsmp.errors import UserError, exit_on_user_error
from jsmp.kaggle.wheels import DEPENDENCIES
from jsmp.predict.cli import add_online_options, number_options, online_config


def bundle_main(args: argparse.Namespace) -> int:
    from jsmp.kaggle.bundle import bundle
    from jsmp.kaggle.wheels import platform_wheels

    online = online_config(args)
    if args.threads < 1:
        raise UserError(f"--threads {args.threads}: expected an integer >= 1 (torch threads while serving)")
    manifest = bundle(args.run, args.out, args.wheels, online, args.threads)
    for f in platform_wheels(manifest["wheels"]):
        print(f"note: {f} is built for this Python and platform only; Kaggle's must match", file=sys.stderr)
    print(
        f"{args.out}: the {manifest['competition']} competition, {len(manifest['runs'])} run(s)"
        f"{', online learning' if online else ''}, {len(manifest['wheels'])} wheels. In the notebook: "
        f"pip install --no-index --no-deps /kaggle/input/BUNDLE/wheels/*.whl; %run /kaggle/input/BUNDLE/submission.py"
    )
    return 0


def dryrun_main(args: argparse.Namespace) -> int:
    from jsmp.kaggle.bundle import is_bundle
    from jsmp.kaggle.standin import dry_run
    from jsmp.kaggle.standin.gateway import GatewayError

    bundle, data = Path(args.bundle), Path(args.data)
    if not is_bundle(bundle):
        raise UserError(
            f"--bundle {bundle}: not a bundle (no kaggle.json); expected a folder `jsmp kaggle bundle` wrote"
        )
    if not data.is_dir():
        raise UserError(
            f"--data {data}: not a directory; expected a competition folder (2024: test.parquet/ and "
            f"lags.parquet/; 2021: example_test.csv)"
        )
    try:
        out = dry_run(bundle, data, args.work)
    except GatewayError as e:
        raise UserError(f"stand-in gateway: {e}") from None
    print(f"{out}: written by {bundle / 'submission.py'} through the stand-in API")
    return 0


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="jsmp kaggle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="runs, wheels and submission.py in one folder, to upload as a Kaggle dataset")
    b.add_argument(
        "--run",
        required=True,
        action="append",
        help="training run dir, a checkpoint file in one, or a multirun/CV dir; repeat for an ensemble",
    )
    b.add_argument("--out", required=True, help="the bundle folder: absent, empty, or an earlier bundle to replace")
    b.add_argument(
        "--wheels",
        nargs="*",
        metavar="NAME",
        default=list(DEPENDENCIES),
        help=f"dependencies to bundle as wheels, at their installed versions (default: {' '.join(DEPENDENCIES)}; "
        "none: --wheels alone); jsmp's own wheel always",
    )
    b.add_argument("--threads", type=int, default=1, help="torch threads while serving (default: %(default)s)")
    add_online_options(b, "2024: fine-tune on each date's answers while serving")
    d = sub.add_parser("dryrun", help="run a bundle's submission.py against the stand-in scoring API")
    d.add_argument("--bundle", required=True, help="the folder `jsmp kaggle bundle` wrote")
    d.add_argument(
        "--data", required=True, help="competition folder: 2024 test.parquet/ and lags.parquet/; 2021 example_test.csv"
    )
    d.add_argument(
        "--work", default=".", help="working directory, where the submission is written (default: %(default)s)"
    )
    args = p.parse_args(number_options(sys.argv[1:] if argv is None else list(argv)))
    return bundle_main(args) if args.command == "bundle" else dryrun_main(args)
