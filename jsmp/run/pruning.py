"""The trial job's side of an Optuna sweep (hydra_plugins/jsmp_optuna_sweeper; see docs/sweeps.md).

The sweeper adds `optuna_trial.{study,storage,engine_kwargs,id,number,threads}` to each job's
config; the job opens that storage with Optuna's own API (jsmp never imports the plugin; a
PostgreSQL password comes from PGPASSWORD, which the sweeper sets for its jobs), reports the
objective, `cfg.optimized_metric` (val/utility_best: the best epoch so far), to that trial
after every validation epoch and raises optuna.TrialPruned when the sweep's pruner
(`hydra.sweeper.pruner`) says so, which the sweeper records as PRUNED. Reporting the
objective itself, not the epoch's noisy val/utility, makes the pruner compare like with
like: each trial's best so far against the other trials' best at the same epoch.

A multi-objective study (`optimized_metric` a list, one `hydra.sweeper.direction` each) is not
pruned: Optuna prunes single-objective studies only, so the job reports nothing (its log says so).
Trial 0's job warns when a direction is the opposite of its metric's (jsmp/run/objective.py).
"""

from __future__ import annotations

import logging
import math

import lightning as L
import optuna
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from jsmp.run.objective import Objective, warn_directions

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """Reports `monitor` to `trial` each epoch (step = epoch); raises TrialPruned when told to."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val/utility_best"):
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or not math.isfinite(float(value)):
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: {self.monitor}={float(value):.4g}")


def sweep_pruner() -> optuna.pruners.BasePruner:
    """The pruner the running sweep is configured with (`hydra.sweeper.pruner`); null: none."""
    node = HydraConfig.get().sweeper.get("pruner") if HydraConfig.initialized() else None
    return instantiate(node) if node else optuna.pruners.NopPruner()


def trial_callbacks(cfg: DictConfig, objective: Objective) -> list[L.Callback]:
    """[OptunaPruning] for a sweep's trial job of a single-objective study (and its torch thread
    count set), else []."""
    spec = cfg.get("optuna_trial")
    if not spec:
        return []
    if spec.get("threads"):
        torch.set_num_threads(int(spec.threads))
    # no retry around opening: the sweeper created the storage's tables before it launched this job
    engine_kwargs = OmegaConf.to_container(spec.engine_kwargs) if spec.get("engine_kwargs") else {}
    storage = optuna.storages.RDBStorage(spec.storage, engine_kwargs=engine_kwargs)
    study = optuna.load_study(study_name=spec.study, storage=storage, pruner=sweep_pruner(),
                              sampler=optuna.samplers.RandomSampler())
    log.info("trial %s of study %s (%s torch threads)", spec.number, spec.study, torch.get_num_threads())
    if spec.number == 0:  # (once per sweep)
        warn_directions(objective, [d.name.lower() for d in study.directions], cfg.monitor, cfg.get("monitor_mode", "max"))
    if len(study.directions) > 1:
        log.info("no pruning: study %s has %d objectives (%s), and Optuna prunes single-objective studies only",
                 spec.study, len(study.directions), ", ".join(objective.names))
        return []
    return [OptunaPruning(optuna.trial.Trial(study, int(spec.id)), monitor=objective.names[0])]
