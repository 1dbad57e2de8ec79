"""Callbacks the training recipe always adds (not optional: they are part of a run's outputs)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import lightning as L


def _scalar(v) -> float:
    return float(v.item() if hasattr(v, "item") else v)


class MetricsJson(L.Callback):
    """Writes `metrics.json` in the run dir after every validation run and at the end.

    Keys: every logged metric's latest value under its own name (`val/utility`, ...),
    the same metrics at the best epoch under `best/<name>` (best = highest `monitor`, or lowest
    with `mode='min'`),
    fixed reference values given as `extra` (e.g. `val/utility_ideal`), plus `epoch`, `global_step`, `best_epoch` and `status` (running, completed, failed).
    """

    def __init__(self, path: str | os.PathLike, monitor: str = "val/utility", extra: dict | None = None,
                 mode: str = "max"):
        self.path = Path(path)
        self.sign = {"max": 1.0, "min": -1.0}[mode]
        self.extra = dict(extra or {})
        self.monitor = monitor
        self.best: dict[str, float] = {}
        self.best_epoch: int | None = None
        self.status = "running"
        self.error: str | None = None

    def _latest(self, trainer: L.Trainer) -> dict[str, float]:
        return {k: _scalar(v) for k, v in sorted(trainer.callback_metrics.items()) if not k.endswith("_step")}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # (on_validation_end runs after the module has logged this epoch's metrics)
        if trainer.sanity_checking:
            return
        latest = self._latest(trainer)
        value = latest.get(self.monitor)
        if value is not None and not math.isnan(value) and (
            self.best_epoch is None or self.sign * value > self.sign * self.best_value
        ):
            self.best = {k: v for k, v in latest.items() if k.startswith("val/")}
            self.best_value = value
            self.best_epoch = trainer.current_epoch
        self.write(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.status = "completed"
        self.write(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.status, self.error = "failed", f"{type(exception).__name__}: {exception}"
        self.write(trainer)

    def write(self, trainer: L.Trainer) -> dict:
        out = {
            **self.extra,
            **self._latest(trainer),
            **{f"best/{k}": v for k, v in self.best.items()},
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "best_epoch": self.best_epoch,
            "status": self.status,
        }
        if self.error:
            out["error"] = self.error
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)
        return out
