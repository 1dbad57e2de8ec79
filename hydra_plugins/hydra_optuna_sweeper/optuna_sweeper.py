"""`hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper`: jsmp's Optuna sweeper, defined
under the official plugin's `_target_` (see __init__.py) and re-exported by
hydra_plugins/jsmp_optuna_sweeper/sweeper.py. One class, defined here only: Hydra's plugin scan
registers every plugin class it finds in a module, so a subclass or a second definition would list
the sweeper again in `--info plugins`.

Hydra's plugin scan imports every module of every package under hydra_plugins on every run,
`--help` included, so this one stays light: the loop (jsmp_optuna_sweeper/_loop.py, which loads
Optuna and SQLAlchemy) is imported only when Hydra instantiates the sweeper for a multirun.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """Hydra's face of `_loop.StudyLoop`: the settings are hydra.sweeper's keys (jsmp_optuna_sweeper/config.py)."""

    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.jsmp_optuna_sweeper._loop import StudyLoop  # Optuna and SQLAlchemy: only when a sweep runs

        self.loop = StudyLoop(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.loop.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.loop.sweep(arguments)
