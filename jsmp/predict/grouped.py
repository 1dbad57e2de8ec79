"""Serving a 2024-layout (grouped, regression) run one time step at a time, as the 2024 API hands
rows over (docs/inference.md): per-instrument state, lag lookup, and the model's predictions.

A time step's rows (one per active instrument) become exactly the inputs training fed
(jsmp.batches.datamodule): the store features in preprocess.json order, then the lag features
`responder_N_lag_1` looked up in the last `lags_df` by (time_id, symbol_id); NaNs filled as
training filled them: with `fill == ffill` from the same instrument's earlier rows of the date
(store features only), then the fill values. Sequence models see each instrument's last W filled
rows, left-padded (zeros, mask False) before its first row, or its first row of the date with
`cross_days = false`. An instrument that appears starts with an empty window; one that vanishes
keeps its state until it returns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from jsmp.batches.inputs import InputSpec
from jsmp.data.schema import SYMBOL_MAX
from jsmp.errors import UserError
from jsmp.models.base import TradeModule
from jsmp.predict.online import Learner, OnlineConfig

LAG = re.compile(r"^responder_\d+_lag_1$")
KEYS = ["date_id", "time_id", "symbol_id"]  # a test row's keys (besides row_id, weight, is_scored)


def frame_matrix(df, names: list[str]) -> np.ndarray:
    """(n, len(names)) float32 of a pandas or polars frame's columns (nulls -> NaN)."""
    if not names:  # polars selects no rows with no columns (a run trained with data.lags=false)
        return np.empty((len(df), 0), np.float32)
    if type(df).__module__.startswith("polars"):
        return df.select(names).to_numpy().astype(np.float32)
    return df[names].to_numpy(dtype=np.float32, na_value=np.nan)


def frame_column(df, name: str) -> np.ndarray:
    return np.asarray(df[name].to_numpy())


def require_columns(df, names: list[str], what: str) -> None:
    """One-line UserError naming the columns of `names` that the frame `df` lacks."""
    have = set(df.columns)
    if missing := [c for c in names if c not in have]:
        shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        raise UserError(f"{what}: missing column(s) the model needs: {shown}")


def row_ids(df) -> np.ndarray:
    """(n,) the row_id column of a pandas or polars test_df, refused (one line) unless integers in int64 range, no nulls."""
    col = df["row_id"]
    ids = np.asarray(col.to_numpy())
    if ids.dtype.kind == "i" or (ids.dtype.kind == "u" and (ids.size == 0 or ids.max() <= np.iinfo(np.int64).max)):
        return ids
    nulls = int(col.null_count() if hasattr(col, "null_count") else col.isna().sum())
    got = f"{nulls} null(s)" if nulls else f"dtype {col.dtype}" + (" beyond int64 range" if ids.dtype.kind == "u" else "")
    raise UserError(f"test_df, column 'row_id': {got}; expected integers (int8 ... int64) in every row")


def check_symbols(symbol: np.ndarray, where) -> None:
    """One-line UserError at the first symbol_id (n,) int64 outside 0..SYMBOL_MAX, the range ingest
    accepts, so that serving looks lags up as training computed them; `where(i)` names row i."""
    bad = (symbol < 0) | (symbol > SYMBOL_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{where(i)}, column 'symbol_id': got {symbol[i]}; expected an integer from 0 to {SYMBOL_MAX}")


class LagTable:
    """The last `lags_df`: rows keyed by (time_id, symbol_id), valid on the date it came with. Its
    date_id column, when it has one, must be that date (the date served, as the API labels lags)."""

    def __init__(self, date: int, lags_df, names: list[str]):
        require_columns(lags_df, ["time_id", "symbol_id", *names], "lags_df")
        if "date_id" in lags_df.columns and (other := frame_column(lags_df, "date_id") != date).any():
            raise UserError(f"lags_df: date_id {frame_column(lags_df, 'date_id')[other][0]} handed with test_df's date_id {date}; "
                            f"expected the lags of date_id {date} (the previous date's responders, labelled with the date served)")
        self.date, self.names = date, names
        symbol = np.asarray(frame_column(lags_df, "symbol_id"), np.int64)
        check_symbols(symbol, lambda i: f"lags_df row {i}")
        keys = self.key(frame_column(lags_df, "time_id"), symbol)
        order = np.argsort(keys, kind="stable")
        self.keys, self.values = keys[order], frame_matrix(lags_df, names)[order]

    @staticmethod
    def key(time_id: np.ndarray, symbol: np.ndarray) -> np.ndarray:
        return np.asarray(time_id, np.int64) << 32 | np.asarray(symbol, np.int64) & 0xFFFFFFFF

    def __call__(self, time_id: np.ndarray, symbol: np.ndarray, names: list[str]) -> np.ndarray:
        """(n, len(names)) float32 values of the rows (time_id, symbol) (n,), NaN where absent."""
        out = np.full((len(time_id), len(names)), np.nan, dtype=np.float32)
        if len(self.keys) == 0:
            return out
        keys = self.key(time_id, symbol)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[at] == keys
        cols = [self.names.index(c) for c in names]
        out[hit] = self.values[np.ix_(at[hit], cols)]
        return out


class InstrumentState:
    """Per instrument (by symbol_id): its date, its ffill's last values and, for windows, a ring
    of its last W filled rows. `inputs(date, symbol, x)` fills x (n, F) in place and returns the
    model's batch: x (n, F), or x (n, W, F) float32 and mask (n, W) bool."""

    def __init__(self, spec: InputSpec, n_ffill: int):
        self.value, self.ffill = spec.values, n_ffill if spec.fill == "ffill" else 0
        self.window = spec.window_spec
        self.W, F = (self.window.length if self.window else 1), len(spec.features)
        self.slot: dict[int, int] = {}
        self.day = np.empty(0, np.int64)
        self.last = np.empty((0, self.ffill), np.float32)
        self.ring = np.empty((0, self.W if self.window else 0, F), np.float32)
        self.seen = np.empty(0, np.int64)  # rows written to the ring
        self.filled = np.empty(0, np.int64)  # real rows of the current window (<= W)

    def slots(self, symbol: np.ndarray) -> np.ndarray:
        """Each symbol's slot, new ones added (empty state)."""
        new = [int(s) for s in dict.fromkeys(symbol.tolist()) if int(s) not in self.slot]
        if new:
            k, base = len(new), len(self.slot)
            self.slot.update((s, base + i) for i, s in enumerate(new))
            self.day = np.r_[self.day, np.full(k, -1, np.int64)]
            self.last = np.concatenate([self.last, np.full((k, self.last.shape[1]), np.nan, np.float32)])
            self.ring = np.concatenate([self.ring, np.zeros((k, *self.ring.shape[1:]), np.float32)])
            self.seen, self.filled = np.r_[self.seen, np.zeros(k, np.int64)], np.r_[self.filled, np.zeros(k, np.int64)]
        return np.fromiter((self.slot[s] for s in symbol.tolist()), np.int64, len(symbol))

    def inputs(self, date: int, symbol: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
        idx = self.slots(symbol)
        new_day = self.day[idx] != date
        self.day[idx] = date
        if self.ffill:
            last = self.last[idx]
            last[new_day] = np.nan
            head = x[:, : self.ffill]
            np.copyto(head, last, where=np.isnan(head))
            self.last[idx] = head
        np.copyto(x, self.value, where=np.isnan(x))
        if self.window is None:
            return {"x": x}
        W = self.W
        if not self.window.cross_days:
            self.filled[idx[new_day]] = 0
        self.ring[idx, self.seen[idx] % W] = x
        self.seen[idx] += 1
        self.filled[idx] = np.minimum(self.filled[idx] + 1, W)
        steps = (self.seen[idx, None] + np.arange(W)) % W  # oldest .. newest (the row itself)
        xw = self.ring[idx[:, None], steps]
        mask = np.arange(W) >= (W - self.filled[idx])[:, None]
        xw[~mask] = 0.0
        return {"x": xw, "mask": mask}


class GroupedMember:
    """One grouped regression run's model with its inputs (preprocess.json), per-instrument state
    and, with `online`, its Learner (targets: the run's config.yaml data.targets)."""

    def __init__(self, run_dir: Path, checkpoint: Path, prep: InputSpec, model: TradeModule, targets: list[str],
                 online: OnlineConfig | None = None):
        self.run_dir, self.checkpoint, self.prep, self.model = run_dir, checkpoint, prep, model
        self.window = prep.window_spec
        self.lags = [f for f in prep.features if LAG.match(f)]
        self.features = prep.features[: len(prep.features) - len(self.lags)]
        if prep.features[len(self.features):] != self.lags:
            raise UserError(f"{run_dir / 'preprocess.json'}: lag features must follow the store features "
                            f"(as training writes them); restore the run's original file")
        if len(targets) != getattr(model, "n_targets", len(targets)):
            raise UserError(f"{run_dir / 'config.yaml'}: data.targets has {len(targets)} columns but the model has "
                            f"{model.n_targets} outputs")
        self.targets = targets
        self.learner = None if online is None else Learner(model, targets, online)
        self.reset()

    def reset(self) -> None:
        self.state = InstrumentState(self.prep, len(self.features))

    @property
    def name(self) -> str:
        return self.run_dir.name

    def predict(self, date: int, time_id: np.ndarray, symbol: np.ndarray, x: np.ndarray, lags: LagTable | None,
                weight: np.ndarray) -> np.ndarray:
        """(n,) float32 predictions of target 0 for one time step's rows: raw store features x (n, F)
        in this member's order; lag features from `lags` (None: all missing)."""
        lag = lags(time_id, symbol, self.lags) if lags is not None else np.full((len(x), len(self.lags)), np.nan, np.float32)
        inputs = self.state.inputs(date, symbol, np.concatenate([x, lag], axis=1))
        if self.learner is not None:
            self.learner.keep(date, time_id, symbol, inputs, weight)
        with torch.inference_mode():
            return self.model.predict_output({k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
