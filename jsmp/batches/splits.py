"""Splits by date, never by random rows: training days, a purged gap, validation days."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jsmp.errors import UserError


@dataclass(frozen=True)
class Split:
    """Day indices (0..n_days-1, ascending) of the training and validation days."""

    train: np.ndarray
    val: np.ndarray


def kept_days(n_days: int, frac: float, keep: str = "end") -> np.ndarray:
    """Indices of the whole days kept by `data.frac` (the most recent by default)."""
    if not isinstance(frac, (int, float)) or not (0 < frac <= 1):
        raise UserError(f"data.frac must be in (0, 1], got {frac!r}")
    if keep not in ("end", "start"):
        raise UserError(f"data.keep must be 'end' or 'start', got {keep!r}")
    k = max(1, math.ceil(frac * n_days - 1e-9))
    return np.arange(n_days - k, n_days) if keep == "end" else np.arange(k)


def holdout(n_days: int, frac: float = 1.0, val_frac: float = 0.2, gap_days: int = 5, keep: str = "end") -> Split:
    """The last `val_frac` of the kept days validate; `gap_days` before them are purged."""
    days = kept_days(n_days, frac, keep)
    if not (0 < val_frac < 1):
        raise UserError(f"data.split.val_frac must be in (0, 1), got {val_frac!r}")
    if gap_days < 0:
        raise UserError(f"data.split.gap_days must be >= 0, got {gap_days!r}")
    n_val = max(1, round(val_frac * len(days)))
    n_train = len(days) - n_val - gap_days
    if n_train < 1:
        raise UserError(
            f"data.frac={frac} keeps {len(days)} of {n_days} days: too few for {n_val} validation + "
            f"{gap_days} gap days + at least one training day (raise data.frac or lower data.split.gap_days)"
        )
    return Split(train=days[:n_train], val=days[len(days) - n_val :])


def first_day(days: np.ndarray, min_date: int | None) -> int:
    """Index of the first day whose date is >= `min_date` (`data.min_date`; 0 when None)."""
    if min_date is None:
        return 0
    first = int(np.searchsorted(days, min_date))
    if first >= len(days):
        raise UserError(f"data.min_date={min_date} drops every day (the last date is {int(days[-1])})")
    return first


def offset(split: Split, first: int) -> Split:
    """`split` computed on the days from index `first` on, as indices into all days."""
    return Split(train=split.train + first, val=split.val + first)


def purged_fold(n_days: int, fold: int, folds: int = 5, gap_days: int = 31, frac: float = 1.0, keep: str = "end") -> Split:
    """Fold `fold` of a purged group time-series split by date (the 1st-place JSMP scheme).

    The kept days are cut into `folds + 1` equal blocks; fold k validates on block k + 1 (the
    last `folds` blocks, oldest first) and trains on every earlier day except the `gap_days`
    just before its validation block (an expanding window, purged).
    """
    days = kept_days(n_days, frac, keep)
    if not isinstance(folds, int) or folds < 2:
        raise UserError(f"data.cv.folds must be an integer >= 2, got {folds!r}")
    if not isinstance(fold, int) or not (0 <= fold < folds):
        raise UserError(f"data.fold must be an integer in [0, {folds - 1}] (data.cv.folds={folds}), got {fold!r}")
    if gap_days < 0:
        raise UserError(f"data.cv.gap_days must be >= 0, got {gap_days!r}")
    size = len(days) // (folds + 1)
    first = len(days) - folds * size
    if size < 1 or first - gap_days < 1:
        raise UserError(
            f"data.cv: {len(days)} kept days are too few for {folds} folds with a {gap_days}-day gap "
            f"(fold 0 would train on {max(0, first - gap_days)} days); lower data.cv.folds or data.cv.gap_days"
        )
    start = first + fold * size
    return Split(train=days[: start - gap_days], val=days[start : start + size])


def choose(days: np.ndarray, frac: float, keep: str, split: dict, cv: dict, fold: int | None,
           min_date: int | None = None) -> Split:
    """The run's split of a store's `days` (date values, ascending): the days before `min_date`
    are dropped, then the holdout (`data.split`) unless `data.fold` picks a purged CV fold (`data.cv`)."""
    first = first_day(days, min_date)
    n = len(days) - first
    chosen = holdout(n, frac, keep=keep, **split) if fold is None else purged_fold(n, fold, frac=frac, keep=keep, **cv)
    return offset(chosen, first)
