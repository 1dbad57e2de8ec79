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
