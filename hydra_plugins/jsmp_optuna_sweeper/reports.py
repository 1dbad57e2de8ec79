"""What a finished sweep leaves in its sweep dir: best.yaml and the Optuna plots."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from omegaconf import OmegaConf

from .files import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

# user attr of each trial: the overrides its job got (searched and fixed, in Hydra's grammar)
OVERRIDES_ATTR = "overrides"


def write_best(study: optuna.Study, path: Path) -> dict:
    """best.yaml: the best trial's value, number and overrides; `python train.py +best=PATH` replays it."""
    best = study.best_trial
    out = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "trial": best.number,
        "value": best.value,
        "params": dict(best.params),
        "overrides": list(best.user_attrs.get(OVERRIDES_ATTR, [])),
    }
    write_text_atomic(path, f"# Replay: python train.py +best={path}\n" + OmegaConf.to_yaml(OmegaConf.create(out)))
    return out


def save_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    """optimization_history.png and param_importances.png (PED-ANOVA: no extra dependency)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    saved = []
    for name, plot in [("optimization_history", ovm.plot_optimization_history),
                       ("param_importances", ovm.plot_param_importances)]:
        try:
            ax = plot(study)
        except (ValueError, RuntimeError) as e:  # e.g. too few complete trials for importances
            log.warning("no %s plot: %s", name, e)
            continue
        path = out_dir / f"{name}.png"
        with atomic_path(path) as tmp:
            ax.figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(ax.figure)
        saved.append(path)
    return saved


def report(study: optuna.Study, out_dir: Path) -> None:
    """Print the best trial and write best.yaml and the plots into `out_dir`."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        log.warning("study %s has no complete trial: no best.yaml", study.study_name)
        return
    if len(study.directions) > 1:
        log.info("Pareto front: %s", [(t.number, t.values) for t in study.best_trials])
        return
    best = write_best(study, out_dir / "best.yaml")
    save_plots(study, out_dir)
    print(f"best value: {best['value']} (trial {best['trial']})")
    print("best params: " + " ".join(f"{k}={v}" for k, v in best["params"].items()))
    print(f"written: {out_dir / 'best.yaml'}")
