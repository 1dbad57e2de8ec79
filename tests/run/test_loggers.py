"""conf/logger/: csv, mlflow and many (TensorBoard + CSV), through train.py (in-process: conftest train_app)."""

import csv
import json
import sys
from pathlib import Path

import pytest

TRAIN = ["trainer.max_epochs=2", "data.batch_size=256"]


def per_epoch(path: Path, key: str) -> dict[int, float]:
    """CSVLogger's metrics.csv -> {epoch: value} of the rows that hold `key`."""
    with path.open() as f:
        return {int(r["epoch"]): float(r[key]) for r in csv.DictReader(f) if r.get(key)}


def test_many_loggers_write_csv_and_tensorboard(tiny_store, tmp_path, train_app):
    """logger=many: CSV (logger=csv's node) and TensorBoard (logger=tensorboard's) side by side."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    p = train_app(f"data.store={tiny_store}", "logger=many", *TRAIN)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    utility = per_epoch(run / "csv" / "metrics.csv", "val/utility")
    assert sorted(utility) == [0, 1] and utility[1] == pytest.approx(metrics["val/utility"], rel=1e-6)
    assert sorted(per_epoch(run / "csv" / "metrics.csv", "train/loss")) == [0, 1]
    assert "seed: 42" in (run / "csv" / "hparams.yaml").read_text()
    (event,) = (run / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(event))
    acc.Reload()
    assert [e.value for e in acc.Scalars("val/utility")] == pytest.approx([utility[0], utility[1]], rel=1e-6)


def test_mlflow_logger_records_params_and_metrics_per_epoch(tiny_store, tmp_path, train_app):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    p = train_app(f"data.store={tiny_store}", "logger=mlflow", *TRAIN)
    assert p.returncode == 0, p.stderr[-3000:]
    run_dir = tmp_path / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    store = tmp_path / "logs" / "mlflow" / "mlflow.db"  # ${paths.log_dir}/mlflow under JSMP_ROOT
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("train")  # task_name
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("mlp ") and "trainer.max_epochs=2" in run.info.run_name
    assert run.data.tags["run_dir"] == str(run_dir)
    assert run.data.params["seed"] == "42"
    history = client.get_metric_history(run.info.run_id, "val/utility")
    assert len(history) == 2
    assert history[-1].value == pytest.approx(metrics["val/utility"], rel=1e-6)
    assert run.data.metrics["val/utility_best"] == pytest.approx(metrics["val/utility_best"], rel=1e-6)


@pytest.fixture
def no_mlflow(monkeypatch):
    """`mlflow` missing in this process: its sys.modules entry None (an import of it fails, find_spec says
    None), Lightning's cached availability checks cleared before and after."""
    from lightning_utilities.core.imports import module_available, package_available

    def forget():
        module_available.cache_clear()
        package_available.cache_clear()

    forget()
    for name in [m for m in sys.modules if m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    yield
    monkeypatch.undo()
    forget()


def test_mlflow_logger_without_mlflow_names_the_extra(tiny_store, tmp_path, no_mlflow, train_app):
    p = train_app(f"data.store={tiny_store}", "logger=mlflow", "trainer.max_epochs=1")
    assert p.returncode == 2, p.stderr[-2000:]
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert err == ["error: logger: MLFlowLogger needs the `mlflow` module, which is not installed; "
                   "install jsmp's optional extra: pip install 'jsmp[mlflow]'"], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
