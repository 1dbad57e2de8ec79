"""The shared LightningModule of the trade models: BCE on logits, the competition metrics, the optimizer.

Contract (docs/models.md): a subclass takes `n_features, n_days` (and passes `**base`:
`n_targets`, `optimizer`) from the data, builds its network with `self.n_targets` outputs and
implements `forward(*inputs(batch)) -> logits (B, n_targets)` ((B,) for one target). A class
attribute `sequence = True` makes the data serve windows x (B, W, n_features) and a mask
(B, W) instead of rows x (B, n_features). The trade probability is the mean of the targets'
probabilities; the action is probability > 0.5. Extra training objectives: override `losses(batch)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from jsmp.errors import UserError
from jsmp.metrics import UtilityMetric

# what `model.optimizer` builds: a `_partial_: true` node naming a torch.optim class (conf/model/optimizer/)
Optimizer = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def check_optimizer(optimizer: Optimizer | None) -> None:
    """One-line errors for a `model.optimizer` that is not an optimizer node, or whose lr is not > 0."""
    if optimizer is None:
        return
    if not callable(optimizer):
        raise UserError(f"model.optimizer must be one of the optimizer configs (conf/model/optimizer/), chosen "
                        f"with model/optimizer=NAME, got {optimizer!r}")
    lr = getattr(optimizer, "keywords", {}).get("lr")
    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0):
        raise UserError(f"model.optimizer.lr must be > 0, got {lr!r}")


def make_optimizer(optimizer: Optimizer | None, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """`optimizer(params)`; a model built without one (for inference) cannot train."""
    if optimizer is None:
        raise UserError("this model was built without model.optimizer (as for inference), so it cannot train; "
                        "build it from a model config, which names one (conf/model/optimizer/)")
    return optimizer(params)


def trade_proba(logits: torch.Tensor) -> torch.Tensor:
    """(B, T) or (B,) logits -> (B,) mean probability over the targets; trade when > 0.5."""
    return torch.sigmoid(logits.reshape(len(logits), -1)).mean(-1)


class TradeModule(L.LightningModule):
    """n_days: the store's days (batch["day"] indexes them: the per-date utility); n_targets:
    outputs, one per label column; optimizer: `params -> torch.optim.Optimizer` (None: inference only).

    The hyper-parameters saved in checkpoints are the subclass's arguments without `optimizer`,
    so `torch.load(weights_only=True)` reads them and `cls(**hparams)` rebuilds the network.
    """

    # the final metrics TensorBoard's HParams table shows (jsmp/run/dashboards.py)
    dashboard_metrics = ("val/utility_best", "val/utility", "val/auc", "val/acc", "val/loss", "train/loss")

    def __init__(self, n_days: int, n_targets: int = 1, optimizer: Optimizer | None = None):
        super().__init__()
        check_optimizer(optimizer)
        self.save_hyperparameters(ignore=["optimizer"], logger=False)  # with the subclass's arguments
        self.n_targets = n_targets
        self.optimizer = optimizer
        self.val_utility = UtilityMetric(n_days)
        self.val_auc = BinaryAUROC()
        self.val_acc = BinaryAccuracy()
        self.val_utility_best = MaxMetric()
        self.val_utility_best.persistent(True)  # saved in checkpoints, so a resumed run keeps its best
        self._epoch_losses: list[tuple[int, dict[str, torch.Tensor]]] = []  # (rows, losses) of each step

    def inputs(self, batch: dict) -> tuple:
        """The forward() arguments taken from a batch (sequence models add the mask)."""
        return (batch["x"],)

    def logits(self, batch: dict) -> torch.Tensor:
        """(B, n_targets) logits of the batch."""
        out = self(*self.inputs(batch))
        return out.reshape(len(out), -1)

    def predict_proba(self, batch: dict) -> torch.Tensor:
        """(B,) trade probability."""
        return trade_proba(self.logits(batch))

    def bce(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """BCE of (B, T) logits against batch["y"], mean over targets, then over rows
        (weighted by batch["sample_weight"] when the data gives one)."""
        y, w = batch["y"].reshape(logits.shape), batch.get("sample_weight")
        if w is None:  # every row has T targets: the mean over all of them is the mean of row means
            return F.binary_cross_entropy_with_logits(logits, y)
        per_row = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(-1)
        return (per_row * w).sum() / w.sum().clamp_min(1e-12)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The training objectives by name; their sum is minimised and each is logged as train/<name>."""
        return {"bce": self.bce(self.logits(batch), batch)}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms = self.losses(batch)
        loss = functools.reduce(torch.add, terms.values())
        n = len(batch["x"])
        # Each `self.log` costs Lightning ~0.6 ms, ~10% of an MLP step on CPU: the epoch means are
        # kept here (the step's losses, summed at the epoch's end) and logged once an epoch, the
        # step loss only on steps the logger writes.
        self._epoch_losses.append((n, {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}))
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        return loss

    def on_train_epoch_end(self) -> None:
        """Logs train/loss and train/<term>: the epoch's means over rows (averaged across ranks)."""
        if self._epoch_losses:
            rows = torch.tensor([n for n, _ in self._epoch_losses], dtype=torch.float32, device=self.device)
            means = {k: (torch.stack([step[k].float() for _, step in self._epoch_losses]) * rows).sum() / rows.sum()
                     for k in self._epoch_losses[0][1]}
            self.log_dict({f"train/{k}": v for k, v in means.items()}, sync_dist=True)
        self._epoch_losses = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self.logits(batch)
        self.log("val/loss", self.bce(logits, batch), on_epoch=True, batch_size=len(logits))
        prob = trade_proba(logits)
        y = (batch["resp"] > 0).long()  # AUC and accuracy of the trade decision, on the `resp` label
        self.val_auc.update(prob, y)
        self.val_acc.update(prob, y)
        self.val_utility.update(batch["day"], batch["weight"], batch["resp"], (prob > 0.5).to(prob.dtype))

    def on_validation_epoch_end(self) -> None:
        utility, oracle = (v.float() for v in self.val_utility.compute())
        self.val_utility.reset()
        if not self.trainer.sanity_checking:
            self.val_utility_best.update(utility)
        best = self.val_utility_best.compute()
        self.log("val/utility", utility, prog_bar=True)  # the competition's score: the one number on the bar
        self.log_dict({"val/utility_oracle": oracle, "val/utility_best": best})
        self.log("val/auc", self.val_auc.compute())
        self.log("val/acc", self.val_acc.compute())
        self.log("hp_metric", best)
        self.val_auc.reset()
        self.val_acc.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.optimizer, self.parameters())
