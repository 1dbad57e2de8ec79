"""LightningDataModule over a jsmp store (docs/store.md): rows for row models, windows for
sequence models (docs/sequence-models.md), gathered per batch by index."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from jsmp.batches.config import LoaderConfig, RowsConfig
from jsmp.batches.contract import RecipeData, wants_windows
from jsmp.batches.fill import FILLS, fill_source, nan_rows
from jsmp.batches.inputs import InputSpec
from jsmp.batches.labels import Labels
from jsmp.batches.rowtable import RowTable
from jsmp.batches.sampler import BatchIndexSampler
from jsmp.batches.splits import Split, choose
from jsmp.batches.windows import WindowSpec, gather_windows
from jsmp.errors import UserError
from jsmp.metrics import utility_score
from jsmp.store.store import Store

log = logging.getLogger(__name__)
EVAL_BATCH_BYTES = 1 << 28  # 256 MB: a windowed validation batch's inputs
FEW_BATCHES = 4  # fewer training batches per epoch than this: warn (a few optimizer steps an epoch learn little)


class RowBatches(Dataset):
    """`dataset[positions]` -> one batch dict, gathered from the store in one go.

    positions: int64 array of indices into `rows` (this split's store rows).
    Batch: x (B, F) float32 with NaNs filled as `spec` says (the store passed in is already the
    forward-filled one for ffill: jsmp.batches.fill.fill_source); y = target > 0, (B,) for one
    target or (B, T) (see jsmp.batches.labels), [sample_weight (B,)]; with `scoring`
    (evaluation batches) also weight, resp (B,) float32 and day (B,) int64 day index, for the
    per-date utility.

    Only the features are read from the memmap per batch. The rest is small: taken once for
    the split's rows at set-up and held in memory as one packed record per row (RowTable),
    with each row's NaN flag (jsmp.batches.fill.nan_rows); the features are gathered and their
    NaNs filled in one compiled pass (Store.gather), only looking for NaNs in flagged rows.
    """

    def __init__(self, store: Store, rows: np.ndarray, spec: InputSpec, labels: Labels | None = None,
                 scoring: bool = True):
        if store.n_rows >= 2**31:
            raise UserError(f"store {store.path}: {store.n_rows} rows; at most 2**31 - 1 are supported")
        self.store, self.rows, self.fill_value = store, rows, spec.values
        self.has_nan = nan_rows(store)
        columns = {"row": rows.astype(np.int32), "has_nan": self.has_nan.take(rows), **(labels or Labels(store))(rows)}
        columns["y"] = columns["y"].astype(np.uint8)  # 0/1: a byte each keeps the record small
        if scoring:
            columns.update(weight=store.side("weight").take(rows).astype(np.float32),
                           resp=store.side("resp").take(rows).astype(np.float32),
                           day=store.row_day_index().take(rows))
        self.table = RowTable(columns)

    def __len__(self) -> int:
        return len(self.rows)

    def features(self, rows: np.ndarray, has_nan: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), F) features with NaNs filled; has_nan: the rows' NaN flags, if known."""
        has_nan = self.has_nan.take(rows) if has_nan is None else has_nan
        return self.store.gather(rows, self.fill_value, has_nan)

    def inputs(self, rows: np.ndarray, has_nan: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """The model inputs of the target rows: x (B, F)."""
        return {"x": torch.from_numpy(self.features(rows, has_nan))}

    def __getitem__(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        cols = self.table.take(positions)
        batch = self.inputs(cols.pop("row"), cols.pop("has_nan"))
        cols["y"] = cols["y"].astype(np.float32)
        if "day" in cols:
            cols["day"] = cols["day"].astype(np.int64)
        batch.update((k, torch.from_numpy(v)) for k, v in cols.items())
        return batch

    __getitems__ = __getitem__  # DataLoader(batch_sampler=...): a batch's positions in one call


def whole_batch(batch: dict) -> dict:
    """The loaders' collate_fn: `__getitems__` returns the batch whole."""
    return batch


class WindowBatches(RowBatches):
    """RowBatches whose inputs are each target row's window (`spec.window`, see jsmp.batches.windows):
    x (B, W, F) float32, padding zeroed; mask (B, W) bool, False on padding."""

    def __init__(self, store: Store, rows: np.ndarray, spec: InputSpec, labels: Labels | None = None,
                 scoring: bool = True):
        super().__init__(store, rows, spec, labels, scoring)
        self.window = spec.window_spec
        self.day_start = None if self.window.cross_days else store.day_offsets[store.row_day_index()]

    def inputs(self, rows: np.ndarray, has_nan: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """x and mask of the target rows' windows (the targets' `has_nan` flags do not cover their windows)."""
        day_start = None if self.day_start is None else self.day_start.take(rows)
        x, mask = gather_windows(self.features, rows, self.window, day_start)
        return {"x": torch.from_numpy(x), "mask": torch.from_numpy(mask)}


def batches(store: Store, rows: np.ndarray, spec: InputSpec, labels: Labels | None = None,
            scoring: bool = True) -> RowBatches:
    """The batches of `rows` as `spec` makes model inputs: windows when it has a window, else rows."""
    return (RowBatches if spec.window is None else WindowBatches)(store, rows, spec, labels, scoring)


class JsmpDataModule(L.LightningDataModule, RecipeData):
    """Splits a store by date and serves batches of its rows (or of windows, once `connect`ed to a
    sequence model).

    Args:
        store: the store directory (docs/store.md).
        rows: which rows train and validate, labels and NaN fill (jsmp.batches.config.RowsConfig).
        loader: batch sizes and DataLoader settings (jsmp.batches.config.LoaderConfig).
        window: the windows served to a sequence model (jsmp.batches.windows.WindowSpec).
        verify: check the store's shard checksums at set-up (one read of the store).
    """

    def __init__(self, store: str | os.PathLike, rows: RowsConfig | None = None, loader: LoaderConfig | None = None,
                 window: WindowSpec | None = None, verify: bool = True):
        super().__init__()
        self.rows, self.loader = rows or RowsConfig(), loader or LoaderConfig()
        self.window_cfg = window or WindowSpec()
        if self.rows.fill not in FILLS:
            raise UserError(f"data.fill must be one of {list(FILLS)}, got {self.rows.fill!r}")
        if self.loader.batch_size < 1 or self.loader.eval_batch_size < 1:
            raise UserError(f"data.batch_size and data.eval_batch_size must be >= 1, "
                            f"got {self.loader.batch_size}, {self.loader.eval_batch_size}")
        self.store_path, self.verify = Path(store), verify
        self.window: WindowSpec | None = None  # set by connect() for sequence models
        self.store: Store | None = None
        self.split: Split | None = None
        self.spec: InputSpec | None = None

    def connect(self, model_class: type) -> None:
        self.window = self.window_cfg if wants_windows(model_class) else None

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:
            return
        store = Store(self.store_path)
        if self.verify:
            store.verify()
        r = self.rows
        self.split = choose(store.days, r.frac, r.keep, vars(r.split), vars(r.cv), r.fold, r.min_date)
        train_rows = store.day_rows(self.split.train)
        if r.drop_zero_weight:
            train_rows = train_rows[np.asarray(store.side("weight")[train_rows]) > 0]
        source, fill_value = fill_source(store, r.fill, self.split.train)
        window = None if self.window is None else {"length": self.window.length, "cross_days": self.window.cross_days}
        self.spec = InputSpec(list(store.features), r.fill, fill_value.tolist(), window)
        labels = Labels(store, r.targets, r.sample_weight)
        self.train_set = batches(source, train_rows, self.spec, labels, scoring=False)
        self.val_set = batches(source, store.day_rows(self.split.val), self.spec, labels, scoring=True)
        self.store = store
        log.info("store %s: %d train rows on %d days, %d val rows on %d days", self.store_path,
                 len(self.train_set), len(self.split.train), len(self.val_set), len(self.split.val))
        self.warn_few_batches()

    def warn_few_batches(self) -> None:
        """One warning line when the split leaves fewer than FEW_BATCHES training batches per epoch
        (per process under DDP), naming the numbers and the settings that would give more."""
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
        return {"n_features": self.n_features, "n_days": self.n_days, "n_targets": self.n_targets}

    def input_spec(self) -> InputSpec:
        return self.spec

    def reference_metrics(self) -> dict[str, float]:
        """Utility of the generator's ideal actions on the validation rows (synthetic stores only)."""
        if self.store is None or not self.store.has("ideal"):
            return {}
        rows = self.val_set.rows
        s = self.store
        u = utility_score(s.side("date")[rows], s.side("weight")[rows], s.side("resp")[rows], s.side("ideal")[rows])
        return {"val/utility_ideal": u}

    @property
    def n_features(self) -> int:
        return Store(self.store_path).n_features if self.store is None else self.store.n_features

    @property
    def n_targets(self) -> int:
        return len(self.rows.targets)

    @property
    def n_days(self) -> int:
        return Store(self.store_path).n_days if self.store is None else self.store.n_days

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        trainer, cfg = self.trainer, self.loader
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        block = self.window.shuffle_block if self.window is not None else 1
        # trainer.overfit_batches (debug=overfit): the same first batches every epoch (Lightning's meaning: no shuffle)
        overfit = trainer is not None and trainer.overfit_batches > 0
        sampler = BatchIndexSampler(len(dataset), batch_size, shuffle and not overfit, seed=cfg.seed, rank=rank,
                                    world_size=world, block=block)
        # Pinned host memory lets Lightning copy batches to a CUDA device without blocking.
        on_cuda = trainer is not None and trainer.strategy.root_device.type == "cuda"
        # our sampler is the batch sampler (a batch's positions reach dataset.__getitems__ in one call), so
        # loader.sampler stays torch's SequentialSampler, which Lightning's overfit_batches leaves alone
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=whole_batch, num_workers=cfg.num_workers,
                          pin_memory=cfg.pin_memory or on_cuda, persistent_workers=cfg.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.loader.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_rows_per_batch(), shuffle=False)

    def eval_rows_per_batch(self) -> int:
        """`eval_batch_size`, lowered for windows so a batch's x (B, W, F) float32 stays under
        EVAL_BATCH_BYTES (but never below the training batch size)."""
        if self.window is None:
            return self.loader.eval_batch_size
        cap = EVAL_BATCH_BYTES // (self.window.length * self.n_features * 4)
        return min(self.loader.eval_batch_size, max(self.loader.batch_size, cap))
