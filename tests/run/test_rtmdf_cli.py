"""The 2024 layout from the command line: train.py on a grouped store with lag features logs val/r2 beside
its ceiling, records the inputs, and the user mistakes around it get one line and exit 2."""

import json

import pytest

from conftest import run_main


def last_line(p) -> str:
    return p.stderr.strip().splitlines()[-1]


def test_rtmdf_run_logs_r2_and_records_its_inputs(tiny_rtmdf_store, tmp_path, train_app):
    from jsmp.evaluate.cli import main

    p = train_app("data=rtmdf", f"data.store={tiny_rtmdf_store}", "model=mlp", "trainer.max_epochs=2", "logger=none",
                  "data.batch_size=256")
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"val/r2", "val/r2_best", "val/mse", "val/r2_ideal", "best/val/r2"} <= set(m) and m["status"] == "completed"
    assert m["hp_metric"] == m["val/r2_best"] and 0 < m["val/r2_ideal"] < 1
    prep = json.loads((tmp_path / "run" / "preprocess.json").read_text())
    assert prep["group"] == "symbol_id" and prep["fill"] == "ffill"
    assert prep["features"][:2] == ["feature_00", "feature_01"] and prep["features"][-1] == "responder_8_lag_1"
    assert len(prep["features"]) == 79 + 9 == len(prep["fill_value"])
    assert "ideal=" in p.stdout and "done: val/r2=" in p.stdout  # the summary line
    # jsmp eval scores it on its validation days, as training did (tests/evaluate/test_evaluate.py: the numbers)
    e = run_main(main, ["--run", str(tmp_path / "run"), "--out", str(tmp_path / "eval")])
    assert e.returncode == 0 and e.stderr == "", e.stderr[-2000:]
    assert f"(metrics.json best/val/r2): {m['best/val/r2']:.4f}" in e.stdout and (tmp_path / "eval" / "daily_r2.csv").is_file()


def test_lag_features_need_the_2024_layout(tiny_store, train_app):
    p = train_app(f"data.store={tiny_store}", "data.lags=true", "trainer.max_epochs=1", "logger=none")
    assert p.returncode == 2
    assert last_line(p) == (f"error: data.lags=true: store {tiny_store} has no instruments, time_id and responder_N columns; "
                            f"lag features need a store of the 2024 layout (python -m jsmp.data ingest train.parquet, or data=rtmdf)")


def test_an_unknown_task_fails_before_any_store_is_generated(tmp_path, train_app):
    p = train_app("data.task=bogus", "trainer.max_epochs=1", "logger=none")
    assert p.returncode == 2
    assert last_line(p) == "error: data.task must be one of ['action', 'regression'], got 'bogus'"
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


@pytest.mark.parametrize("overrides", [["model=lstm", "data.window.length=4"], ["model=aemlp"],
                                       ["model=mlp", "data.fold=0", "data.cv.gap_days=1"]], ids=["lstm", "aemlp", "mlp-fold0"])
def test_every_model_and_cv_folds_run_on_the_2024_layout(overrides, tiny_rtmdf_store, tmp_path, train_app):
    p = train_app("data=rtmdf", f"data.store={tiny_rtmdf_store}", *overrides, "trainer.fast_dev_run=true")
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "completed" and {"val/r2", "val/mse"} <= set(m)
