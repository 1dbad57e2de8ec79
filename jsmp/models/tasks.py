"""What a trade model's outputs mean (`data.task`): the loss, the per-row output and the validation metrics.

action (2021): outputs are logits of `target > 0`; BCE; the trade probability is the mean sigmoid over
targets and the action is probability > 0.5; val/utility (+ _best, _oracle), val/auc, val/acc.
regression (2024): outputs are raw predictions of the targets (output 0 is the scored one, the others
auxiliary); MSE; val/r2 (the weighted zero-mean R² of output 0, jsmp.metrics.r2_score), val/r2_best, val/mse.
Both weigh each row's loss by batch["sample_weight"] when the data gives one; hp_metric is the best score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric, MeanMetric, Metric
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from jsmp.errors import UserError
from jsmp.metrics import R2Metric, UtilityMetric


def trade_proba(logits: torch.Tensor) -> torch.Tensor:
    """(B, T) or (B,) logits -> (B,) mean probability over the targets; trade when > 0.5."""
    return torch.sigmoid(logits.reshape(len(logits), -1)).mean(-1)


def row_weighted(loss: Callable[..., torch.Tensor], out: torch.Tensor, batch: dict) -> torch.Tensor:
    """`loss(out, y)` of (B, T) outputs against batch["y"], mean over targets, then over rows
    (weighted by batch["sample_weight"] when the data gives one)."""
    y, w = batch["y"].reshape(out.shape), batch.get("sample_weight")
    if w is None:  # every row has T targets: the mean over all of them is the mean of row means
        return loss(out, y)
    per_row = loss(out, y, reduction="none").mean(-1)
    return (per_row * w).sum() / w.sum().clamp_min(1e-12)


def best(metric_max: MaxMetric) -> MaxMetric:
    """A MaxMetric saved in checkpoints, so a resumed run keeps its best."""
    metric_max.persistent(True)
    return metric_max


class Task(ABC):
    """One task's rules. `metrics(n_days)` are registered on the model under their names (so they
    follow it to its device and into checkpoints); `validate` and `log_epoch` use them from there."""

    name: str
    loss_name: str  # the training objective's name: logged as train/<loss_name>
    dashboard_metrics: tuple[str, ...]  # the final metrics TensorBoard's HParams table shows (jsmp/run/dashboards.py)

    @abstractmethod
    def loss(self, out: torch.Tensor, batch: dict) -> torch.Tensor:
        """The loss of (B, T) outputs against the batch's labels."""

    @abstractmethod
    def output(self, out: torch.Tensor) -> torch.Tensor:
        """(B, T) outputs -> (B,): the trade probability (action) or the prediction of target 0 (regression)."""

    @abstractmethod
    def metrics(self, n_days: int) -> dict[str, Metric]:
        """The validation metrics by attribute name."""

    @abstractmethod
    def validate(self, m: L.LightningModule, out: torch.Tensor, batch: dict) -> None:
        """One validation batch: logs val/loss and updates the metrics."""

    @abstractmethod
    def log_epoch(self, m: L.LightningModule) -> None:
        """At the end of validation: logs the epoch's metrics and hp_metric, resets them."""


class Action(Task):
    name, loss_name = "action", "bce"
    dashboard_metrics = ("val/utility_best", "val/utility", "val/auc", "val/acc", "val/loss", "train/loss")

    def loss(self, out: torch.Tensor, batch: dict) -> torch.Tensor:
        return row_weighted(F.binary_cross_entropy_with_logits, out, batch)

    def output(self, out: torch.Tensor) -> torch.Tensor:
        return trade_proba(out)

    def metrics(self, n_days: int) -> dict[str, Metric]:
        return {"val_utility": UtilityMetric(n_days), "val_auc": BinaryAUROC(), "val_acc": BinaryAccuracy(),
                "val_utility_best": best(MaxMetric())}

    def validate(self, m: L.LightningModule, out: torch.Tensor, batch: dict) -> None:
        m.log("val/loss", self.loss(out, batch), on_epoch=True, batch_size=len(out))
        prob = trade_proba(out)
        y = (batch["resp"] > 0).long()  # AUC and accuracy of the trade decision, on the `resp` label
        m.val_auc.update(prob, y)
        m.val_acc.update(prob, y)
        m.val_utility.update(batch["day"], batch["weight"], batch["resp"], (prob > 0.5).to(prob.dtype))

    def log_epoch(self, m: L.LightningModule) -> None:
        utility, oracle = (v.float() for v in m.val_utility.compute())
        m.val_utility.reset()
        if not m.trainer.sanity_checking:
            m.val_utility_best.update(utility)
        top = m.val_utility_best.compute()
        m.log("val/utility", utility, prog_bar=True)  # the competition's score: the one number on the bar
        m.log_dict({"val/utility_oracle": oracle, "val/utility_best": top})
        m.log("val/auc", m.val_auc.compute())
        m.log("val/acc", m.val_acc.compute())
        m.log("hp_metric", top)
        m.val_auc.reset()
        m.val_acc.reset()


class Regression(Task):
    name, loss_name = "regression", "mse"
    dashboard_metrics = ("val/r2_best", "val/r2", "val/mse", "val/loss", "train/loss")

    def loss(self, out: torch.Tensor, batch: dict) -> torch.Tensor:
        return row_weighted(F.mse_loss, out, batch)

    def output(self, out: torch.Tensor) -> torch.Tensor:
        return out.reshape(len(out), -1)[:, 0]

    def metrics(self, n_days: int) -> dict[str, Metric]:
        # val/mse in float64; a NaN prediction makes it NaN instead of vanishing (nan_strategy="disable"
        # would also drop the weights: torchmetrics 1.9 then sets them all to 1)
        return {"val_r2": R2Metric(), "val_mse": MeanMetric(nan_strategy=float("nan")).set_dtype(torch.float64),
                "val_r2_best": best(MaxMetric())}

    def validate(self, m: L.LightningModule, out: torch.Tensor, batch: dict) -> None:
        m.log("val/loss", self.loss(out, batch), on_epoch=True, batch_size=len(out))
        pred, y = self.output(out), batch["y"].reshape(len(out), -1)[:, 0]
        m.val_r2.update(pred, y, batch["weight"])
        m.val_mse.update((pred - y) ** 2, batch["weight"])  # Σ w (y - pred)² / Σ w over the epoch

    def log_epoch(self, m: L.LightningModule) -> None:
        r2 = m.val_r2.compute().float()
        if not m.trainer.sanity_checking:
            m.val_r2_best.update(r2)
        top = m.val_r2_best.compute()
        m.log("val/r2", r2, prog_bar=True)  # the competition's score: the one number on the bar
        m.log_dict({"val/r2_best": top, "val/mse": m.val_mse.compute().float(), "hp_metric": top})
        m.val_r2.reset()
        m.val_mse.reset()


TASKS = {t.name: t for t in (Action(), Regression())}


def task(name: str) -> Task:
    """The task called `name` (data.task); a one-line error for another name."""
    if name not in TASKS:
        raise UserError(f"data.task must be one of {list(TASKS)}, got {name!r}")
    return TASKS[name]
