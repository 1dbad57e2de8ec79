"""`python -m jsmp.data COMMAND ...`: build and inspect stores.

    synth (--out FILE.csv [--test-layout] | --store DIR [--force]) [--days D] [--rows-per-day R] [--seed S]
    synth --layout rtmdf (--out DIR [--partitions K] | --store DIR [--force]) [--days D] [--times T] [--symbols N] [--seed S] [--drift X]
    ingest SRC --store DIR [--force] [--feature-limit X]
                                         SRC: Kaggle CSV (.csv, .csv.gz), .parquet, or a directory of .parquet
                                         (hive partitions in numeric order): 2021 train, 2024 train or lags layout
    info DIR
    verify DIR [--rebuild-caches]        check every checksum of a store and its caches
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from jsmp.data.schema import FEATURE_LIMIT
from jsmp.data.synthetic import SynthSpec
from jsmp.data.synthetic_rtmdf import PARTITIONS, RtmdfSpec
from jsmp.errors import UserError, exit_on_user_error


def _positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return n


def _limit(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        x = float("nan")
    if not (0 < x < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {v}")
    return x


LAYOUT_FLAGS = {"jsmp": ("rows_per_day", "test_layout"), "rtmdf": ("times", "symbols", "partitions", "drift", "market", "sectors")}
SYNTH_DEFAULTS = {"jsmp": SynthSpec.real_size(), "rtmdf": RtmdfSpec()}  # what synth generates without settings


def _settings(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The generator settings among `names` given on the command line."""
    return {k: v for k in names if (v := getattr(args, k)) is not None}


def cmd_synth(args: argparse.Namespace) -> None:
    for layout, flags in LAYOUT_FLAGS.items():
        for flag in flags:
            if layout != args.layout and getattr(args, flag) not in (None, False):
                raise UserError(f"--{flag.replace('_', '-')}: only with --layout {layout}")
    if args.out and args.force:
        raise UserError("--force: only with --store (--out replaces what synth wrote, never anything else)")
    if args.layout == "rtmdf":
        from jsmp.data import synthetic_rtmdf as gen

        try:
            spec = replace(SYNTH_DEFAULTS["rtmdf"], **_settings(args, ("days", "times", "symbols", "seed", "drift", "market", "sectors")))
        except ValueError as e:
            raise UserError(f"synth --layout rtmdf: {e}") from None
        if args.out:
            print(f"wrote {gen.write_parquet(spec, args.out, partitions=args.partitions or PARTITIONS)}")
            return
    else:
        from jsmp.data import synthetic as gen

        spec = replace(SYNTH_DEFAULTS["jsmp"], **_settings(args, ("days", "rows_per_day", "seed")))
        if args.out:
            if Path(args.out).is_dir():
                raise UserError(f"--out {args.out}: is a directory, expected a CSV file path")
            print(f"wrote {gen.write_csv(spec, args.out, test_layout=args.test_layout)}")
            return
    synth_store(gen, spec, Path(args.store), args.force)


def synth_store(gen, spec, path: Path, force: bool) -> None:
    """`synth --store`: a store already holding `spec`'s data, whole, is kept (`force` regenerates
    it); a store of other synthetic data, or a damaged one, is replaced; one of real data only with `force`.
    `gen`: the generator module (jsmp.data.synthetic or synthetic_rtmdf)."""
    from jsmp.store.store import damage_at, provenance

    made = provenance(path)
    if made is not None and not force:
        src = made.source
        if src.get("kind") != "synthetic":
            raise UserError(f"--store {path}: holds data ingested from {src.get('path', '?')}; synth would replace it "
                            f"with synthetic data. Add --force to replace it, or choose another --store")
        if src == gen.synth_source(spec):
            if (problem := damage_at(path)) is None:
                print(f"{path} is up to date with {spec.name} (--force regenerates it)")
                return
            print(f"warning: store {path}: {problem}; regenerating it", file=sys.stderr)
    print(f"wrote {gen.write_store(spec, path)}")


def cmd_ingest(args: argparse.Namespace) -> None:
    from jsmp.data.ingest import ingest

    path, wrote = ingest(args.src, args.store, force=args.force, feature_limit=args.feature_limit)
    print(f"wrote {path}" if wrote else f"{path} is up to date with {args.src} (unchanged source; --force re-ingests)")


def cmd_info(args: argparse.Namespace) -> None:
    from jsmp.store.info import describe
    from jsmp.store.store import Store

    print(describe(Store(args.store)))


def cmd_verify(args: argparse.Namespace) -> None:
    from jsmp.store.caches import verify_store
    from jsmp.store.store import Store

    print("\n".join(verify_store(Store(args.store), rebuild=args.rebuild_caches)))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jsmp.data", description="Build and inspect jsmp stores.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synth", help="generate synthetic data: the 2021 layout (Kaggle CSV or a store) or the 2024 one (--layout rtmdf)")
    s.add_argument("--layout", choices=sorted(LAYOUT_FLAGS), default="jsmp",
                   help="jsmp: the 2021 train.csv (default); rtmdf: the 2024 train.parquet (docs/rtmdf-data.md)")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="jsmp: write a Kaggle-layout CSV here (ideal actions beside it in FILE.ideal.npy); "
                                     "rtmdf: a directory with train.parquet/, lags.parquet and ideal.parquet")
    where.add_argument("--store", help="write a jsmp store directory here")
    jsmp, rtmdf, real = SYNTH_DEFAULTS["jsmp"], SYNTH_DEFAULTS["rtmdf"], RtmdfSpec.real_size()
    s.add_argument("--days", type=_positive, help=f"trading days (default {jsmp.days}; rtmdf: {rtmdf.days})")
    s.add_argument("--rows-per-day", type=_positive, help=f"jsmp: mean rows per day (default {jsmp.rows_per_day}, the real file's)")
    s.add_argument("--times", type=_positive, help=f"rtmdf: time_ids per date (default {rtmdf.times}; the real data: {real.times})")
    s.add_argument("--symbols", type=_positive,
                   help=f"rtmdf: instruments over the whole set (default {rtmdf.symbols}; the real data: {real.symbols})")
    s.add_argument("--partitions", type=_positive, help=f"rtmdf --out: train.parquet partitions (default {PARTITIONS})")
    s.add_argument("--drift", type=float, help="rtmdf: radians per date the features' relation to the target turns "
                                               f"(default {rtmdf.drift:g}: stationary; 0.01: the online-learning demo; docs/rtmdf-data.md)")
    s.add_argument("--market", type=float, help="rtmdf: mean loading on a market factor shared by all instruments, in [0, 1) "
                                                f"(default {rtmdf.market:g}; 0: independent instruments; docs/rtmdf-data.md)")
    s.add_argument("--sectors", type=int, help=f"rtmdf: sector factors (default {rtmdf.sectors})")
    s.add_argument("--seed", type=int, help=f"generator seed (default {jsmp.seed}; rtmdf: {rtmdf.seed})")
    s.add_argument("--test-layout", action="store_true", help="jsmp --out: without resp columns, as example_test.csv")
    s.add_argument("--force", action="store_true",
                   help="--store: regenerate even when the store already holds this data, or replace a store of ingested data")
    s.set_defaults(func=cmd_synth)
    i = sub.add_parser("ingest", help="ingest a Kaggle train.csv(.gz), a .parquet file or a directory of them into a store "
                                      "(2021 train, 2024 train.parquet or lags.parquet layout, told by the header)")
    i.add_argument("src", help="source file or directory (hive partitions such as partition_id=K/ are read in K order)")
    i.add_argument("--store", required=True, help="store directory to write (replaced atomically)")
    i.add_argument("--force", action="store_true", help="re-ingest even when the source is unchanged")
    i.add_argument("--feature-limit", type=_limit, default=FEATURE_LIMIT, metavar="X",
                   help=f"refuse a feature value beyond ±X (default {FEATURE_LIMIT:g}; the real features are O(1..100)); "
                        f"recorded in the store, and served models refuse rows beyond it too")
    i.set_defaults(func=cmd_ingest)
    n = sub.add_parser("info", help="summarise a store: rows, days, features, zero weights, NaNs, source")
    n.add_argument("store", help="store directory")
    n.set_defaults(func=cmd_info)
    v = sub.add_parser("verify", help="check every file of a store and its caches against their checksums")
    v.add_argument("store", help="store directory")
    v.add_argument("--rebuild-caches", action="store_true",
                   help="rebuild damaged or stale caches (nan-rows.npy, fill-ffill/, lags-1/) instead of failing")
    v.set_defaults(func=cmd_verify)
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


def run_and_exit(argv: list[str] | None = None) -> None:
    """Run `main` and end the process with its exit code, skipping interpreter finalization.

    pyarrow's CSV reader leaves worker threads behind that can abort a finishing interpreter
    ("terminate called without an active exception"; pyarrow 26, about 1 run in 5 here).
    Everything has been written, renamed and flushed by then, so nothing is lost by exiting at once.
    """
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run_and_exit()
