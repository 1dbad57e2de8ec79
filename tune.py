"""Hyper-parameter search: `python tune.py model=mlp [overrides]`.

The same as `jsmp tune ...` and `python train.py hparams_search=mlp [overrides]`: runs
conf/hparams_search/<model>.yaml (a multirun with the jsmp_optuna sweeper; storage and n_trials
defaults there), prints the best value and params and writes best.yaml, the plots and optuna.db
into the sweep dir (logs/train/sweeps/<model>). Rerunning the same command continues the study.
As with train.py, logs/ is under $JSMP_ROOT if set, else under this clone.

A shared storage's password never goes on the command line or into a config (Hydra writes
both into every run dir): give `hydra.sweeper.storage=postgresql://USER@HOST/DB` and the
password in JSMP_STORAGE_PASSWORD (see hydra_plugins/jsmp_optuna_sweeper/storage.py).
"""

import sys
from pathlib import Path

from jsmp.run.cli import tune_main

if __name__ == "__main__":
    tune_main(sys.argv[1:], root=Path(__file__).resolve().parent)
