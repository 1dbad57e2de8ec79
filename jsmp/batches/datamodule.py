"""LightningDataModule over a jsmp store (docs/store.md): rows for row models, windows for
sequence models (docs/sequence-models.md), gathered per batch by index."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from jsmp.batches.config import LoaderConfig, RowsConfig, typed
from jsmp.batches.contract import RecipeData, wants_days, wants_windows
from jsmp.batches.fill import feature_means, fill_source, nan_rows
from jsmp.batches.labels import Labels
from jsmp.batches.lags import lag_names, lag_store
from jsmp.batches.resident import ResidentBatches, ResidentDays, ResidentLoader, estimate_bytes, resident, setting, wanted
from jsmp.batches.rowtable import RowTable
from jsmp.batches.sampler import BatchIndexSampler
from jsmp.batches.splits import Split, choose
from jsmp.data.schema import FEATURE_LIMIT
from jsmp.errors import UserError
from jsmp.inputs.daygrid import time_grid
from jsmp.inputs.fill import FILLS
from jsmp.inputs.spec import InputSpec, forward_filled
from jsmp.inputs.windows import WindowSpec, check_window, gather_windows, take_windows, window_index, window_starts
from jsmp.metrics import r2_score, utility_score
from jsmp.store.store import Store

log = logging.getLogger(__name__)
EVAL_BATCH_BYTES = 1 << 28  # 256 MB: a windowed validation batch's inputs
FEW_BATCHES = 4  # fewer training batches per epoch than this: warn (a few optimizer steps an epoch learn little)


class RowBatches(Dataset):
    """`dataset[positions]` -> one batch dict, gathered from the store in one go.

    positions: int64 array of indices into `rows` (this split's store rows).
    Batch: x (B, F) float32 with NaNs filled as `spec` says (the store passed in is already the
    forward-filled one for ffill: jsmp.batches.fill.fill_source), with `lags` (a store of the
    same rows: jsmp.batches.lags) x (B, F + L), its L features after the store's; y: the labels
    (jsmp.batches.labels: (B,) for one target or (B, T), uint8-packed 0/1 for a binary task,
    float32 values for regression), [sample_weight (B,)]; with `scoring` (evaluation batches)
    also weight, resp (B,) float32 (the scored column, `labels.score_column`) and day (B,) int64
    day index, for the per-date utility and the R².

    Only the features are read from the memmap per batch. The rest is small: taken once for
    the split's rows at set-up and held in memory as one packed record per row (RowTable),
    with each row's NaN flag (jsmp.batches.fill.nan_rows); the features are gathered and their
    NaNs filled in one compiled pass (Store.gather) into one array, only looking for NaNs in the
    flagged rows of the store (in every row of `lags`).
    """

    def __init__(self, store: Store, rows: np.ndarray, spec: InputSpec, labels: Labels | None = None,
                 scoring: bool = True, lags: Store | None = None):
        if store.n_rows >= 2**31:
            raise UserError(f"store {store.path}: {store.n_rows} rows; at most 2**31 - 1 are supported")
        if lags is not None and lags.n_rows != store.n_rows:
            raise UserError(f"store {lags.path}: {lags.n_rows} rows, expected the {store.n_rows} of {store.path}")
        n_lags = 0 if lags is None else lags.n_features
        if len(spec.values) != store.n_features + n_lags:
            raise ValueError(f"spec has {len(spec.values)} fill values for {store.n_features} + {n_lags} features")
        self.store, self.rows, self.lags, self.fill_value = store, rows, lags, spec.values
        self.has_nan = nan_rows(store)
        labels = labels or Labels(store)
        index = self.index_columns(rows)
        self.index_keys = tuple(index)
        columns = {**index, "has_nan": self.has_nan.take(rows), **labels(rows)}
        if labels.binary:
            columns["y"] = columns["y"].astype(np.uint8)  # 0/1: a byte each keeps the record small
        if scoring:
            columns.update(weight=store.side("weight").take(rows).astype(np.float32),
                           resp=store.side(labels.score_column).take(rows).astype(np.float32),
                           day=store.row_day_index().take(rows))
        self.table = RowTable(columns)

    def index_columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The columns locating each target row, passed to `inputs` per batch: its store row (int32)."""
        return {"row": rows.astype(np.int32)}

    def __len__(self) -> int:
        return len(self.rows)

    def features(self, rows: np.ndarray, has_nan: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), F [+ L]) features (then lags) with NaNs filled; has_nan: the rows' NaN flags, if known."""
        has_nan = self.has_nan.take(rows) if has_nan is None else has_nan
        if self.lags is None:
            return self.store.gather(rows, self.fill_value, has_nan)
        n = self.store.n_features
        out = np.empty((len(rows), len(self.fill_value)), dtype=np.float32)
        self.store.gather(rows, self.fill_value[:n], has_nan, out=out[:, :n])
        self.lags.gather(rows, self.fill_value[n:], out=out[:, n:])
        return out

    def inputs(self, row: np.ndarray, has_nan: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """The model inputs of the target rows: x (B, F)."""
        return {"x": torch.from_numpy(self.features(row, has_nan))}

    def __getitem__(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        cols = self.table.take(positions)
        batch = self.inputs(has_nan=cols.pop("has_nan"), **{k: cols.pop(k) for k in self.index_keys})
        cols["y"] = cols["y"].astype(np.float32, copy=False)
        if "day" in cols:
            cols["day"] = cols["day"].astype(np.int64)
        batch.update((k, torch.from_numpy(v)) for k, v in cols.items())
        return batch

    __getitems__ = __getitem__  # DataLoader(batch_sampler=...): a batch's positions in one call


def whole_batch(batch: dict) -> dict:
    """The loaders' collate_fn: `__getitems__` returns the batch whole."""
    return batch


class WindowBatches(RowBatches):
    """RowBatches whose inputs are each target row's window (`spec.window`, see jsmp.inputs.windows):
    x (B, W, F) float32, padding zeroed; mask (B, W) bool, False on padding. In a grouped store
    the window is the target's instrument's last W rows, each target's position and first
    allowed position kept in the table (`pos`, `first`, int32: computed once per split)."""

    def __init__(self, store: Store, rows: np.ndarray, spec: InputSpec, labels: Labels | None = None,
                 scoring: bool = True, lags: Store | None = None):
        self.window = spec.window_spec
        super().__init__(store, rows, spec, labels, scoring, lags)
        if store.group is None and not self.window.cross_days:
            self.day_start = store.day_offsets[store.row_day_index()]
        else:
            self.day_start = None

    def index_columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        if self.store.group is None:
            return super().index_columns(rows)
        pos, first = window_starts(self.store, rows, self.window.cross_days)
        return {"row": rows.astype(np.int32), "pos": pos.astype(np.int32), "first": first.astype(np.int32)}

    def inputs(self, row: np.ndarray, has_nan: np.ndarray | None = None, pos: np.ndarray | None = None,
               first: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """x and mask of the target rows' windows (the targets' `has_nan` flags do not cover their windows);
        `pos`, `first`: a grouped store's (from the table; looked up when not given)."""
        if self.store.group is None:
            day_start = None if self.day_start is None else self.day_start.take(row)
            x, mask = gather_windows(self.features, row, self.window, day_start)
        else:
            if pos is None:
                pos, first = window_starts(self.store, row, self.window.cross_days)
            x, mask = take_windows(self.features, *window_index(pos, self.window.length, first, self.store.group_order))
        return {"x": torch.from_numpy(x), "mask": torch.from_numpy(mask)}


def batches(store: Store, rows: np.ndarray, spec: InputSpec, labels: Labels | None = None,
            scoring: bool = True, lags: Store | None = None) -> RowBatches:
    """The batches of `rows` as `spec` makes model inputs: windows when it has a window, else rows."""
    return (RowBatches if spec.window is None else WindowBatches)(store, rows, spec, labels, scoring, lags)


class JsmpDataModule(L.LightningDataModule, RecipeData):
    """Splits a store by date and serves batches of its rows (or of windows, once `connect`ed to a
    sequence model).

    Args:
        store: the store directory (docs/store.md).
        rows: which rows train and validate, labels and NaN fill (jsmp.batches.config.RowsConfig).
        loader: batch sizes, DataLoader settings and data.resident (jsmp.batches.config.LoaderConfig,
            jsmp.batches.resident: batches gathered from tensors on the training device).
        window: the windows served to a sequence model (jsmp.inputs.windows.WindowSpec).
        verify: check the store's shard checksums at set-up (one read of the store).
        days_per_batch: dates per training and validation batch of day samples (data.days_per_batch).
    """

    @classmethod
    def from_settings(cls, store: str | os.PathLike, data: Mapping) -> JsmpDataModule:
        """The DataModule of flat `data` settings, as the `data` config holds them (`fill`, `split`,
        `batch_size`, `window`, `verify`, `days_per_batch`, ...; other keys ignored): what training
        builds (jsmp/run/dataconfig.py) and what `jsmp eval` rebuilds from a run's config.yaml."""
        window = data.get("window") or {}
        return cls(store, typed(RowsConfig, data), typed(LoaderConfig, data),
                   window if isinstance(window, WindowSpec) else WindowSpec(**window),
                   data.get("verify", True), data.get("days_per_batch", 1))

    def __init__(self, store: str | os.PathLike, rows: RowsConfig | None = None, loader: LoaderConfig | None = None,
                 window: WindowSpec | None = None, verify: bool = True, days_per_batch: int = 1):
        from jsmp.batches.days import check_days_per_batch

        super().__init__()
        self.days_per_batch = check_days_per_batch(days_per_batch)
        self.rows, self.loader = rows or RowsConfig(), loader or LoaderConfig()
        self.window_cfg = window or WindowSpec()
        if self.rows.fill not in FILLS:
            raise UserError(f"data.fill must be one of {list(FILLS)}, got {self.rows.fill!r}")
        if self.loader.batch_size < 1 or self.loader.eval_batch_size < 1:
            raise UserError(f"data.batch_size and data.eval_batch_size must be >= 1, "
                            f"got {self.loader.batch_size}, {self.loader.eval_batch_size}")
        self.resident = setting(self.loader.resident)
        self.held: dict[int, ResidentBatches | ResidentDays] = {}  # id(train_set / val_set) -> its resident tensors
        self.store_path, self.verify = Path(store), verify
        self.window: WindowSpec | None = None  # set by connect() for sequence models
        self.day_model: str | None = None  # set by connect() for a model of day samples: its class name
        self.store: Store | None = None
        self.split: Split | None = None
        self.spec: InputSpec | None = None
        self.labels: Labels | None = None

    def connect(self, model_class: type) -> None:
        self.window = self.window_cfg if wants_windows(model_class) else None
        self.day_model = model_class.__name__ if wants_days(model_class) else None

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:
            return
        store = Store(self.store_path)
        if self.day_model is not None:
            from jsmp.batches.days import check_days

            check_days(store, self.day_model)
        if self.verify:
            store.verify()
        r = self.rows
        self.split = choose(store.days, r.frac, r.keep, vars(r.split), vars(r.cv), r.fold, r.min_date)
        train_rows = store.day_rows(self.split.train)
        if r.drop_zero_weight:
            train_rows = train_rows[np.asarray(store.side("weight")[train_rows]) > 0]
        self.labels = labels = Labels(store, r.targets, r.sample_weight, r.task)
        source, fill_value = fill_source(store, r.fill, self.split.train)
        lags = lag_store(store) if r.lags else None
        names = list(store.features)
        if lags is not None:  # mean-filled whatever data.fill says (zeros for zero): a lag is missing only for a new row
            names += lags.features
            lag_fill = np.zeros(lags.n_features, np.float32) if r.fill == "zero" else feature_means(lags, self.split.train)
            fill_value = np.concatenate([fill_value, lag_fill])
        window = None if self.window is None else {"length": self.window.length, "cross_days": self.window.cross_days}
        lag_features = list(lags.features) if lags is not None else []
        self.spec = InputSpec(names, r.fill, fill_value.tolist(), window, group=store.group,
                              feature_limit=store.feature_limit or FEATURE_LIMIT, targets=list(r.targets), task=r.task,
                              ffill=forward_filled(names, lag_features, r.fill), lag_features=lag_features,
                              day=self.day_model is not None,
                              time_ids=time_grid(store).tolist() if self.day_model is not None else None,
                              sample_weight=r.sample_weight)
        if self.day_model is not None:
            from jsmp.batches.days import DayBatches  # (days.py builds on RowBatches, defined here)

            self.train_set = DayBatches(source, self.split.train, train_rows, self.spec, labels, lags)
            self.val_set = DayBatches(source, self.split.val, store.day_rows(self.split.val), self.spec, labels, lags)
        else:
            self.train_set = batches(source, train_rows, self.spec, labels, scoring=False, lags=lags)
            self.val_set = batches(source, store.day_rows(self.split.val), self.spec, labels, scoring=True, lags=lags)
        self.store = store
        if self.window is not None:  # (before a batch is gathered: a window that cannot fit is one line)
            batch_rows = max(min(self.loader.batch_size, len(self.train_set)), min(self.eval_rows_per_batch(), len(self.val_set)))
            check_window(self.window, store, len(names), batch_rows, self.loader.num_workers)
        log.info("store %s: %d train rows on %d days, %d val rows on %d days", self.store_path,
                 len(self.train_set.rows), len(self.split.train), len(self.val_set.rows), len(self.split.val))
        self.warn_few_batches()

    def warn_few_batches(self) -> None:
        """One warning line when the split leaves fewer than FEW_BATCHES training batches per epoch
        (per process under DDP), naming the numbers and the settings that would give more."""
        if self.day_model is not None:  # a batch is one date (the log line above gives the dates)
            return
        world = self.trainer.world_size if self.trainer is not None else 1
        rows, size = len(self.train_set), self.loader.batch_size
        n = -(-(rows // world) // size)
        if n >= FEW_BATCHES:
            return
        r = self.rows
        gap = ("data.cv.gap_days", r.cv.gap_days) if r.fold is not None else ("data.split.gap_days", r.split.gap_days)
        log.warning("only %d training batch%s per epoch (%d rows on %d days, data.batch_size=%d%s): raise data.frac "
                    "(now %g), lower %s (now %d) or lower data.batch_size", n, "" if n == 1 else "es", rows,
                    len(self.split.train), size, f", {world} processes" if world > 1 else "", r.frac, *gap)

    def model_kwargs(self) -> dict:
        return {"n_features": self.n_features, "n_days": self.n_days, "n_targets": self.n_targets, "task": self.rows.task}

    def input_spec(self) -> InputSpec:
        """The whole input contract, known after setup (features and lag features, fills, window, instruments,
        targets and task): saved with the run as preprocess.json, all that serving reads (jsmp.predict)."""
        return self.spec

    def reference_metrics(self) -> dict[str, float]:
        """The generator's `ideal` scored on the validation rows (synthetic stores only): the utility of its
        actions (2021 layout: val/utility_ideal), or for a 2024-layout store, whose ideal is the best causal
        prediction of responder_6, its R² (val/r2_ideal: the ceiling on val/r2) or the utility of trading
        when it is > 0 (data.task=action), when responder_6 is the scored target."""
        if self.store is None or not self.store.has("ideal"):
            return {}
        s, rows = self.store, self.val_set.rows
        date, weight, ideal = s.side("date")[rows], s.side("weight")[rows], s.side("ideal")[rows]
        if s.has("resp"):
            return {"val/utility_ideal": utility_score(date, weight, s.side("resp")[rows], ideal)}
        if self.labels.score_column != "responder_6":
            return {}
        y = s.side("responder_6")[rows]
        if self.rows.task == "regression":  # with factors also the per-instrument ceiling (val/r2_instrument)
            return {"val/r2_ideal": r2_score(y, ideal, weight),
                    **({"val/r2_instrument": r2_score(y, s.side("ideal_instrument")[rows], weight)} if s.has("ideal_instrument") else {})}
        return {"val/utility_ideal": utility_score(date, weight, y, ideal > 0)}

    @property
    def n_features(self) -> int:
        """Model inputs per row: the store's features (and lag features with data.lags), known after setup."""
        if self.spec is not None:
            return len(self.spec.features)
        store = Store(self.store_path)
        return store.n_features + (len(lag_names(store)) if self.rows.lags else 0)

    @property
    def n_targets(self) -> int:
        return len(self.rows.targets)

    @property
    def n_days(self) -> int:
        return Store(self.store_path).n_days if self.store is None else self.store.n_days

    def _loader(self, dataset: RowBatches, batch_size: int, shuffle: bool) -> DataLoader | ResidentLoader:
        trainer, cfg = self.trainer, self.loader
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        block = self.window.shuffle_block if self.window is not None else 1
        # trainer.overfit_batches (debug=overfit): the same first batches every epoch (Lightning's meaning: no shuffle)
        overfit = trainer is not None and trainer.overfit_batches > 0
        sampler = BatchIndexSampler(len(dataset), batch_size, shuffle and not overfit, seed=cfg.seed, rank=rank,
                                    world_size=world, block=block)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if wanted(self.resident, device, estimate_bytes(dataset)):
            return ResidentLoader(self.resident_batches(dataset, device), sampler)
        # Pinned host memory lets Lightning copy batches to a CUDA device without blocking.
        on_cuda = device.type == "cuda"
        # our sampler is the batch sampler (a batch's positions reach dataset.__getitems__ in one call), so
        # loader.sampler stays torch's SequentialSampler, which Lightning's overfit_batches leaves alone
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=whole_batch, num_workers=cfg.num_workers,
                          pin_memory=cfg.pin_memory or on_cuda, persistent_workers=cfg.num_workers > 0)

    def resident_batches(self, dataset: RowBatches, device: torch.device) -> ResidentBatches | ResidentDays:
        """`dataset`'s tensors on `device`, built once (data.resident)."""
        held = self.held.get(id(dataset))
        if held is None or held.device != device:
            held = self.held[id(dataset)] = resident(dataset, device)
            log.info("data.resident: %d rows' batches held on %s (%.1f MB)", len(held), device, held.nbytes / 2**20)
        return held

    def train_dataloader(self) -> DataLoader | ResidentLoader:
        return self._loader(self.train_set, self.day_batch() or self.loader.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | ResidentLoader:
        return self._loader(self.val_set, self.day_batch() or self.eval_rows_per_batch(), shuffle=False)

    def day_batch(self) -> int | None:
        """Dates per batch of day samples (data.days_per_batch); None for rows and windows."""
        return self.days_per_batch if self.day_model is not None else None

    def eval_rows_per_batch(self) -> int:
        """`eval_batch_size`, lowered for windows so a batch's x (B, W, F) float32 stays under
        EVAL_BATCH_BYTES (but never below the training batch size)."""
        if self.window is None:
            return self.loader.eval_batch_size
        cap = EVAL_BATCH_BYTES // (self.window.length * self.n_features * 4)
        return min(self.loader.eval_batch_size, max(self.loader.batch_size, cap))
