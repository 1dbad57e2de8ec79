"""The official hydra-optuna-sweeper's names, served by jsmp's sweeper (hydra_plugins/jsmp_optuna_sweeper).

Search files written for the official plugin (lightning-hydra-template's `hparams_search/*.yaml`,
Hydra's docs) keep `hydra.sweeper._target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper`
and `override /hydra/sweeper: optuna`; both resolve to jsmp's sweeper (the config name is
registered in hydra_plugins/jsmp_optuna_sweeper/config.py). The names cannot clash with the
official package: PyPI's hydra-optuna-sweeper pins optuna<3, so it cannot be installed beside
jsmp's optuna>=4.9.
"""
