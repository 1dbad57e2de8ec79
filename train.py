"""Train a jsmp model: `python train.py model=mlp data.frac=0.5 trainer.max_epochs=2`.

Every setting lives in conf/ (see `python train.py --help`); this file only hands the
composed config to the recipe in jsmp/run/training.py. `python train.py +best=SWEEP_DIR/best.yaml`
replays a hyper-parameter sweep's best trial (see tune.py).
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from hydra_plugins.jsmp_optuna_sweeper.errors import exit_on_sweep_error
from hydra_plugins.jsmp_optuna_sweeper.space import check_overrides
from jsmp.errors import exit_on_user_error
from jsmp.run.cli import check_compose, run_task
from jsmp.run.tuning import expand_best


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    # imported here: torch and Lightning are not needed to report a bad command line
    from jsmp.run.training import train

    return run_task(train, cfg)


if __name__ == "__main__":
    # `+best=PATH` (a sweep's best.yaml) stands for the overrides its best trial ran with
    sys.argv[1:] = exit_on_user_error(expand_best)(sys.argv[1:])
    # an override Hydra cannot parse, or (in a sweep) a quoted sweep: one line, exit 2
    sweeping = any(a.startswith(("hparams_search=", "-m", "--multirun")) for a in sys.argv[1:])
    exit_on_sweep_error(check_overrides)(sys.argv[1:], sweeping=sweeping)
    # a wrong type or unknown key (data.batch_size=abc, +data.bogus=1): one line, exit 2
    exit_on_user_error(check_compose)(sys.argv[1:], Path(__file__).parent / "conf")
    main()
