"""optimized_metric (jsmp/run/objective.py): a list of names makes train() return a tuple (CV folds: the
mean of each); a name the run does not log fails after the first validation in one line; which way each
metric is better, for the sweep's direction warning."""

from __future__ import annotations

import json
import logging
import math

import pytest

from conftest import cfg_for, train_cfg
from jsmp.errors import UserError
from jsmp.run.objective import Objective, direction, warn_directions

QUIET = ["data.batch_size=256", "logger=none", "callbacks=none", "+trainer.enable_progress_bar=false"]


def run_cfg(tmp_path, store, *overrides, run="run"):
    return cfg_for(tmp_path, f"data.store={store}", *QUIET, *overrides, run=run)


def test_a_list_of_metrics_returns_a_tuple_in_its_order(tiny_store, tmp_path):
    cfg = run_cfg(tmp_path, tiny_store, "trainer.max_epochs=2", "optimized_metric=[val/loss,val/utility_best,train/loss]")
    values = train_cfg(cfg)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert values == (m["val/loss"], m["val/utility_best"], m["train/loss"])
    assert all(isinstance(v, float) and math.isfinite(v) for v in values)
    # one name: a float, as before
    cfg = run_cfg(tmp_path, tiny_store, "trainer.max_epochs=1", "optimized_metric=best/val/auc", run="one")
    assert train_cfg(cfg) == json.loads((tmp_path / "one" / "metrics.json").read_text())["best/val/auc"]


def test_cv_folds_average_each_metric(tiny_store, tmp_path):
    cfg = run_cfg(tmp_path, tiny_store, "trainer.max_epochs=1", "cv_objective=true", "data.cv.folds=2",
                  "data.cv.gap_days=2", "optimized_metric=[val/utility_best,val/loss]")
    values = train_cfg(cfg)
    run = tmp_path / "run"
    folds = [json.loads((run / f"fold-{k}" / "metrics.json").read_text()) for k in range(2)]
    m = json.loads((run / "metrics.json").read_text())
    for name, value in zip(("val/utility_best", "val/loss"), values):
        assert [m[f"fold-{k}/{name}"] for k in range(2)] == [f[name] for f in folds]
        assert m[name] == value == pytest.approx((folds[0][name] + folds[1][name]) / 2)


def test_an_unlogged_metric_fails_after_the_first_validation(tiny_store, tmp_path):
    # lightning-hydra-template's objective, which no jsmp model logs: one line, not 5 epochs and a NaN
    cfg = run_cfg(tmp_path, tiny_store, "trainer.max_epochs=5", "optimized_metric=[val/utility_best,val/acc_best]")
    with pytest.raises(UserError) as e:
        train_cfg(cfg)
    head, listed = str(e.value).split("; it logs ")
    assert head == "optimized_metric: val/acc_best is not logged by this run"
    # what metrics.json holds after epoch 0 (its train/* too), the val/* metrics first
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "failed" and m["best_epoch"] == 0 and m["error"] == f"UserError: {e.value}"
    names = listed.split(", ")
    assert set(names) == {k for k, v in m.items() if isinstance(v, float)} and "train/loss" in names
    assert names[:5] == ["val/acc", "val/auc", "val/loss", "val/utility", "val/utility_best"]
    assert names.index("hp_metric") > names.index("best/val/utility") and len(names) == len(set(names))


def test_an_unlogged_metric_is_one_line_on_the_command_line(tiny_store, train_app):
    p = train_app(f"data.store={tiny_store}", *QUIET, "trainer.max_epochs=3", "optimized_metric=val/acc_best")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1].startswith(
        "error: optimized_metric: val/acc_best is not logged by this run; it logs val/acc, val/auc,")


@pytest.mark.parametrize("value", ["", [], ["val/loss", 3]])
def test_a_malformed_optimized_metric_is_refused(value):
    with pytest.raises(UserError, match="optimized_metric must be a metric's name or a list of them"):
        Objective(value)


@pytest.mark.parametrize("name,monitor,mode,expected", [
    ("val/utility_best", "val/utility", "max", "maximize"),
    ("val/r2_best", "val/r2", "max", "maximize"),
    ("val/auc", "val/utility", "max", "maximize"),
    ("val/acc_best", "val/utility", "max", "maximize"),
    ("best/val/utility", "val/utility", "max", "maximize"),
    ("val/loss", "val/utility", "max", "minimize"),
    ("train/loss", "val/utility", "max", "minimize"),
    ("val/mse", "val/r2", "max", "minimize"),
    ("test/mse", "test/mse", "min", "minimize"),  # the sincos toy's monitor
    ("val/utility_best", "val/utility", "min", "minimize"),  # the monitor's own: as monitor_mode says
    ("val/custom", "val/utility", "max", None),
])
def test_which_way_a_metric_is_better(name, monitor, mode, expected):
    assert direction(name, monitor, mode) == expected


def test_an_opposite_direction_warns_once_per_metric(caplog):
    objective = Objective(["val/utility_best", "val/loss", "val/custom"])
    with caplog.at_level(logging.WARNING, logger="jsmp.run.objective"):
        warn_directions(objective, ["minimize", "minimize", "maximize"], "val/utility", "max")
        warn_directions(Objective("val/loss"), ["maximize"], "val/utility", "max")
    assert [r.getMessage() for r in caplog.records] == [
        "hydra.sweeper.direction=minimize for val/utility_best, whose better values are higher (maximize): "
        "the search looks for the worst models",
        "hydra.sweeper.direction=maximize for val/loss, whose better values are lower (minimize): "
        "the search looks for the worst models"]
