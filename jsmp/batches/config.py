"""The JsmpDataModule's settings in typed groups; with the window (jsmp.inputs.windows.WindowSpec)
they make the `data` config's schema (jsmp/run/dataconfig.py), which keeps their keys: `data.fill`,
`data.split.gap_days`, `data.batch_size`..."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

# data.task -> the validation metric a run of that task is judged by (conf/config.yaml's monitor: ${jsmp.score:...})
TASK_SCORES = {"action": "val/utility", "regression": "val/r2"}


@dataclass
class SplitConfig:
    """The holdout split (`data.split`): the default when no CV fold is chosen."""

    val_frac: float = 0.2
    """Fraction of the kept days that validate: the last ones."""
    gap_days: int = 5
    """Days purged between training and validation."""


@dataclass
class CVConfig:
    """Purged group time-series folds by date (`data.cv`), used when `data.fold` is set."""

    folds: int = 5
    """The kept days are cut into folds + 1 blocks; fold k validates on block k + 1."""
    gap_days: int = 31
    """Days purged between a fold's training days and its validation block."""


@dataclass
class RowsConfig:
    """Which rows train and validate, what they are labelled and how their NaNs are filled."""

    frac: float = 1.0
    """Fraction of whole days kept, in (0, 1]."""
    keep: str = "end"
    """Which days `frac` keeps: 'end' (the most recent) or 'start'."""
    min_date: int | None = None
    """Days with an earlier date are dropped before splitting; None keeps all."""
    split: SplitConfig = field(default_factory=SplitConfig)
    """The holdout split."""
    cv: CVConfig = field(default_factory=CVConfig)
    """The CV folds `fold` picks from."""
    fold: int | None = None
    """None: the holdout split; 0..cv.folds-1: that CV fold."""
    drop_zero_weight: bool = True
    """Leave weight-0 rows out of training (validation keeps every row)."""
    fill: str = "mean"
    """NaN fill rule (jsmp.batches.fill): 'mean' (training-day means), 'ffill' (within a day, then means) or 'zero'."""
    task: str = "action"
    """What the model learns from the targets: 'action' (labels `column > 0`, BCE; scored by the utility) or
    'regression' (the columns' values, MSE weighted by `sample_weight`; scored by the weighted R²)."""
    targets: list[str] = field(default_factory=lambda: ["resp"])
    """Return (2021) or responder (2024) columns, one model output each; the first is the one scored,
    the others are auxiliary outputs."""
    lags: bool = False
    """Append each row's lagged responders (the previous date's, same instrument and time_id) to its
    features; grouped (2024-layout) stores only, cached inside the store (jsmp.batches.lags)."""
    sample_weight: str | None = None
    """Per-row loss weight: None, or one of jsmp.inputs.weights.SAMPLE_WEIGHTS."""


@dataclass
class LoaderConfig:
    """How batches are served."""

    batch_size: int = 4096
    """Training rows per batch."""
    eval_batch_size: int = 16384
    """Validation rows per batch (lowered for windows: JsmpDataModule.eval_rows_per_batch)."""
    num_workers: int = 0
    """DataLoader worker processes (0: batches are gathered in the training process)."""
    pin_memory: bool = False
    """Pin host memory for batches (always on when training on a CUDA GPU)."""
    seed: int = 0
    """Seed of the training shuffle (with the epoch)."""
    resident: str = "auto"
    """'true': the split's filled features, labels and per-row fields live on the training device as tensors
    and batches are gathered there (jsmp.batches.resident), the same batches as the memory-mapped path's;
    'false': gathered from the memory-mapped store by a DataLoader; 'auto': true on a CUDA device when they
    fit half its free memory."""


def typed(schema: type, data: Mapping):
    """The `schema` dataclass (RowsConfig, LoaderConfig) of flat `data` settings, as the `data` config
    holds them side by side: its own keys, typed (nested groups too); the other keys ignored."""
    from omegaconf import OmegaConf

    own = {f.name: data[f.name] for f in fields(schema) if f.name in data}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), own))
