"""A multi-objective search through train.py (`optimized_metric` a list, one `hydra.sweeper.direction`
each): no pruning, the study's metric names for optuna-dashboard, the Pareto front in
optimization_results.yaml; and the checks of a search's objective (count, direction)."""

from __future__ import annotations

import json

import optuna
import yaml
from optuna.trial import TrialState
from test_sweep import trials, tune

TWO = ["optimized_metric=[val/utility_best,val/loss]", "hydra.sweeper.direction=[maximize,minimize]"]


def test_two_objectives_give_the_pareto_front_with_named_metrics(tiny_store, tmp_path):
    p = tune(tiny_store, tmp_path, 3, *TWO)  # (the median pruner stays configured: it is turned off)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    done = trials(tmp_path)
    assert [t.state for t in done] == [TrialState.COMPLETE] * 3 and all(len(t.values) == 2 for t in done)
    assert all(not t.intermediate_values for t in done)  # nothing reported: Optuna cannot prune them
    assert out.count("no pruning: study mlp has 2 objectives (val/utility_best, val/loss)") == 3
    assert "pruner off (2 objectives: Optuna prunes single-objective studies only)" in out
    study = optuna.load_study(study_name="mlp", storage=f"sqlite:///{tmp_path / 'sweep' / 'optuna.db'}")
    assert study.metric_names == ["val/utility_best", "val/loss"]  # optuna-dashboard's axis names
    front = sorted(study.best_trials, key=lambda t: t.number)
    assert yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text()) == {
        "name": "optuna", "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials]}
    heading = f"Pareto front ({len(front)} trial{'' if len(front) == 1 else 's'}): "
    assert heading + "val/utility_best (maximize), val/loss (minimize)" in p.stdout
    for t in front:  # each trial's values are its run's metrics
        run = json.loads((tmp_path / "sweep" / f"trial-{t.number}" / "metrics.json").read_text())
        assert t.values == [run["val/utility_best"], run["val/loss"]]
        assert f"  trial {t.number}: val/utility_best={t.values[0]:.6g} val/loss={t.values[1]:.6g} | " in p.stdout
    assert "whose better values are" not in out  # the directions agree with the metrics


def test_directions_and_metrics_must_pair_up(tiny_store, tmp_path):
    p = tune(tiny_store, tmp_path, 2, "optimized_metric=[val/utility_best,val/loss]")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1] == (
        "error: hydra.sweeper.direction=maximize has 1 objective(s) but optimized_metric=[val/utility_best, val/loss] "
        "names 2 metric(s): give one direction per metric")
    assert not (tmp_path / "sweep").exists()


def test_a_direction_opposite_to_the_metric_warns_once(tiny_store, tmp_path):
    # a `direction: minimize` copied from another search, on jsmp's val/utility_best
    p = tune(tiny_store, tmp_path, 2, "hydra.sweeper.direction=minimize", "trainer.max_epochs=1")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert out.count("hydra.sweeper.direction=minimize for val/utility_best, whose better values are higher "
                     "(maximize): the search looks for the worst models") == 1


def test_an_unlogged_objective_fails_its_trial_in_one_line(tiny_store, tmp_path):
    # lightning-hydra-template's objective, which no jsmp model logs: the trial fails after its first
    # epoch, not with "the job returned nan" after its last
    p = tune(tiny_store, tmp_path, 2, "optimized_metric=val/acc_best", "trainer.max_epochs=3")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: hydra.sweeper.max_failure_rate=0.2: 1 of n_trials=2 trials failed"), line  # (mlp.yaml's)
    assert "Trial 0 failed: UserError: optimized_metric: val/acc_best is not logged by this run; it logs val/acc, " in line
    metrics = json.loads((tmp_path / "sweep" / "trial-0" / "metrics.json").read_text())
    assert (metrics["status"], metrics["best_epoch"]) == ("failed", 0)
