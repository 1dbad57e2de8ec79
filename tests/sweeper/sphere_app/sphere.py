"""A task app in the shape of the official Optuna sweeper's example in Hydra's docs: returns
x**2 + y**2 (with `two_objectives`, also (x - 2)**2 + y**2); `error=true` raises. Run by
tests/sweeper/test_official.py as `python sphere.py [overrides]`, from a scratch directory."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def sphere(cfg: DictConfig) -> float | list[float]:
    if cfg.error:
        raise RuntimeError("cfg.error is True")
    if cfg.get("two_objectives"):
        return [cfg.x**2 + cfg.y**2, (cfg.x - 2) ** 2 + cfg.y**2]
    return cfg.x**2 + cfg.y**2


if __name__ == "__main__":
    sphere()
