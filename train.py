"""Train a jsmp model: `python train.py model=mlp data.frac=0.5 trainer.max_epochs=2`.

Every setting lives in conf/ (see `python train.py --help`); this file only hands the
composed config to the recipe in jsmp/training.py.
"""

import hydra
from omegaconf import DictConfig

from jsmp.cli import run_task
from jsmp.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return run_task(train, cfg)


if __name__ == "__main__":
    main()
