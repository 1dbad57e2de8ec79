"""LightningDataModule over a jsmp store: rows for the MLP, gathered per batch by index."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from jsmp.batches.fill import FILLS, fill_source, nan_rows
from jsmp.batches.inputs import InputSpec
from jsmp.batches.labels import Labels
from jsmp.batches.rowtable import RowTable
from jsmp.batches.sampler import BatchIndexSampler
from jsmp.batches.splits import Split, choose
from jsmp.batches.windows import WindowSpec, gather_windows
from jsmp.data.synthetic import SynthSpec, write_store
from jsmp.errors import UserError
from jsmp.metrics import utility_score
from jsmp.store.store import Store, is_store

log = logging.getLogger(__name__)
EVAL_BATCH_BYTES = 1 << 28  # 256 MB: a windowed validation batch's inputs

def resolve_store(store: str | None, data_dir: str, synthetic: dict) -> Path:
    """The store to train on: `store` if given, else the default synthetic store in `data_dir`."""
    if store is not None:
        return Path(store)
    try:
        spec = SynthSpec(**synthetic)
    except (TypeError, ValueError) as e:
        raise UserError(f"data.synthetic: {e}") from None
    return Path(data_dir) / spec.name


class RowBatches(Dataset):
    """`dataset[positions]` -> one batch dict, gathered from the store in one go.

    positions: int64 array of indices into `rows` (this split's store rows).
    Batch: x (B, F) float32 with NaNs filled; y = target > 0, (B,) for one target or (B, T)
    (see jsmp.batches.labels), [sample_weight (B,)]; with `scoring` (evaluation batches) also
    weight, resp (B,) float32 and day (B,) int64 day index, for the per-date utility.

    Only the features are read from the memmap per batch. The rest is small: taken once for
    the split's rows at set-up and held in memory as one packed record per row (RowTable),
    with each row's NaN flag (jsmp.batches.fill.nan_rows); the features are gathered and their
    NaNs filled in one compiled pass (Store.gather), only looking for NaNs in flagged rows.
    """

    def __init__(self, store: Store, rows: np.ndarray, fill_value: np.ndarray, labels: Labels | None = None,
                 scoring: bool = True):
        if store.n_rows >= 2**31:
            raise UserError(f"store {store.path}: {store.n_rows} rows; at most 2**31 - 1 are supported")
        self.store, self.rows, self.fill_value = store, rows, fill_value
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


class WindowBatches(RowBatches):
    """RowBatches whose inputs are each target row's window (see jsmp.batches.windows):
    x (B, W, F) float32, padding zeroed; mask (B, W) bool, False on padding."""

    def __init__(self, store: Store, rows: np.ndarray, fill_value: np.ndarray, labels: Labels | None,
                 scoring: bool, window: WindowSpec):
        super().__init__(store, rows, fill_value, labels, scoring)
        self.window = window
        self.day_start = None if window.cross_days else store.day_offsets[store.row_day_index()]

    def inputs(self, rows: np.ndarray, has_nan: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """x and mask of the target rows' windows (the targets' `has_nan` flags do not cover their windows)."""
        day_start = None if self.day_start is None else self.day_start.take(rows)
        x, mask = gather_windows(self.features, rows, self.window, day_start)
        return {"x": torch.from_numpy(x), "mask": torch.from_numpy(mask)}


class JsmpDataModule(L.LightningDataModule):
    """Splits a store by date and serves batches of rows.

    Args:
        store: store directory; None trains on the built-in synthetic data, generated into
            `data_dir` on first use and reused afterwards.
        frac: fraction of whole days kept, in (0, 1]; `keep` says which end ('end' = most recent).
        split: {val_frac, gap_days} of the holdout split (the default).
        cv: {folds, gap_days} of the purged group time-series folds; `fold` (0..folds-1) picks
            one and replaces the holdout; None keeps the holdout.
        fill: how NaNs are filled: 'mean' (training-day feature means), 'ffill' (forward within
            a day in ts_id order, then training means; cached once per store) or 'zero'.
        drop_zero_weight: leave weight-0 rows out of training (validation keeps all rows).
        verify: check the store's shard checksums before training (one read of the store).
        window: {length, cross_days, shuffle_block} of the windows served when `windowed`
            (jsmp.batches.windows.WindowSpec); the recipe sets `windowed` for sequence models.
        targets: return columns, one binary label `column > 0` each (the model gets one output per target).
        sample_weight: null, or how rows weigh in the loss (jsmp.batches.labels.SAMPLE_WEIGHTS).
        min_date: days with an earlier date are dropped before splitting (null keeps all).
    """

    def __init__(self, store: str | None = None, data_dir: str = "data", synthetic: dict | None = None,
                 frac: float = 1.0, keep: str = "end", split: dict | None = None, cv: dict | None = None,
                 fold: int | None = None, fill: str = "mean",
                 drop_zero_weight: bool = True, batch_size: int = 4096, eval_batch_size: int = 16384,
                 num_workers: int = 0, pin_memory: bool = False, seed: int = 0, verify: bool = True,
                 window: dict | None = None, windowed: bool = False, targets=("resp",),
                 sample_weight: str | None = None, min_date: int | None = None):
        super().__init__()
        if fill not in FILLS:
            raise UserError(f"data.fill must be one of {list(FILLS)}, got {fill!r}")
        if batch_size < 1 or eval_batch_size < 1:
            raise UserError(f"data.batch_size and data.eval_batch_size must be >= 1, got {batch_size}, {eval_batch_size}")
        self.store_path = resolve_store(store, data_dir, synthetic or {})
        self.synthetic = None if store is not None else SynthSpec(**(synthetic or {}))
        self.frac, self.keep, self.split_cfg = frac, keep, dict(split or {})
        self.cv_cfg, self.fold = dict(cv or {}), fold
        self.fill, self.drop_zero_weight = fill, drop_zero_weight
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.pin_memory, self.seed = num_workers, pin_memory, seed
        self.verify = verify
        self.window = WindowSpec(**(window or {})) if windowed else None
        self.targets, self.sample_weight, self.min_date = targets, sample_weight, min_date
        self.store: Store | None = None
        self.split: Split | None = None

    def prepare_data(self) -> None:
        if self.synthetic is not None and not is_store(self.store_path):
            log.info("generating the default synthetic data set into %s", self.store_path)
            write_store(self.synthetic, self.store_path)

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:
            return
        store = Store(self.store_path)
        if self.verify:
            store.verify()
        self.split = choose(store.days, self.frac, self.keep, self.split_cfg, self.cv_cfg, self.fold, self.min_date)
        train_rows = store.day_rows(self.split.train)
        if self.drop_zero_weight:
            train_rows = train_rows[np.asarray(store.side("weight")[train_rows]) > 0]
        source, self.fill_value = fill_source(store, self.fill, self.split.train)
        labels = Labels(store, self.targets, self.sample_weight)
        self.train_set = self._batches(source, train_rows, labels, scoring=False)
        self.val_set = self._batches(source, store.day_rows(self.split.val), labels, scoring=True)
        self.store = store
        log.info("store %s: %d train rows on %d days, %d val rows on %d days", self.store_path,
                 len(self.train_set), len(self.split.train), len(self.val_set), len(self.split.val))

    def _batches(self, store: Store, rows: np.ndarray, labels: Labels, scoring: bool) -> RowBatches:
        """Batches of `rows`; `scoring` adds what the utility needs (validation), not training."""
        if self.window is None:
            return RowBatches(store, rows, self.fill_value, labels, scoring)
        return WindowBatches(store, rows, self.fill_value, labels, scoring, self.window)

    def model_kwargs(self) -> dict:
        """What the model's constructor needs from the data."""
        return {"n_features": self.n_features, "n_days": self.n_days, "n_targets": self.n_targets}

    def preprocess(self) -> InputSpec:
        """How rows were prepared (features, fill, window): saved with the run for inference."""
        window = None if self.window is None else {"length": self.window.length, "cross_days": self.window.cross_days}
        return InputSpec(list(self.store.features), self.fill, self.fill_value.tolist(), window)

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
        return 1 if isinstance(self.targets, str) else len(self.targets)

    @property
    def n_days(self) -> int:
        return Store(self.store_path).n_days if self.store is None else self.store.n_days

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        block = self.window.shuffle_block if self.window is not None else 1
        sampler = BatchIndexSampler(len(dataset), batch_size, shuffle, seed=self.seed, rank=rank, world_size=world,
                                    block=block)
        # Pinned host memory lets Lightning copy batches to a CUDA device without blocking.
        on_cuda = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=self.num_workers,
                          pin_memory=self.pin_memory or on_cuda, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_rows_per_batch(), shuffle=False)

    def eval_rows_per_batch(self) -> int:
        """`eval_batch_size`, lowered for windows so a batch's x (B, W, F) float32 stays under
        EVAL_BATCH_BYTES (but never below the training batch size)."""
        if self.window is None:
            return self.eval_batch_size
        cap = EVAL_BATCH_BYTES // (self.window.length * self.n_features * 4)
        return min(self.eval_batch_size, max(self.batch_size, cap))
