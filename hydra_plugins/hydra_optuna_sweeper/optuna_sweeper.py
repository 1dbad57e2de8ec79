"""`hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper`, the official plugin's
`_target_`, as jsmp's sweeper (see __init__.py). Light, as every module Hydra's plugin scan imports."""

from hydra_plugins.jsmp_optuna_sweeper.sweeper import OptunaSweeper as _JsmpOptunaSweeper


class OptunaSweeper(_JsmpOptunaSweeper):
    """jsmp's sweeper under the official plugin's class name (Hydra looks plugins up by `module.Class`)."""
