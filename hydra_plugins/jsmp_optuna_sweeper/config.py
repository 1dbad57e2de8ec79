"""Structured config of the sweeper, registered as `hydra/sweeper: jsmp_optuna` and, under the
official hydra-optuna-sweeper's name, `hydra/sweeper: optuna`, with `hydra/sweeper/sampler`
(the official plugin's tpe, random, cmaes, nsgaii, motpe, grid, gp, qmc) and
`hydra/sweeper/pruner` (median, percentile, successive_halving, hyperband) options.

Keys shared with the official plugin keep their meaning, so a search file written for it (e.g.
lightning-hydra-template's) runs unchanged; what differs is in docs/sweeps.md. This module is
imported by Hydra's plugin scan on every run: it imports no Optuna.
"""

# (no `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where dataclasses cannot resolve string annotations)
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeperConf
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SAMPLERS = {
    "tpe": {"_target_": "optuna.samplers.TPESampler", "seed": None, "n_startup_trials": 10,
            "multivariate": False, "constant_liar": True},
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler", "seed": None, "n_startup_trials": 1},
    "qmc": {"_target_": "optuna.samplers.QMCSampler", "seed": None, "qmc_type": "sobol", "scramble": True},
    "nsgaii": {"_target_": "optuna.samplers.NSGAIISampler", "seed": None, "population_size": 50},
    # Optuna 4 removed MOTPESampler (the official plugin now refuses `motpe`): TPESampler does multi-objective
    "motpe": {"_target_": "optuna.samplers.TPESampler", "seed": None, "n_startup_trials": 10},
    "gp": {"_target_": "optuna.samplers.GPSampler", "seed": None, "n_startup_trials": 10},
    # GridSampler needs the search space, which the sweeper passes when it builds the study
    "grid": {"_target_": "optuna.samplers.GridSampler", "_partial_": True, "seed": None},
}

# Steps are epochs and each trial reports its best epoch so far (jsmp/run/pruning.py). Measured on
# the 24-trial MLP search (`python -m jsmp.bench sweep`): median with 3 start-up trials and no
# warm-up ran 2.2-2.8x fewer epochs than no pruning at 0.94-0.99 of its best value (5 start-up
# trials and 1 warm-up epoch: 1.7x); successive halving cutting at epochs 2, 6, 18 to the best
# third: 2.4-2.5x at 0.94-1.0 (its Optuna default, cuts at 1, 4, 16 to the best quarter, lost 16%).
PRUNERS = {
    "median": {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 3, "n_warmup_steps": 0,
               "interval_steps": 1},
    "percentile": {"_target_": "optuna.pruners.PercentilePruner", "percentile": 25.0, "n_startup_trials": 3,
                   "n_warmup_steps": 0},
    "successive_halving": {"_target_": "optuna.pruners.SuccessiveHalvingPruner", "min_resource": 2,
                           "reduction_factor": 3},
    "hyperband": {"_target_": "optuna.pruners.HyperbandPruner", "min_resource": 1, "max_resource": "auto",
                  "reduction_factor": 3},
}


# the sweeper's class, defined under the official plugin's `_target_` (hydra_plugins/hydra_optuna_sweeper):
# `jsmp_optuna` and `optuna` are the same sweeper
TARGET = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


@dataclass
class OptunaSweeperConf:
    _target_: str = TARGET
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])

    # --- the official plugin's keys ---
    # (MISSING, not None: a value here would override the group default chosen above)
    sampler: Any = MISSING
    # maximize | minimize, or a list of them for a multi-objective study
    direction: Any = "minimize"
    # any Optuna RDB URL (sqlite:///..., postgresql://user@host/db); null: <sweep dir>/optuna.db, where
    # a timestamped sweep dir (${now:...}) becomes a stable one: the timestamp replaced by the study name.
    # Never with a password (it is refused: Hydra writes this into every run dir); the password
    # goes in JSMP_STORAGE_PASSWORD or a file named by JSMP_STORAGE_PASSWORD_FILE (storage.py)
    storage: Any = None
    # the study to create or continue; null: named after the search (_loop.default_study_name:
    # `<hparams_search>-<model>[-<experiment>]`, else the script's name), so rerunning resumes
    study_name: Optional[str] = None
    # trials the study should have finished (complete, pruned or failed), counting earlier runs
    n_trials: int = 20
    # trials run at once on this machine (one worker process each)
    n_jobs: int = 1
    # the sweep stops once more than max_failure_rate * n_trials trials have failed
    max_failure_rate: float = 0.0
    # override key -> sweep grammar: interval(a,b), int(interval(a,b)), range(a,b,step),
    # choice(x,y,...), tag(log, interval(a,b)); a plain value is passed to every trial
    params: Optional[Dict[str, Any]] = None
    # dotted name of fn(cfg, trial) that suggests more (e.g. conditional) parameters
    custom_search_space: Optional[str] = None

    # --- beyond the official plugin ---
    # the pruner the trial jobs consult every epoch; null: never prune
    pruner: Any = MISSING
    # torch threads per trial job; null: CPU cores // n_jobs
    threads_per_job: Optional[int] = None
    # seconds between a running trial's heartbeats, and silence after which it is failed and retried
    heartbeat_interval: int = 30
    grace_period: int = 90
    # seconds between checks while other workers finish the last trials
    poll_interval: float = 2.0


# `hydra/sweeper: jsmp_basic` (basic.py), jsmp's default for `-m` (conf/hydra/default.yaml): Hydra's
# basic sweeper, its keys and grid, with failed jobs reported in one line
BASIC_TARGET = "hydra_plugins.jsmp_optuna_sweeper.basic.JsmpBasicSweeper"


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(group="hydra/sweeper", name="jsmp_basic", node=BasicSweeperConf(_target_=BASIC_TARGET), provider="jsmp")
    cs.store(group="hydra/sweeper", name="jsmp_optuna", node=OptunaSweeperConf, provider="jsmp")
    cs.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="jsmp")
    for name, node in SAMPLERS.items():
        cs.store(group="hydra/sweeper/sampler", name=name, node=node, provider="jsmp")
    for name, node in PRUNERS.items():
        cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider="jsmp")


register()
