"""The shared LightningModule of the trade models: the task's loss and metrics, the optimizer.

Contract (docs/models.md): a subclass takes `n_features, n_days` (and passes `**base`:
`n_targets`, `optimizer`, `task`) from the data, builds its network with `self.n_targets` outputs
and implements `forward(*inputs(batch)) -> outputs (B, n_targets)` ((B,) for one target). A class
attribute `sequence = True` makes the data serve windows x (B, W, n_features) and a mask
(B, W) instead of rows x (B, n_features). What the outputs mean is the task's (jsmp.models.tasks):
`action`, logits (the trade probability is the mean of the targets' probabilities, the action
probability > 0.5); `regression`, raw predictions (output 0 scored by R²). Extra training
objectives: override `losses(batch)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import nn

from jsmp.errors import UserError
from jsmp.models.tasks import task as make_task
from jsmp.models.tasks import trade_proba

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


class TradeModule(L.LightningModule):
    """n_days: the store's days (batch["day"] indexes them: the per-date utility); n_targets:
    outputs, one per label column; optimizer: `params -> torch.optim.Optimizer` (None: inference
    only); task: "action" or "regression" (data.task, jsmp.models.tasks).

    The hyper-parameters saved in checkpoints are the subclass's arguments without `optimizer`,
    so `torch.load(weights_only=True)` reads them and `cls(**hparams)` rebuilds the network.
    """

    def __init__(self, n_days: int, n_targets: int = 1, optimizer: Optimizer | None = None, task: str = "action"):
        super().__init__()
        check_optimizer(optimizer)
        self.task = make_task(task)
        self.save_hyperparameters(ignore=["optimizer"], logger=False)  # with the subclass's arguments
        self.n_targets = n_targets
        self.optimizer = optimizer
        for name, metric in self.task.metrics(n_days).items():  # val_utility, val_auc, ... (the task's)
            self.add_module(name, metric)
        self._epoch_losses: list[tuple[int, dict[str, torch.Tensor]]] = []  # (rows, losses) of each step

    @property
    def dashboard_metrics(self) -> tuple[str, ...]:
        """The final metrics TensorBoard's HParams table shows (jsmp/run/dashboards.py)."""
        return self.task.dashboard_metrics

    def inputs(self, batch: dict) -> tuple:
        """The forward() arguments taken from a batch (sequence models add the mask)."""
        return (batch["x"],)

    def logits(self, batch: dict) -> torch.Tensor:
        """(B, n_targets) outputs of the batch: logits (action) or predictions (regression)."""
        out = self(*self.inputs(batch))
        return out.reshape(len(out), -1)

    def predict_output(self, batch: dict) -> torch.Tensor:
        """(B,): the trade probability (action) or the prediction of target 0 (regression)."""
        return self.task.output(self.logits(batch))

    def predict_proba(self, batch: dict) -> torch.Tensor:
        """(B,) trade probability; a regression model has none (predict_output gives its predictions)."""
        if self.task.name != "action":
            raise UserError(f"this model was trained for data.task={self.task.name}: it predicts values, not trade "
                            f"probabilities (use predict_output)")
        return trade_proba(self.logits(batch))

    def loss(self, out: torch.Tensor, batch: dict) -> torch.Tensor:
        """The task's loss (BCE or MSE) of (B, T) outputs against batch["y"], mean over targets, then
        over rows (weighted by batch["sample_weight"] when the data gives one)."""
        return self.task.loss(out, batch)


    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The training objectives by name; their sum is minimised and each is logged as train/<name>."""
        return {self.task.loss_name: self.loss(self.logits(batch), batch)}

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
        self.task.validate(self, self.logits(batch), batch)

    def on_validation_epoch_end(self) -> None:
        self.task.log_epoch(self)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.optimizer, self.parameters())
