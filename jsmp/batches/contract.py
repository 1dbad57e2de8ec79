"""What a DataModule offers the training recipe (jsmp/run/training.py), and the one rule that
decides whether a model sees rows or windows (docs/sequence-models.md)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Protocol, runtime_checkable

from jsmp.inputs.spec import InputSpec


def wants_windows(model_class: type) -> bool:
    """Whether `model_class` reads windows (x (B, W, F) and mask (B, W)) rather than rows (x (B, F)):
    its class attribute `sequence` is True (jsmp.models.lstm.LSTM)."""
    return bool(getattr(model_class, "sequence", False))


def wants_days(model_class: type) -> bool:
    """Whether `model_class` reads day samples (jsmp.batches.days.DayBatches: x (B, T, N, F), mask
    (B, T, N), ...) rather than rows or windows: its class attribute `sample` is "day"."""
    return getattr(model_class, "sample", None) == "day"


@runtime_checkable
class RecipeData(Protocol):
    """The recipe's side of a LightningDataModule, called in this order: `connect`, then (after
    prepare_data and setup) `model_kwargs`, `input_spec`, `reference_metrics`."""

    @abstractmethod
    def connect(self, model_class: type) -> None:
        """Serve what `model_class` reads (windows when `wants_windows(model_class)`, day samples when
        `wants_days(model_class)`); before setup."""

    @abstractmethod
    def model_kwargs(self) -> dict:
        """What the model's constructor needs from the data (e.g. n_features, n_days, n_targets)."""

    @abstractmethod
    def input_spec(self) -> InputSpec | None:
        """How model inputs were made from store rows, saved with the run as preprocess.json for
        inference; None when the data cannot be served (the toys)."""

    @abstractmethod
    def reference_metrics(self) -> dict[str, float]:
        """Metrics of the data itself (not the model) written into metrics.json, e.g. val/utility_ideal."""
