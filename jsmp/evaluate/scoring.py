"""The numbers `python -m jsmp.evaluate` reports for trade probabilities on labelled rows, computed as
training's validation computes them (jsmp.models.base.TradeModule): action = probability > 0.5, the
competition's utility (jsmp.metrics.utility_score), AUC and accuracy of the probability against
`resp > 0`, and the oracle's utility (trade exactly when resp > 0). For a 2024-layout (regression) run:
the weighted zero-mean R² (jsmp.metrics.r2_score, as val/r2) over all rows and per date."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional.classification import binary_accuracy, binary_auroc

from jsmp.metrics import r2_score, utility_score
from jsmp.predict.rows import actions


@dataclass(frozen=True)
class Score:
    """utility and oracle in the competition's units; auc, accuracy and traded (the fraction of
    rows with action 1) in [0, 1]; rows and days scored."""

    utility: float
    oracle: float
    auc: float
    accuracy: float
    traded: float
    rows: int
    days: int


def score(date: np.ndarray, weight: np.ndarray, resp: np.ndarray, proba: np.ndarray) -> Score:
    """The Score of probabilities `proba` (n,) on rows with `date`, `weight`, `resp` (n,)."""
    y = torch.from_numpy(np.asarray(resp) > 0).long()
    p = torch.from_numpy(np.asarray(proba, np.float32))
    action = actions(proba)
    return Score(utility=utility_score(date, weight, resp, action), oracle=utility_score(date, weight, resp, resp > 0),
                 auc=float(binary_auroc(p, y)), accuracy=float(binary_accuracy(p, y)), traded=float(action.mean()),
                 rows=len(action), days=len(np.unique(date)))


@dataclass(frozen=True)
class DailyR2:
    """The R² of predictions over all rows (`r2`) and per date: dates (d,) ascending, r2 (d,) float64 (each
    date's own R²; 0.0 for a date whose Σ w y² is 0), rows (d,) int64 and weight (d,) float64 (Σ w) of each."""

    r2: float
    dates: np.ndarray
    daily: np.ndarray
    rows: np.ndarray
    weight: np.ndarray


def daily_r2(date: np.ndarray, y: np.ndarray, pred: np.ndarray, weight: np.ndarray) -> DailyR2:
    """The DailyR2 of predictions `pred` of target `y` on rows with `date` and `weight` (all (n,))."""
    dates, inverse, rows = np.unique(np.asarray(date), return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    parts = np.split(order, np.cumsum(rows)[:-1])
    daily = np.array([r2_score(y[k], pred[k], weight[k]) for k in parts], dtype=np.float64)
    return DailyR2(r2_score(y, pred, weight), dates, daily, rows.astype(np.int64),
                   np.bincount(inverse, weights=np.asarray(weight, np.float64), minlength=len(dates)))
