"""`python -m jsmp.data COMMAND ...`: build and inspect stores.

    synth (--out FILE.csv | --store DIR) [--days D] [--rows-per-day R] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jsmp.errors import UserError, exit_on_user_error


def _positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return n


def cmd_synth(args: argparse.Namespace) -> None:
    from jsmp.data.synthetic import SynthSpec, write_csv, write_store

    spec = SynthSpec(days=args.days, rows_per_day=args.rows_per_day, seed=args.seed)
    if args.out:
        if Path(args.out).is_dir():
            raise UserError(f"--out {args.out}: is a directory, expected a CSV file path")
        path = write_csv(spec, args.out)
    else:
        path = write_store(spec, args.store)
    print(f"wrote {path}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jsmp.data", description="Build and inspect jsmp stores.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synth", help="generate synthetic JSMP-shaped data (Kaggle CSV layout or a store)")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="write a Kaggle-layout CSV here (ideal actions beside it in FILE.ideal.npy)")
    where.add_argument("--store", help="write a jsmp store directory here")
    s.add_argument("--days", type=_positive, default=500, help="trading days (default 500)")
    s.add_argument("--rows-per-day", type=_positive, default=4780, help="mean rows per day (default 4780, the real file's)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_synth)
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
