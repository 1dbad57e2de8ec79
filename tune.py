"""Hyper-parameter search: `python tune.py model=mlp [overrides]`.

The same as `python train.py hparams_search=mlp [overrides]`: runs conf/hparams_search/<model>.yaml
(a multirun with the jsmp_optuna sweeper; storage and n_trials defaults there), prints the
best value and params and writes best.yaml, the plots and optuna.db into the sweep dir
(logs/train/sweeps/<model>). Rerunning the same command continues the study.

A shared storage's password never goes on the command line or into a config (Hydra writes
both into every run dir): give `hydra.sweeper.storage=postgresql://USER@HOST/DB` and the
password in JSMP_STORAGE_PASSWORD (see hydra_plugins/jsmp_optuna_sweeper/storage.py).
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from hydra_plugins.jsmp_optuna_sweeper.errors import exit_on_sweep_error
from hydra_plugins.jsmp_optuna_sweeper.space import check_overrides
from jsmp.errors import exit_on_user_error
from jsmp.run.cli import check_compose, run_task


def tune_argv(argv: list[str]) -> list[str]:
    """`argv` plus `hparams_search=<model>` (model from `model=...`, default mlp) unless given."""
    if any(a.startswith("hparams_search=") for a in argv):
        return argv
    model = next((a.split("=", 1)[1] for a in argv if a.startswith("model=")), "mlp")
    return [*argv, f"hparams_search={model}"]


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    # imported here: torch and Lightning are not needed to report a bad command line
    from jsmp.run.training import train

    return run_task(train, cfg)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *tune_argv(sys.argv[1:])]
    # a malformed or quoted sweep (model.lr=interval(1), "model.lr='interval(0, 1)'"): one line, exit 2
    exit_on_sweep_error(check_overrides)(sys.argv[1:])
    # a wrong type or unknown key (data.batch_size=abc, +data.bogus=1): one line, exit 2
    exit_on_user_error(check_compose)(sys.argv[1:], Path(__file__).parent / "conf")
    main()
