"""What a run optimises: `optimized_metric`, one metric's name or a list of them (a multi-objective
search, `hydra.sweeper.direction: [maximize, minimize]`), the value(s) train() returns for it, the
check that each is logged, and whether each is maximised or minimised (the one place that says so).

    optimized_metric: val/utility_best                -> train() returns a float
    optimized_metric: [val/utility_best, val/loss]    -> train() returns (utility_best, loss)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import lightning as L
from omegaconf import OmegaConf

from jsmp.errors import UserError

log = logging.getLogger(__name__)

# a metric whose name starts with one of these is maximised; one whose name holds one of LOWER, minimised
HIGHER = ("val/utility", "val/r2", "val/auc", "val/acc")
LOWER = ("loss", "mse")


class Objective:
    """`optimized_metric` as names (in order) and the shape train() returns: a float for one name,
    a tuple (one float per name) when given as a list."""

    def __init__(self, value):
        multi = isinstance(value, (list, tuple)) or OmegaConf.is_list(value)
        names = tuple(value) if multi else (value,)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise UserError(f"optimized_metric must be a metric's name or a list of them, got {value!r}")
        self.names, self.multi = names, multi

    def read(self, metrics: dict) -> tuple[float, ...]:
        """Each name's value in `metrics` (metrics.json's keys); NaN, with a warning, for one never logged."""
        missing = [n for n in self.names if metrics.get(n) is None]
        if missing:
            log.warning("optimized_metric %s was not logged (have: %s)", ", ".join(missing), logged_names(metrics))
        return tuple(math.nan if n in missing else float(metrics[n]) for n in self.names)

    def result(self, values: Sequence[float]) -> float | tuple[float, ...]:
        """What train() returns for `values` (one per name)."""
        return tuple(float(v) for v in values) if self.multi else float(values[0])

    def values(self, result: float | tuple[float, ...]) -> tuple[float, ...]:
        """`result` (from result()) as one value per name."""
        return tuple(result) if self.multi else (result,)

    def text(self, values: Sequence[float]) -> str:
        """`name = value, ...` for the log."""
        return ", ".join(f"{n} = {v:.6g}" for n, v in zip(self.names, values))

    def check(self, metrics: dict) -> None:
        """One-line UserError naming the first name not in `metrics` and listing what is logged."""
        for name in self.names:
            if name not in metrics:
                raise UserError(f"optimized_metric: {name} is not logged by this run; it logs {logged_names(metrics)}")


def logged_names(metrics: dict) -> str:
    """The metric names in `metrics` (float values: not epoch, status, pid, ...), the val/* ones first."""
    names = sorted((k for k, v in metrics.items() if isinstance(v, float)), key=lambda k: (not k.startswith("val/"), k))
    return ", ".join(names)


def direction(name: str, monitor: str, monitor_mode: str) -> str | None:
    """`maximize` or `minimize` for metric `name`: the monitor's own (`<monitor>`, `<monitor>_best`,
    `best/<monitor>`) as monitor_mode says; val/utility*, val/r2*, val/auc*, val/acc* up; *loss*, *mse*
    down; None when not known."""
    base = name.removeprefix("best/")
    if base in (monitor, f"{monitor}_best"):
        return "maximize" if monitor_mode == "max" else "minimize"
    if base.startswith(HIGHER):
        return "maximize"
    if any(word in base for word in LOWER):
        return "minimize"
    return None


def warn_directions(objective: Objective, directions: Sequence[str], monitor: str, monitor_mode: str) -> None:
    """One warning per metric the sweep's direction (maximize/minimize, one per name) optimises the wrong way."""
    for name, chosen in zip(objective.names, directions):
        known = direction(name, monitor, monitor_mode)
        if known is not None and chosen != known:
            log.warning("hydra.sweeper.direction=%s for %s, whose better values are %s (%s): the search looks for "
                        "the worst models", chosen, name, "higher" if known == "maximize" else "lower", known)


class ObjectiveCheck(L.Callback):
    """After the first validation (not the sanity check), fails in one line (UserError) when an
    optimized_metric is not logged. Checked when the next epoch starts or training ends, so that
    the epoch's train/* metrics (logged after its validation) count. `logged(trainer)`: the run's
    metrics as metrics.json holds them."""

    def __init__(self, objective: Objective, logged: Callable[[L.Trainer], dict]):
        self.objective, self.logged = objective, logged
        self.validated = self.checked = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validated = self.validated or not trainer.sanity_checking

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: L.Trainer) -> None:
        if self.validated and not self.checked:
            self.checked = True
            self.objective.check(self.logged(trainer))
