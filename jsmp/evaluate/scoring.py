"""The numbers `python -m jsmp.evaluate` reports for trade probabilities on labelled rows, computed as
training's validation computes them (jsmp.models.base.TradeModule): action = probability > 0.5, the
competition's utility (jsmp.metrics.utility_score), AUC and accuracy of the probability against
`resp > 0`, and the oracle's utility (trade exactly when resp > 0)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional.classification import binary_accuracy, binary_auroc

from jsmp.metrics import utility_score


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


def actions(proba: np.ndarray) -> np.ndarray:
    """(n,) int8: 1 where the trade probability is > 0.5 (the model's and the Predictor's rule)."""
    return (proba > 0.5).astype(np.int8)


def score(date: np.ndarray, weight: np.ndarray, resp: np.ndarray, proba: np.ndarray) -> Score:
    """The Score of probabilities `proba` (n,) on rows with `date`, `weight`, `resp` (n,)."""
    y = torch.from_numpy(np.asarray(resp) > 0).long()
    p = torch.from_numpy(np.asarray(proba, np.float32))
    action = actions(proba)
    return Score(utility=utility_score(date, weight, resp, action), oracle=utility_score(date, weight, resp, resp > 0),
                 auc=float(binary_auroc(p, y)), accuracy=float(binary_accuracy(p, y)), traded=float(action.mean()),
                 rows=len(action), days=len(np.unique(date)))


def daily_pnl(date: np.ndarray, weight: np.ndarray, resp: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dates (d,), P&L (d,) float64): each date's sum of weight * resp * action, the p_i of the utility."""
    dates, day = np.unique(np.asarray(date), return_inverse=True)
    wr = np.asarray(weight, np.float64) * np.asarray(resp, np.float64)
    return dates, np.bincount(day, weights=wr * np.asarray(action, np.float64), minlength=len(dates))
