"""Glue between Hydra entry points and the recipes: user errors become one line + exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from jsmp.errors import EXIT_USAGE, UserError, report


def run_task(task: Callable[[DictConfig], float], cfg: DictConfig) -> float:
    """Run `task(cfg)`. In a single run a UserError exits 2 with one line; in a multirun it
    is raised so the sweeper can record the trial as failed and go on."""
    try:
        return task(cfg)
    except UserError as err:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        report(err)
        sys.exit(EXIT_USAGE)
