"""Test data in, submission out: a test file read through jsmp.data.reader (or a store), replayed row by
row (run_online) or scored at once (run_batch) into `ts_id,action` lines that appear at `--out` only
whole (jsmp.files), and `--out` claimed before any work (claim_out). See docs/inference.md."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np
from tqdm.auto import tqdm

from jsmp.data.reader import Layout, Reader
from jsmp.data.schema import FEATURE_LIMIT
from jsmp.errors import UserError
from jsmp.files import atomic_path, claim_destination
from jsmp.predict.predictor import Predictor
from jsmp.predict.rows import SIDE, missing_columns
from jsmp.store.store import Store, is_store

HEADER = "ts_id,action\n"  # a 2021 submission's first line
# the first line of a 2021 submission, or of a 2024 one (row_id, then the run's target: jsmp.predict.replay)
FIRST_LINE = re.compile(rb"ts_id,action|row_id,responder_\d{1,3}")


def require_file(path: Path) -> None:
    if not path.is_file():
        what = "a directory (a store is read with --batch)" if path.is_dir() else "no such file"
        raise UserError(f"{path}: {what}; expected a CSV(.gz) or Parquet file in the example_test.csv layout "
                        f"(date, weight, feature_*, ts_id)")


def read_test(path: Path, features: list[str], feature_limit: float = FEATURE_LIMIT) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(ts_id (n,), date (n,), x (n, F) float32) per block of a test file (CSV(.gz): about 2k rows;
    Parquet), features in model order, read and checked by jsmp.data.reader as ingest reads a
    file: a bad field or row anywhere raises UserError naming its line (row) and column."""
    require_file(path)
    reader = Reader(path)

    def select(columns: list[str], where: str) -> Layout:
        missing_columns(columns, features, where)
        return Layout(columns, list(features), SIDE, [])

    for x, side, _ in reader.blocks(reader.layout(select), feature_limit=feature_limit):
        yield side["ts_id"], side["date"], x


def read_all(path: Path, features: list[str], feature_limit: float = FEATURE_LIMIT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts_id (n,), date (n,), x (n, F) float32) of a whole test file or store, features in model order."""
    if path.is_dir():
        if not is_store(path):
            raise UserError(f"{path}: a directory but not a jsmp store (no manifest.json)")
        store = Store(path)
        missing_columns([*store.features, *store.side_names], features, str(path))
        cols = [store.features.index(c) for c in features]
        x = np.concatenate([b[:, cols] for b in store.iter_blocks([(0, store.n_rows)])])
        return np.asarray(store.side("ts_id")), np.asarray(store.side("date")), x
    ts_id, date, x = zip(*read_test(path, features, feature_limit))
    return np.concatenate(ts_id), np.concatenate(date), np.concatenate(x)


def is_submission(path: Path) -> bool:
    """Whether `path` is a file whose first line is `ts_id,action` or `row_id,responder_N` (what this command writes)."""
    try:
        with open(path, "rb") as f:
            return FIRST_LINE.fullmatch(f.readline(32).rstrip(b"\r\n")) is not None
    except OSError:  # a directory, unreadable, gone
        return False


@contextlib.contextmanager
def submission(out: Path, header: str = HEADER) -> Iterator[TextIO]:
    """A text file to write a submission's lines to (`header` is written: `ts_id,action` by default);
    it appears at `out` only when the block ends without an exception (jsmp.files.atomic_path)."""
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        f.write(header)
        yield f


def run_online(predictor: Predictor, data: Path, out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay `data` row by row into `out`; returns (actions, per-row latency in seconds from the
    row's parsed values to its action (fill, window, forward), and the CPU time this thread spent
    on it: the difference is time spent waiting for a core). Reading, parsing and checking are
    done per block of the file by `read_test`, outside the timing."""
    actions, latency, cpu = [], [], []
    clock, cpu_clock = time.perf_counter, time.thread_time
    with submission(out) as f, tqdm(unit="row", desc=f"predicting {data.name}", disable=None, file=sys.stderr) as bar:
        for ts_id, date, x in read_test(data, predictor.features, predictor.feature_limit):
            for t, d, row in zip(ts_id.tolist(), date.tolist(), x):
                t0, c0 = clock(), cpu_clock()
                action = predictor.step(d, row)
                latency.append(clock() - t0)
                cpu.append(cpu_clock() - c0)
                f.write(f"{t},{action}\n")
                actions.append(action)
            bar.update(len(x))
    return np.asarray(actions, dtype=np.int8), np.asarray(latency), np.asarray(cpu)


def run_batch(predictor: Predictor, data: Path, out: Path) -> np.ndarray:
    """Score `data` (a test file or a store) at once into `out`; returns the actions (n,) int8."""
    ts_id, date, x = read_all(data, predictor.features, predictor.feature_limit)
    actions = predictor.predict_batch(date, x)
    with submission(out) as f:
        f.write("".join(f"{t},{a}\n" for t, a in zip(ts_id.tolist(), actions.tolist())))
    return actions


def claim_out(out: str, data: Path, lags: Path | None = None) -> Path:
    """`--out` checked before any work: absent or a submission, not an input (`data`, `lags`: files
    or directories), not inside an input directory, in a writable directory."""
    inputs = [data, *([lags] if lags is not None else [])]
    for src in inputs:
        if src.is_dir() and src.resolve() in Path(out).resolve().parents:
            what = "store" if is_store(src) else "directory"
            raise UserError(f"--out {out}: is inside the input {what} {src}; writing there would change it. Choose another --out")
    return claim_destination(out, "--out", "submission (first line ts_id,action or row_id,responder_N)", is_submission, inputs=inputs)
