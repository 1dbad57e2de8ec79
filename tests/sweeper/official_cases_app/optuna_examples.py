"""A Hydra app for tests/sweeper/test_official_cases.py, in the shape of the official Optuna sweeper
plugin's examples (our own text). `objective` picks what a job returns:

    sphere      x**2 + y**2 (`error=true` raises)          conf/sphere.yaml, conf/grid.yaml
    binh_korn   (4x**2 + 4y**2, (x-5)**2 + (y-5)**2)         conf/binh_korn.yaml (two objectives)
    sphere4     w**2 + x**2 + y**2 + z**2                    conf/custom_space.yaml (z and +w from configure)
"""

import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(version_base="1.3", config_path="conf", config_name="sphere")
def main(cfg: DictConfig) -> float | tuple[float, float]:
    if cfg.get("error"):
        raise RuntimeError("cfg.error is True")
    if cfg.objective == "binh_korn":
        return 4 * cfg.x**2 + 4 * cfg.y**2, (cfg.x - 5) ** 2 + (cfg.y - 5) ** 2
    if cfg.objective == "sphere4":
        return cfg.w**2 + cfg.x**2 + cfg.y**2 + cfg.z**2
    return cfg.x**2 + cfg.y**2


def configure(cfg: DictConfig, trial: Trial) -> None:
    """custom_search_space: z within max_z_difference_from_x of the sampled x, and w (new to the config: +w)."""
    x, gap = trial.params["x"], cfg.max_z_difference_from_x
    trial.suggest_float("z", x - gap, x + gap)
    trial.suggest_float("+w", 0.0, 1.0)


if __name__ == "__main__":
    main()
