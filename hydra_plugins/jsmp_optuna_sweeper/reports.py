"""What a finished sweep leaves in its sweep dir: best.yaml, optimization_results.yaml and the plots.

Hydra's plugin scan imports this module: Optuna and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from .files import atomic_path, write_text_atomic

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

# user attr of each trial: the overrides its job got (searched and fixed, in Hydra's grammar)
OVERRIDES_ATTR = "overrides"
# param_importances.png needs this many complete trials; PED-ANOVA compares the best of them
# (at least IMPORTANCE_TOP, as Optuna's docs advise) with all of them
MIN_IMPORTANCE_TRIALS = 10
IMPORTANCE_TOP = 5


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


def write_results(study: optuna.Study, path: Path) -> None:
    """optimization_results.yaml, as the official hydra-optuna-sweeper writes it: `name: optuna`,
    `best_params`, `best_value`; with several objectives `solutions`, the Pareto front's
    `{params, values}`."""
    if len(study.directions) > 1:
        out = {"name": "optuna", "solutions": [{"params": dict(t.params), "values": list(t.values)}
                                               for t in study.best_trials]}
    else:
        out = {"name": "optuna", "best_params": dict(study.best_trial.params), "best_value": study.best_value}
    write_text_atomic(path, OmegaConf.to_yaml(OmegaConf.create(out)))


def plot_history(study: optuna.Study, ax) -> None:
    """Each complete trial's value and the best so far against the trial number; each pruned
    trial at the last value it reported (its best epoch so far), as a hollow grey mark."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    better = max if study.direction.name == "MAXIMIZE" else min
    best, running = [], None
    for t in done:
        running = t.value if running is None else better(running, t.value)
        best.append(running)
    ax.plot([t.number for t in done], [t.value for t in done], "o", color="tab:blue", label=f"complete ({len(done)})")
    ax.plot([t.number for t in done], best, "-", color="tab:red", label="best so far")
    ax.plot([t.number for t in pruned], [t.intermediate_values[t.last_step] for t in pruned], "o", mfc="none",
            color="grey", label=f"pruned ({len(pruned)}): value when pruned")
    ax.set(xlabel="trial", ylabel="objective", title=f"Optimization history of {study.study_name}")
    ax.legend(loc="best")


def plot_importances(study: optuna.Study, n_complete: int):
    """Optuna's importances plot (PED-ANOVA), titled with the trials it rests on; its Axes."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as ovm

    top = max(0.1, IMPORTANCE_TOP / n_complete)  # the best 10%, at least IMPORTANCE_TOP trials
    with warnings.catch_warnings():  # (Optuna's "experimental" notice, printed on every sweep)
        warnings.simplefilter("ignore", ExperimentalWarning)
        ax = ovm.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator(target_quantile=top))
    ax.set_title(f"Hyperparameter importances (PED-ANOVA):\nthe best {round(top * n_complete)} of {n_complete} "
                 "complete trials against all", loc="left")  # (replaces Optuna's own)
    return ax


def save_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    """optimization_history.png and, from MIN_IMPORTANCE_TRIALS complete trials, param_importances.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    fig, ax = plt.subplots(figsize=(8, 5))
    plot_history(study, ax)
    figures = {"optimization_history": fig}
    if n_complete < MIN_IMPORTANCE_TRIALS:
        log.info("no param_importances.png: %d complete trials, fewer than the %d importances need to mean "
                 "anything", n_complete, MIN_IMPORTANCE_TRIALS)
    elif len(study.best_trial.params) > 0:
        try:
            figures["param_importances"] = plot_importances(study, n_complete).figure
        except (ValueError, RuntimeError) as e:  # e.g. every complete trial has the same value
            log.warning("no param_importances.png: %s", e)
    saved = []
    for name, figure in figures.items():
        path = out_dir / f"{name}.png"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        saved.append(path)
    return saved


def print_front(study: optuna.Study) -> None:
    """The Pareto front of a multi-objective study: each trial's values (named as the study's metrics) and params."""
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    front = sorted(study.best_trials, key=lambda t: t.number)
    print(f"Pareto front ({len(front)} trial{'' if len(front) == 1 else 's'}): " + ", ".join(f"{n} ({d.name.lower()})"
                                                             for n, d in zip(names, study.directions)))
    for t in front:
        values = " ".join(f"{n}={v:.6g}" for n, v in zip(names, t.values))
        print(f"  trial {t.number}: {values} | " + " ".join(f"{k}={v}" for k, v in t.params.items()))


def report(study: optuna.Study, out_dir: Path) -> None:
    """Print the best trial and write best.yaml, optimization_results.yaml and the plots into `out_dir`."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning("study %s has no complete trial: no best.yaml", study.study_name)
        return
    write_results(study, out_dir / "optimization_results.yaml")
    if len(study.directions) > 1:
        print_front(study)
        print(f"written: {out_dir / 'optimization_results.yaml'}")
        return
    best = write_best(study, out_dir / "best.yaml")
    save_plots(study, out_dir)
    print(f"best value: {best['value']} (trial {best['trial']})")
    print("best params: " + " ".join(f"{k}={v}" for k, v in best["params"].items()))
    print(f"written: {out_dir / 'best.yaml'}, {out_dir / 'optimization_results.yaml'}")
