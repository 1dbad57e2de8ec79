"""The sine -> cosine toy model: LSTM 1 -> hidden -> Linear 1 per step, MSE (`python train.py experiment=sincos`)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MinMetric

from jsmp.errors import UserError
from jsmp.files import atomic_path
from jsmp.models.base import Optimizer, check_optimizer, make_optimizer

FIGURE = "sincos.png"


def plot(t, x, y, pred, n_train: int):
    """The seed's figure: sin(t), reference and predicted cos(t) on train and test, a dashed split line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, x, color="0.6", label="input sin(t)")
    ax.plot(t, y, color="k", lw=1, label="reference cos(t)")
    ax.plot(t[:n_train], pred[:n_train], "b.", ms=4, label="predicted cos(t), train")
    ax.plot(t[n_train:], pred[n_train:], "r.", ms=4, label="predicted cos(t), test")
    ax.axvline((t[n_train - 1] + t[n_train]) / 2, color="k", ls="--", lw=1)
    ax.set_xlabel("t")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


class SinCos(L.LightningModule):
    """x (B, T, 1) -> (B, T, 1). Logs train/mse (first n_train steps), test/mse (the rest) and
    hp_metric (the lowest test/mse so far: the toy's monitor, conf/experiment/sincos.yaml); at the
    end of fit saves `sincos.png` in the run dir and adds it to TensorBoard.

    It trains on jsmp.batches.sincos.SinCosDataModule only, which gives the model nothing: the
    JSMP data's `n_features, n_days, n_targets` are refused (use experiment=sincos).
    optimizer: `params -> torch.optim.Optimizer`, as for the trade models (docs/models.md).
    """

    dashboard_metrics = ("test/mse", "train/mse")

    def __init__(self, hidden: int = 16, optimizer: Optimizer | None = None, **data):
        super().__init__()
        if data:
            raise UserError(f"model=sincos got {', '.join(sorted(data))}: it trains on the sine -> cosine toy's data "
                            f"only, which gives it nothing; use experiment=sincos (its data, callbacks and trainer)")
        check_optimizer(optimizer)
        self.save_hyperparameters(ignore=["optimizer"], logger=False)
        self.optimizer = optimizer
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        self.test_mse_best = MinMetric()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0])

    def _mse(self, batch: dict, part: slice) -> torch.Tensor:
        return F.mse_loss(self(batch["x"])[:, part], batch["y"][:, part])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._mse(batch, slice(None, batch["n_train"]))
        self.log("train/mse", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=1)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        mse = self._mse(batch, slice(batch["n_train"], None))
        self.log("test/mse", mse, prog_bar=True, batch_size=1)
        if not self.trainer.sanity_checking:
            self.test_mse_best.update(mse)

    def on_validation_epoch_end(self) -> None:
        if self.test_mse_best.update_count:
            self.log("hp_metric", self.test_mse_best.compute())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.optimizer, self.parameters())

    def on_fit_end(self) -> None:
        batch = self.trainer.datamodule.batch
        with torch.no_grad():
            pred = self(batch["x"].to(self.device)).cpu()
        fig = plot(*(v.view(-1).numpy() for v in (batch["t"], batch["x"], batch["y"], pred)), batch["n_train"])
        with atomic_path(Path(self.trainer.default_root_dir) / FIGURE) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        if self.logger is not None and hasattr(self.logger.experiment, "add_figure"):
            self.logger.experiment.add_figure("sincos", fig, global_step=self.global_step)
        import matplotlib.pyplot as plt

        plt.close(fig)
