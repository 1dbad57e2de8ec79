"""Shared LightningModule: BCE on logits, the competition metrics, optimizer from config.

Subclasses build the network and implement `forward(x) -> logits (B,)`.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from jsmp.errors import UserError
from jsmp.metrics import UtilityMetric

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}


class TradeModule(L.LightningModule):
    """Args: n_days (for the per-date utility), optimizer name, lr, weight_decay, momentum (SGD/RMSprop)."""

    def __init__(self, n_days: int, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 momentum: float = 0.0):
        super().__init__()
        name = str(optimizer).lower()
        if name not in OPTIMIZERS:
            raise UserError(f"model.optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
        if not lr > 0:
            raise UserError(f"model.lr must be > 0, got {lr!r}")
        self.optimizer_name, self.lr, self.weight_decay, self.momentum = name, lr, weight_decay, momentum
        self.val_utility = UtilityMetric(n_days)
        self.val_auc = BinaryAUROC()
        self.val_acc = BinaryAccuracy()
        self.val_utility_best = MaxMetric()
        self.val_utility_best.persistent(True)  # saved in checkpoints, so a resumed run keeps its best

    def logits(self, batch: dict) -> torch.Tensor:
        return self(batch["x"])

    def predict_proba(self, batch: dict) -> torch.Tensor:
        return torch.sigmoid(self.logits(batch))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(self.logits(batch), batch["y"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["y"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self.logits(batch)
        y = batch["y"]
        self.log("val/loss", F.binary_cross_entropy_with_logits(logits, y), on_epoch=True, batch_size=len(y))
        prob = torch.sigmoid(logits)
        self.val_auc.update(prob, y.long())
        self.val_acc.update(prob, y.long())
        self.val_utility.update(batch["day"], batch["weight"], batch["resp"], (prob > 0.5).to(prob.dtype))

    def on_validation_epoch_end(self) -> None:
        utility, oracle = (v.float() for v in self.val_utility.compute())
        self.val_utility.reset()
        if not self.trainer.sanity_checking:
            self.val_utility_best.update(utility)
        best = self.val_utility_best.compute()
        self.log_dict({"val/utility": utility, "val/utility_oracle": oracle, "val/utility_best": best}, prog_bar=False)
        self.log("val/auc", self.val_auc.compute(), prog_bar=True)
        self.log("val/acc", self.val_acc.compute())
        self.log("hp_metric", best)
        self.val_auc.reset()
        self.val_acc.reset()

    def configure_optimizers(self):
        cls = OPTIMIZERS[self.optimizer_name]
        kw = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer_name in ("sgd", "rmsprop"):
            kw["momentum"] = self.momentum
        return cls(self.parameters(), **kw)
