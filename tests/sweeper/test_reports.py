"""What a finished sweep leaves (hydra_plugins/jsmp_optuna_sweeper/reports.py), on studies built here."""

from __future__ import annotations

import logging

import matplotlib
import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from hydra_plugins.jsmp_optuna_sweeper.reports import (
    MIN_IMPORTANCE_TRIALS,
    plot_history,
    plot_importances,
    report,
    save_plots,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SPACE = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}


def study_with(n_complete: int, n_pruned: int) -> optuna.Study:
    """A maximizing study: complete trials worth 3a + b, then pruned ones that reported -1, -2 at steps 0, 1."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(n_complete):
        t = study.ask(SPACE)
        study.tell(t, 3 * t.params["a"] + t.params["b"])
    for _ in range(n_pruned):
        t = study.ask(SPACE)
        t.report(-1.0, 0)
        t.report(-2.0, 1)
        study.tell(t, state=TrialState.PRUNED)
    return study


def test_history_shows_pruned_trials_apart_at_their_last_value():
    study = study_with(4, 3)
    fig, ax = plt.subplots()
    plot_history(study, ax)
    lines = {line.get_label(): line for line in ax.get_lines()}
    plt.close(fig)
    assert set(lines) == {"complete (4)", "best so far", "pruned (3): value when pruned"}
    pruned = lines["pruned (3): value when pruned"]
    assert list(pruned.get_xdata()) == [4, 5, 6] and list(pruned.get_ydata()) == [-2.0] * 3
    assert pruned.get_markerfacecolor() == "none"  # hollow: told apart from the complete ones
    values = [t.value for t in study.trials[:4]]
    assert list(lines["best so far"].get_ydata()) == [max(values[: i + 1]) for i in range(4)]


def test_importances_say_how_many_trials_they_rest_on(tmp_path):
    study = study_with(MIN_IMPORTANCE_TRIALS + 2, 2)
    saved = save_plots(study, tmp_path)
    assert [p.name for p in saved] == ["optimization_history.png", "param_importances.png"]
    assert all(p.stat().st_size > 10_000 for p in saved)
    assert plt.get_fignums() == []  # each figure closed once saved
    ax = plot_importances(study, MIN_IMPORTANCE_TRIALS + 2)
    plt.close(ax.figure)
    # the best 10%, but at least 5 trials: 5 of 12
    assert ax.get_title() == ""  # Optuna's own title, at the left, replaced
    assert ax.get_title(loc="left") == "Hyperparameter importances (PED-ANOVA):\nthe best 5 of 12 complete trials against all"


def test_too_few_trials_for_importances_are_skipped_with_the_reason(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        saved = save_plots(study_with(MIN_IMPORTANCE_TRIALS - 1, 1), tmp_path)
    assert [p.name for p in saved] == ["optimization_history.png"]
    assert (f"no param_importances.png: {MIN_IMPORTANCE_TRIALS - 1} complete trials, fewer than the "
            f"{MIN_IMPORTANCE_TRIALS} importances need to mean anything") in caplog.messages


@pytest.mark.parametrize("pruned_only", [False, True])
def test_report_writes_the_official_results_file(tmp_path, pruned_only):
    study = study_with(0 if pruned_only else 3, 1)
    report(study, tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    if pruned_only:  # nothing to report
        assert written == []
        return
    assert written == ["best.yaml", "optimization_history.png", "optimization_results.yaml"]
    assert yaml.safe_load((tmp_path / "optimization_results.yaml").read_text()) == {
        "name": "optuna", "best_params": study.best_params, "best_value": study.best_value}
