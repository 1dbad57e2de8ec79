"""The competitions' scores (numpy) and torchmetrics Metrics that accumulate them.

2021, the utility: for each date i, p_i = sum_j weight_ij * resp_ij * action_ij;
t = sum(p) / sqrt(sum(p^2)) * sqrt(250 / n_dates);  utility = clip(t, 0, 6) * sum(p).
2024, the sample-weighted zero-mean R²: 1 - sum w (y - pred)^2 / sum w y^2.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric


def utility_from_daily(p: np.ndarray) -> float:
    """Utility from the per-date P&L `p` (one entry per distinct date)."""
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return 0.0
    norm = np.sqrt(np.sum(p * p))
    if norm == 0:
        return 0.0
    t = p.sum() / norm * np.sqrt(250.0 / p.size)
    return float(min(max(t, 0.0), 6.0) * p.sum())


def daily_pnl(date, weight, resp, action) -> tuple[np.ndarray, np.ndarray]:
    """(dates (d,), P&L (d,) float64): each distinct date's sum of weight * resp * action, the p_i of
    the utility, for rows with `date`, `weight`, `resp`, 0/1 `action` (all (n,))."""
    dates, day = np.unique(np.asarray(date), return_inverse=True)
    pnl = np.asarray(weight, np.float64) * np.asarray(resp, np.float64) * np.asarray(action, np.float64)
    return dates, np.bincount(day, weights=pnl, minlength=len(dates))


def utility_score(date, weight, resp, action) -> float:
    """The official utility of 0/1 `action`s on rows with `date`, `weight`, `resp` (all (n,))."""
    return utility_from_daily(daily_pnl(date, weight, resp, action)[1])


class UtilityMetric(Metric):
    """Accumulates per-date P&L of the model's actions and of the oracle (resp > 0).

    update(day, weight, resp, action): day (B,) int64 in [0, n_days); others (B,).
    compute() -> (utility, oracle_utility) over the dates seen, synced across devices.
    """

    full_state_update = False

    def __init__(self, n_days: int, **kwargs):
        super().__init__(**kwargs)
        self.n_days = n_days
        for name in ("pnl", "pnl_oracle", "rows"):
            self.add_state(name, default=torch.zeros(n_days, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, day: torch.Tensor, weight: torch.Tensor, resp: torch.Tensor, action: torch.Tensor) -> None:
        wr = weight.double() * resp.double()
        self.pnl.index_add_(0, day, wr * action.double())
        self.pnl_oracle.index_add_(0, day, wr * (resp > 0).double())
        self.rows.index_add_(0, day, torch.ones_like(wr))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        seen = self.rows > 0
        u = utility_from_daily(self.pnl[seen].cpu().numpy())
        o = utility_from_daily(self.pnl_oracle[seen].cpu().numpy())
        return torch.tensor(u, dtype=torch.float64), torch.tensor(o, dtype=torch.float64)


def r2_score(y, pred, weight) -> float:
    """The 2024 competition's sample-weighted zero-mean R², 1 - Σ w (y - pred)² / Σ w y², in float64,
    for rows with target `y`, prediction `pred` and `weight` (all (n,)). Predicting 0 everywhere
    scores 0; a perfect prediction 1. With Σ w y² = 0 (no rows, all weights or targets 0) there is
    nothing to explain and the score is defined as 0.0."""
    y, pred, w = (np.asarray(a, np.float64) for a in (y, pred, weight))
    sst = np.sum(w * y * y)
    return float(1.0 - np.sum(w * (y - pred) ** 2) / sst) if sst > 0 else 0.0


class R2Metric(Metric):
    """Accumulates r2_score's two sums in float64, summed across devices (DDP) before compute.

    update(pred, y, weight): all (B,). compute() -> the R² (float64 scalar) over every row seen.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("sse", "sst"):  # Σ w (y - pred)², Σ w y²
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> None:
        y, w = y.double(), weight.double()
        self.sse += (w * (y - pred.double()) ** 2).sum()
        self.sst += (w * y * y).sum()

    def compute(self) -> torch.Tensor:
        return torch.where(self.sst > 0, 1 - self.sse / self.sst, torch.zeros_like(self.sst))  # 0 as r2_score
