"""The plugin class Hydra instantiates for `hydra/sweeper: jsmp_optuna` and `optuna`.

It is defined once, under the official plugin's `_target_`
(`hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper`), so that Hydra lists it once in
`--info plugins`; both config names target it (config.py). Re-exported here for Python imports.
"""

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

__all__ = ["OptunaSweeper"]
