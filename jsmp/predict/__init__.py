"""Online inference: replay a test file row by row, as the competition's scoring API did.

    python -m jsmp.predict --run RUN_DIR --data TEST.csv --out submission.csv [--batch]

RUN_DIR is a training run dir (its best checkpoint is used) or a checkpoint file inside one;
the run dir's `config.yaml` names the model class and its `preprocess.json` holds the
features, NaN fill and window training used. The checkpoint is loaded weights-only (no
arbitrary unpickling). Both modes read the file through one reader: pieces of about 2k
rows parsed by pyarrow and checked as ingest checks a file (ingest's `Checker`), so a bad
row anywhere stops either mode with the same one-line error and no output. Row by row,
each row's action depends only on it and the rows before it; sequence models see a ring
buffer of the last W filled rows. `--batch` scores the whole file (or a store directory)
at once and gives the same actions. `--out` is replaced only when it is absent or a
submission (first line `ts_id,action`), never the input.

From Python, e.g. in a notebook loop over the Kaggle API's `iter_test()`::

    predictor = Predictor("logs/train/runs/2021-02-22_10-00-00")
    for test_df, sample_prediction_df in env.iter_test():
        sample_prediction_df.action = predictor.predict_row(test_df)
        env.predict(sample_prediction_df)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pickle
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

import numpy as np
import pyarrow as pa
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from jsmp.batches.inputs import PREPROCESS, InputSpec, OnlineFill, fill_rows
from jsmp.batches.windows import gather_windows
from jsmp.data.ingest import INT_COLUMNS, Checker, Layout, Source, csv_header, iter_csv
from jsmp.errors import UserError, exit_on_user_error
from jsmp.files import atomic_path, claim_destination
from jsmp.models.base import TradeModule
from jsmp.store.store import Store, is_store

# target rows per forward pass in batch mode (cache-sized: bigger passes are slower on CPU)
BATCH_ROWS, WINDOW_BATCH_ROWS = 1024, 256
# the non-feature columns of a test row, checked as ingest checks them (date and ts_id also for order)
SIDE = ["date", "weight", "ts_id"]
HEADER = "ts_id,action\n"  # a submission's first line


# -- the run ---------------------------------------------------------------------------------
def find_checkpoint(run: str | os.PathLike) -> tuple[Path, Path]:
    """(run dir, checkpoint) for a run dir (its best checkpoint, else last.ckpt) or a checkpoint file."""
    run = Path(run)
    if run.is_file():
        return (run.parent.parent if run.parent.name == "checkpoints" else run.parent), run
    if not run.is_dir():
        raise UserError(f"{run}: no such run dir or checkpoint file")
    found = sorted((run / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime) or \
        [p for p in [run / "checkpoints" / "last.ckpt"] if p.is_file()]
    if not found:
        raise UserError(f"{run}: no checkpoint in this run dir (expected checkpoints/best-*.ckpt or checkpoints/last.ckpt; "
                        f"train with the model_checkpoint callback, or pass a .ckpt file)")
    return run, found[-1]


def load_model(ckpt: Path, target: str) -> TradeModule:
    """The model class `target` with the checkpoint's hyper-parameters and weights, in eval mode.

    torch.load(weights_only=True) only rebuilds tensors and plain containers: a checkpoint
    that holds any other object is refused instead of running its unpickling code."""
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"{ckpt}: refused: it holds objects other than weights and plain values, which could run "
                        f"arbitrary code when loaded ({str(e).splitlines()[0][:200]})") from None
    except (RuntimeError, OSError, EOFError) as e:
        raise UserError(f"{ckpt}: not a readable checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or not {"state_dict", "hyper_parameters"} <= set(state):
        raise UserError(f"{ckpt}: expected a Lightning checkpoint with state_dict and hyper_parameters")
    try:
        cls = get_class(target)
    except Exception as e:  # hydra raises ImportError/ValueError variants
        raise UserError(f"config.yaml model._target_: cannot import {target!r} ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, TradeModule)):
        raise UserError(f"config.yaml model._target_: {target!r} is not a jsmp model (TradeModule)")
    model = cls(**state["hyper_parameters"])
    model.load_state_dict(state["state_dict"])
    return model.eval()


def missing_columns(have, features: list[str], where: str) -> None:
    """Raise when `have` (column names) lacks `date`, `weight`, `ts_id` or a feature the model was trained on."""
    have = set(have)
    missing = [c for c in [*SIDE, *features] if c not in have]
    if missing:
        shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        raise UserError(f"{where}: missing column(s) the model needs (it was trained on {len(features)} features): {shown}")


# -- the predictor ---------------------------------------------------------------------------
class Predictor:
    """Actions for rows in the example_test.csv layout, one at a time (`predict_row`) or all
    at once (`predict_batch`); both give identical actions.

    State carried between rows: the day (a new `date` starts a day), the forward-fill's last
    values, for sequence models the last W filled rows, and `predict_row`'s last date and
    ts_id (for its order checks). `reset()` forgets it all.
    `columns` is the layout `predict_row` expects of an array: date, weight, features, ts_id.
    threads: sets torch's (process-wide) thread count. One is fastest for one row, and on a
    busy machine for batches too (an LSTM can run 10x slower on two). None leaves it as it is.
    """

    def __init__(self, run: str | os.PathLike, threads: int | None = 1):
        if threads:
            torch.set_num_threads(threads)
        self.run_dir, self.checkpoint = find_checkpoint(run)
        cfg_path = self.run_dir / "config.yaml"
        if not cfg_path.is_file():
            raise UserError(f"{cfg_path}: not found; expected the run dir that train.py wrote around the checkpoint")
        self.prep = InputSpec.load(self.run_dir / PREPROCESS)
        self.model = load_model(self.checkpoint, OmegaConf.load(cfg_path).model._target_)
        self.features = self.prep.features
        self.columns = ["date", "weight", *self.features, "ts_id"]
        self.window = self.prep.window_spec
        if self.window is not None and not getattr(self.model, "sequence", False):
            raise UserError(f"{self.run_dir}: {PREPROCESS} has a window but {type(self.model).__name__} is not a sequence model")
        F, W = len(self.features), self.window.length if self.window is not None else 1
        self.fill = OnlineFill(self.prep)
        # preallocated buffers: the current row; for windows a ring of the last W rows, written
        # twice (at i and i + W) so the window is always the contiguous slice ring[i + 1 : i + 1 + W]
        self.row = np.empty(F, dtype=np.float32)
        self.ring = np.zeros((2 * W, F), dtype=np.float32)
        self.win = np.zeros((W, F), dtype=np.float32)
        self.mask = torch.ones(1, W, dtype=torch.bool)
        if self.window is None:
            self.inputs = {"x": torch.from_numpy(self.row)[None]}
        else:
            self.inputs = {"x": torch.from_numpy(self.win)[None], "mask": self.mask}
        self.reset()

    def reset(self) -> None:
        """Forget every row seen (the next row starts a day and an empty window)."""
        self.day: float | None = None
        self.seen = 0  # rows written to the ring
        self.filled = 0  # rows of the current window that are real (<= W)
        self.fill.reset()
        self.checker = Checker()  # predict_row's order checks
        self.rows = 0  # rows predict_row accepted

    # -- one row
    def predict_row(self, row) -> int:
        """The action (0/1) for one row: a dict or pandas Series/1-row DataFrame with (at
        least: other keys are ignored) the `columns` names, or an array in `columns` order.
        NaN (or None) marks a missing feature value.

        The row is checked as `--batch` checks a file's rows (ingest's `Checker`, same
        messages): date, weight and ts_id present and finite, date and ts_id integers, no
        ±Inf feature, date not below and ts_id above the previous row's (since `reset()`).
        A bad row raises UserError naming it (`row N`, counted from `reset()`) and changes no state.
        """
        values = self._values(row)
        with np.errstate(over="ignore"):  # beyond float32 range -> inf, which the check reports
            x = values[2:-1].astype(np.float32)
        date = self._check(values, x)
        self.rows += 1
        return self.step(date, x)

    def step(self, date: float, x: np.ndarray) -> int:
        """The action for one row given its date and raw features x (F,) (NaNs allowed),
        unchecked: for rows `read_csv` (or `predict_row`) has checked."""
        new_day = date != self.day
        self.day = date
        np.copyto(self.row, x)
        self.fill(self.row, new_day)
        if self.window is not None:
            self._push(new_day)
        with torch.inference_mode():
            return int(self.model.predict_proba(self.inputs)[0] > 0.5)

    def _push(self, new_day: bool) -> None:
        """Append the filled row to the ring and lay out the window (left padding zeroed, masked)."""
        W = self.window.length
        if new_day and not self.window.cross_days:
            self.filled = 0
        i = self.seen % W
        self.ring[i] = self.ring[i + W] = self.row
        self.seen += 1
        self.filled = min(self.filled + 1, W)
        self.win[:] = self.ring[i + 1 : i + 1 + W]
        pad = W - self.filled
        if pad:
            self.win[:pad] = 0.0
        self.mask[0, :pad] = False
        self.mask[0, pad:] = True

    def _values(self, row) -> np.ndarray:
        """The row's values in `columns` order, float64 (NaN for None)."""
        if isinstance(row, Mapping):
            try:
                values = [row[c] for c in self.columns]
            except KeyError:
                missing_columns(row.keys(), self.features, "row")
                raise
        elif hasattr(row, "columns"):  # a 1-row pandas DataFrame, as the Kaggle API hands over
            missing_columns(row.columns, self.features, "row")
            if len(row) != 1:
                raise UserError(f"row: expected a 1-row DataFrame, got {len(row)} rows")
            values = row[self.columns].to_numpy()[0]
        elif hasattr(row, "index") and hasattr(row, "to_numpy"):  # a pandas Series
            missing_columns(row.index, self.features, "row")
            values = row[self.columns].to_numpy()
        else:
            values = row
        try:
            a = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError):
            for c, v in zip(self.columns, values):
                try:
                    np.asarray(v, dtype=np.float64).item()
                except (ValueError, TypeError):
                    want = "an integer" if c in INT_COLUMNS else "a number"
                    raise UserError(f"row {self.rows + 1}, column {c!r}: got {v!r}, expected {want}") from None
            a = np.empty(0)  # no single bad value: report the shape below
        if a.shape != (len(self.columns),):
            raise UserError(f"row: expected {len(self.columns)} values (date, weight, {len(self.features)} features, ts_id), "
                            f"got shape {a.shape}")
        return a

    def _check(self, values: np.ndarray, x: np.ndarray) -> int:
        """The row's date, once ingest's Checker passed its date, weight, ts_id and any ±Inf
        feature (the only feature values it refuses) as a 1-row batch; a NaN (or None) there
        is a missing value, as an empty field is in a file."""
        bad = [int(j) for j in np.flatnonzero(np.isinf(x))]
        names = [*SIDE, *(self.features[j] for j in bad)]
        column = pa.array(np.r_[values[[0, 1, -1]], x[bad]], pa.float64(), from_pandas=True)
        batch = pa.RecordBatch.from_arrays([column.slice(k, 1) for k in range(len(names))], names=names)
        checker = dataclasses.replace(self.checker)  # kept only when the row passes
        _, side = checker(batch, Layout(names, names[len(SIDE):], SIDE, []), lambda i, c: f"row {self.rows + 1}, column {c!r}")
        self.checker = checker
        return int(side["date"][0])

    # -- all rows at once
    def predict_batch(self, date: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Actions (n,) int8 for consecutive rows: date (n,), raw features x (n, F) (filled in place)."""
        date = np.asarray(date)
        starts = np.flatnonzero(np.r_[True, date[1:] != date[:-1]])
        filled = fill_rows(x, starts, self.prep)
        out = np.empty(len(filled), dtype=np.int8)
        step = BATCH_ROWS if self.window is None else WINDOW_BATCH_ROWS
        with torch.inference_mode():
            for a in range(0, len(filled), step):
                rows = np.arange(a, min(a + step, len(filled)))
                if self.window is None:
                    batch = {"x": torch.from_numpy(filled[rows])}
                else:
                    day_start = starts[np.searchsorted(starts, rows, side="right") - 1]
                    xw, mask = gather_windows(filled.__getitem__, rows, self.window, day_start)
                    batch = {"x": torch.from_numpy(xw), "mask": torch.from_numpy(mask)}
                out[rows] = (self.model.predict_proba(batch) > 0.5).numpy()
        return out


# -- reading test data -----------------------------------------------------------------------
def require_file(path: Path) -> None:
    if not path.is_file():
        what = "a directory (a store is read with --batch)" if path.is_dir() else "no such file"
        raise UserError(f"{path}: {what}; expected a CSV(.gz) in the example_test.csv layout (date, weight, feature_*, ts_id)")


def read_csv(path: Path, features: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(ts_id (n,), date (n,), x (n, F) float32) per piece of a CSV(.gz) (about 2k rows), features
    in model order, read and checked as ingest reads a file (iter_csv + Checker): a bad field or
    row anywhere raises UserError naming its line and column."""
    require_file(path)
    source = Source.of(path)
    header = csv_header(path, source.kind)
    missing_columns(header, features, str(path))
    layout = Layout(header, list(features), SIDE, [])
    check = Checker()
    rows = 0
    for batch, line, _ in iter_csv(source, layout, None):
        if batch.num_rows:
            x, side = check(batch, layout, lambda i, c, line=line: f"{path} line {line + i}, column {c!r}")
            rows += len(x)
            yield side["ts_id"], side["date"], x
    if not rows:
        raise UserError(f"{path}: header only, no data rows")


def read_all(path: Path, features: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts_id (n,), date (n,), x (n, F) float32) of a whole CSV(.gz) or store, features in model order."""
    if path.is_dir():
        if not is_store(path):
            raise UserError(f"{path}: a directory but not a jsmp store (no manifest.json)")
        store = Store(path)
        missing_columns([*store.features, *store.manifest["side"]], features, str(path))
        cols = [store.features.index(c) for c in features]
        x = np.concatenate([b[:, cols] for b in store.iter_blocks([(0, store.n_rows)])])
        return np.asarray(store.side("ts_id")), np.asarray(store.side("date")), x
    ts_id, date, x = zip(*read_csv(path, features))
    return np.concatenate(ts_id), np.concatenate(date), np.concatenate(x)


# -- the command -----------------------------------------------------------------------------
def is_submission(path: Path) -> bool:
    """Whether `path` is a file whose first line is `ts_id,action` (what this command writes)."""
    try:
        with open(path, "rb") as f:
            return f.readline(len(HEADER) + 1).rstrip(b"\r\n") == HEADER.strip().encode()
    except OSError:  # a directory, unreadable, gone
        return False


@contextlib.contextmanager
def submission(out: Path) -> Iterator[TextIO]:
    """A text file to write `ts_id,action` lines to (the header is written); it appears at
    `out` only when the block ends without an exception (jsmp.files.atomic_path)."""
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        f.write(HEADER)
        yield f


def run_online(predictor: Predictor, data: Path, out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay `data` row by row into `out`; returns (actions, per-row latency in seconds from the
    row's parsed values to its action (fill, window, forward), and the CPU time this thread spent
    on it: the difference is time spent waiting for a core). Reading, parsing and checking are
    done per piece of the file by `read_csv`, outside the timing."""
    actions, latency, cpu = [], [], []
    clock, cpu_clock = time.perf_counter, time.thread_time
    with submission(out) as f, tqdm(unit="row", desc=f"predicting {data.name}", disable=None, file=sys.stderr) as bar:
        for ts_id, date, x in read_csv(data, predictor.features):
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
    ts_id, date, x = read_all(data, predictor.features)
    actions = predictor.predict_batch(date, x)
    with submission(out) as f:
        f.write("".join(f"{t},{a}\n" for t, a in zip(ts_id.tolist(), actions.tolist())))
    return actions


def claim_out(out: str, data: Path) -> Path:
    """`--out` checked before any work: absent or a submission, not the input, not inside an
    input store dir, in a writable directory."""
    if data.is_dir() and data.resolve() in Path(out).resolve().parents:
        raise UserError(f"--out {out}: is inside the input store {data}; writing there would change it. Choose another --out")
    return claim_destination(out, "--out", "submission (first line ts_id,action)", is_submission, inputs=[data])


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="training run dir, or a checkpoint file in one")
    p.add_argument("--data", required=True, help="test CSV(.gz) in the example_test.csv layout (with --batch also a store dir)")
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
        speed = (f"row by row, latency per row p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {latency.max() * 1e3:.3f} ms "
                 f"(CPU time p99 {np.percentile(cpu, 99) * 1e3:.3f} ms)")
    print(f"{len(actions):,} rows -> {out}: {speed}; action=1 on {actions.mean():.1%} of rows "
          f"(model {type(predictor.model).__name__} from {predictor.checkpoint})")
    return 0

