"""cv_objective=true: one run per CV fold, and the mean of the optimized metric over them."""

import json

from conftest import train_in_process


def test_cv_objective_trains_every_fold_and_returns_the_mean(tiny_store, tmp_path):
    run = tmp_path / "run"
    p = train_in_process([f"data.store={tiny_store}", "cv_objective=true", "data.cv.folds=2",
                          "data.cv.gap_days=2", "trainer.max_epochs=1", "data.batch_size=256", "logger=none",
                          "callbacks.progress_bar=null", f"hydra.run.dir={run}"])
    assert p.returncode == 0, p.stderr[-3000:]
    folds = [json.loads((run / f"fold-{k}" / "metrics.json").read_text()) for k in range(2)]
    assert all(m["status"] == "completed" for m in folds)
    m = json.loads((run / "metrics.json").read_text())
    values = [f["val/utility_best"] for f in folds]
    assert [m["fold-0/val/utility_best"], m["fold-1/val/utility_best"]] == values
    assert m["val/utility_best"] == sum(values) / 2 and m["folds"] == 2


def test_cv_objective_needs_folds_and_no_fixed_fold(tiny_store, tmp_path):
    base = [f"data.store={tiny_store}", "cv_objective=true", "logger=none", f"hydra.run.dir={tmp_path}"]
    p = train_in_process([*base, "data.fold=1"])
    assert p.returncode == 2 and "leave data.fold null" in p.stderr and "Traceback" not in p.stderr
    p = train_in_process([*base, "data.cv.folds=1"])
    assert p.returncode == 2 and "data.cv.folds to be an integer >= 2, got 1" in p.stderr
