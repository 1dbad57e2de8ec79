"""The plugin class Hydra instantiates for `hydra/sweeper: jsmp_optuna` (and, through
hydra_plugins/hydra_optuna_sweeper, for the official plugin's `_target_`).

Hydra's plugin scan imports every module of every package under hydra_plugins on every run,
`--help` included, so this one stays light: the loop (_loop.py, which loads Optuna and
SQLAlchemy) is imported only when Hydra instantiates the sweeper for a multirun. Modules whose
name starts with `_` are skipped by the scan.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """Hydra's face of `_loop.StudyLoop`: the settings are hydra.sweeper's keys (config.py)."""

    def __init__(self, **settings: Any) -> None:
        from ._loop import StudyLoop  # Optuna and SQLAlchemy: only when a sweep runs

        self.loop = StudyLoop(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.loop.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.loop.sweep(arguments)
