"""Online inference: replay a test file row by row, as the competition's scoring API did.

    python -m jsmp.predict --run RUN_DIR --data TEST.csv --out submission.csv [--batch]

RUN_DIR is a training run dir (its best checkpoint is used) or a checkpoint file inside one;
the run dir's `config.yaml` names the model class and its `preprocess.json` holds the
features, NaN fill and window training used. The checkpoint is loaded weights-only (no
arbitrary unpickling). Each row's action is decided before the next row is read; sequence
models see a ring buffer of the last W filled rows. `--batch` scores the whole file (or a
store directory) at once and gives the same actions.

From Python, e.g. in a notebook loop over the Kaggle API's `iter_test()`::

    predictor = Predictor("logs/train/runs/2021-02-22_10-00-00")
    for test_df, sample_prediction_df in env.iter_test():
        sample_prediction_df.action = predictor.predict_row(test_df)
        env.predict(sample_prediction_df)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import pickle
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from jsmp.data.ingest import Checker, Layout, Source, csv_header, iter_csv
from jsmp.data.preprocess import PREPROCESS, OnlineFill, Preprocess, fill_rows
from jsmp.data.store import Store, is_store
from jsmp.data.windows import gather_windows
from jsmp.errors import UserError, exit_on_user_error
from jsmp.models.base import TradeModule

# target rows per forward pass in batch mode (cache-sized: bigger passes are slower on CPU)
BATCH_ROWS, WINDOW_BATCH_ROWS = 1024, 256


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
    """Raise when `have` (column names) lacks `date`, `ts_id` or a feature the model was trained on."""
    have = set(have)
    missing = [c for c in ["date", "ts_id", *features] if c not in have]
    if missing:
        shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        raise UserError(f"{where}: missing column(s) the model needs (it was trained on {len(features)} features): {shown}")


# -- the predictor ---------------------------------------------------------------------------
class Predictor:
    """Actions for rows in the example_test.csv layout, one at a time (`predict_row`) or all
    at once (`predict_batch`); both give identical actions.

    State carried between rows: the day (a new `date` starts a day), the forward-fill's last
    values, and for sequence models the last W filled rows. `reset()` forgets it all.
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
        self.prep = Preprocess.load(self.run_dir / PREPROCESS)
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

    # -- one row
    def predict_row(self, row) -> int:
        """The action (0/1) for one row: a dict or pandas Series/1-row DataFrame with the
        `columns` names, or an array in `columns` order. NaN (or None) marks a missing value."""
        date, x = self._parse(row)
        return self.step(date, x)

    def step(self, date: float, x: np.ndarray) -> int:
        """The action for one row given its date and raw features x (F,) (NaNs allowed)."""
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

    def _parse(self, row) -> tuple[float, np.ndarray]:
        if isinstance(row, Mapping):
            try:
                return float(row["date"]), np.array([row[c] for c in self.features], dtype=np.float32)
            except KeyError:
                missing_columns(row.keys(), self.features, "row")
                raise
        if hasattr(row, "columns"):  # a 1-row pandas DataFrame, as the Kaggle API hands over
            missing_columns(row.columns, self.features, "row")
            return float(row["date"].iloc[0]), row[self.features].to_numpy(np.float32)[0]
        if hasattr(row, "index") and hasattr(row, "to_numpy"):  # a pandas Series
            missing_columns(row.index, self.features, "row")
            return float(row["date"]), row[self.features].to_numpy(np.float32)
        a = np.asarray(row, dtype=np.float32)
        if a.shape != (len(self.columns),):
            raise UserError(f"row: expected {len(self.columns)} values (date, weight, {len(self.features)} features, ts_id), "
                            f"got shape {a.shape}")
        return float(a[0]), a[2:-1]

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


def _open_text(path: Path):
    require_file(path)
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def stream_rows(path: Path, features: list[str]) -> Iterator[tuple[int, float, list[str]]]:
    """Yield (ts_id, date, feature fields as text) per CSV row, reading one row at a time."""
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise UserError(f"{path}: file is empty; expected a header line (date, weight, feature_*, ts_id)")
        missing_columns(header, features, str(path))
        pos = {c: i for i, c in enumerate(header)}
        i_date, i_ts, i_x = pos["date"], pos["ts_id"], [pos[c] for c in features]
        for line, fields in enumerate(reader, 2):
            try:
                yield int(fields[i_ts]), float(fields[i_date]), [fields[i] for i in i_x]
            except (ValueError, IndexError):
                raise UserError(f"{path} line {line}: expected {len(header)} fields with integer date and ts_id, "
                                f"got {len(fields)} fields") from None


def parse_fields(fields: list[str]) -> np.ndarray:
    """Feature fields as text -> (F,) float32; empty fields are NaN (ValueError on other text)."""
    return np.array([v or "nan" for v in fields], dtype=np.float32)


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
    require_file(path)
    source = Source.of(path)
    header = csv_header(path, source.kind)
    missing_columns(header, features, str(path))
    layout = Layout(header, list(features), ["date", "ts_id"], [])
    check = Checker()
    parts = [check(b, layout, lambda i, c, line=line: f"{path} line {line + i}, column {c!r}")
             for b, line, _ in iter_csv(source, layout, None) if b.num_rows]
    if not parts:
        raise UserError(f"{path}: header only, no data rows")
    return (np.concatenate([s["ts_id"] for _, s in parts]), np.concatenate([s["date"] for _, s in parts]),
            np.concatenate([x for x, _ in parts]))


# -- the command -----------------------------------------------------------------------------
class Submission:
    """`ts_id,action` lines written to a temp file, renamed to `path` by `commit()`."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self.f = open(self.tmp, "w")
        self.f.write("ts_id,action\n")

    def write(self, ts_id: int, action: int) -> None:
        self.f.write(f"{ts_id},{action}\n")

    def commit(self) -> None:
        self.f.close()
        os.replace(self.tmp, self.path)

    def __enter__(self) -> Submission:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.f.close()
            self.tmp.unlink(missing_ok=True)


def run_online(predictor: Predictor, data: Path, out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay `data` row by row into `out`; returns (actions, per-row latency in seconds from
    the row's text fields to its action, and the CPU time this thread spent on it: the
    difference is time spent waiting for a core)."""
    actions, latency, cpu = [], [], []
    clock, cpu_clock = time.perf_counter, time.thread_time
    with Submission(out) as sub, tqdm(unit="row", desc=f"predicting {data.name}", disable=None, file=sys.stderr) as bar:
        for ts_id, date, fields in stream_rows(data, predictor.features):
            t0, c0 = clock(), cpu_clock()
            try:
                action = predictor.step(date, parse_fields(fields))
            except ValueError as e:
                raise UserError(f"{data} line {len(actions) + 2}: a feature field is not a number ({e})") from None
            latency.append(clock() - t0)
            cpu.append(cpu_clock() - c0)
            sub.write(ts_id, action)
            actions.append(action)
            bar.update()
        if not actions:
            raise UserError(f"{data}: header only, no data rows")
        sub.commit()
    return np.asarray(actions, dtype=np.int8), np.asarray(latency), np.asarray(cpu)


def run_batch(predictor: Predictor, data: Path, out: Path) -> np.ndarray:
    ts_id, date, x = read_all(data, predictor.features)
    actions = predictor.predict_batch(date, x)
    with Submission(out) as sub:
        sub.f.write("".join(f"{t},{a}\n" for t, a in zip(ts_id.tolist(), actions.tolist())))
        sub.commit()
    return actions


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jsmp.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="training run dir, or a checkpoint file in one")
    p.add_argument("--data", required=True, help="test CSV(.gz) in the example_test.csv layout (with --batch also a store dir)")
    p.add_argument("--out", default="submission.csv", help="where to write ts_id,action (default: %(default)s)")
    p.add_argument("--batch", action="store_true", help="score all rows at once (same actions as row by row)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s, the fastest for one row)")
    args = p.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    if not (args.batch and data.is_dir()):
        require_file(data)
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


if __name__ == "__main__":
    sys.exit(main())
