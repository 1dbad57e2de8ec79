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
from jsmp.predict.predictor import actions


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
