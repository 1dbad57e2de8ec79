"""The sine -> cosine toy: one sequence, input sin(t), target cos(t), split in time."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader

from jsmp.batches.contract import RecipeData


class SinCosDataModule(L.LightningDataModule, RecipeData):
    """t: `points` evenly spaced over [0, `periods` * 2π]; the first `train_frac` of the steps train.

    Every loader yields the same single batch: t, x = sin(t), y = cos(t), each (1, points, 1),
    and n_train (the number of leading steps that train; the rest test). The LSTM reads the
    whole sequence causally, so the test steps' outputs continue from the training steps'.
    """

    def __init__(self, points: int = 200, periods: float = 6.0, train_frac: float = 0.5):
        super().__init__()
        t = torch.linspace(0.0, periods * 2 * math.pi, points)
        self.batch = {"t": t.view(1, -1, 1), "x": torch.sin(t).view(1, -1, 1), "y": torch.cos(t).view(1, -1, 1),
                      "n_train": round(train_frac * points)}

    def connect(self, model_class: type) -> None:
        """Every model sees the one whole sequence: nothing to choose."""

    def model_kwargs(self) -> dict:
        return {}

    def input_spec(self) -> None:
        """None: the toy is not served (jsmp.predict reads store-like rows)."""

    def reference_metrics(self) -> dict[str, float]:
        return {}

    def _loader(self) -> DataLoader:
        return DataLoader([self.batch], batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()
