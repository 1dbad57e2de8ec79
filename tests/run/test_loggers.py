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


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`", "ignore:starlette.middleware.wsgi is deprecated")
def test_mlflow_logger_records_params_and_metrics_per_epoch_and_its_ui_shows_them(tiny_store, tmp_path, monkeypatch, train_app):
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
    assert run.data.metrics["val/utility_ideal"] == pytest.approx(metrics["val/utility_ideal"], rel=1e-6)

    # `mlflow ui --backend-store-uri sqlite:///<store>` (the extra installs the full mlflow, its UI, at the writer's
    # version): its server app, in-process, serves the page and reads the run
    from importlib.metadata import version

    from mlflow.server import handlers
    from mlflow.server.fastapi_app import app
    from starlette.testclient import TestClient

    assert version("mlflow") == version("mlflow-skinny")
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", f"sqlite:///{store}")  # what `mlflow ui` hands its server
    monkeypatch.setattr(handlers, "_tracking_store", None)
    ui = TestClient(app, base_url="http://localhost:5000")  # (the server refuses other Host headers)
    page = ui.get("/")
    assert page.status_code == 200 and page.text.startswith("<!doctype html>")
    found = ui.post("/api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment.experiment_id]}).json()["runs"]
    assert [r["info"]["run_id"] for r in found] == [run.info.run_id]


def hide(monkeypatch, module: str) -> None:
    """`module` missing in this process: its sys.modules entry None (an import of it fails, find_spec says
    None), Lightning's cached availability checks cleared now and when monkeypatch undoes it."""
    from lightning_utilities.core.imports import module_available, package_available

    def forget():
        module_available.cache_clear()
        package_available.cache_clear()

    forget()
    for name in [m for m in sys.modules if m.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(monkeypatch, "undo", lambda undo=monkeypatch.undo: (undo(), forget()))


@pytest.mark.parametrize("logger,cls,module", [("mlflow", "MLFlowLogger", "mlflow"), ("wandb", "WandbLogger", "wandb")])
def test_a_logger_without_its_library_names_the_extra(tiny_store, tmp_path, monkeypatch, train_app, logger, cls, module):
    hide(monkeypatch, module)
    p = train_app(f"data.store={tiny_store}", f"logger={logger}", "trainer.max_epochs=1")
    assert p.returncode == 2, p.stderr[-2000:]
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert err == [f"error: logger: {cls} needs the `{module}` module, which is not installed; "
                   f"install jsmp's optional extra: pip install 'jsmp[{module}]'"], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def wandb_records(path: Path):
    """The records of an offline wandb run's `run-<id>.wandb` (wandb.proto Record messages, in LevelDB's log
    format: a 7-byte header, then 32 KiB blocks of chunks: crc32, length (2 bytes, little-endian), kind
    (1 whole, 2 first, 3 middle, 4 last), data)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunks = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header: padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunks, pos = chunks + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def key(item) -> str:
    """A wandb record item's key: `key`, or its `nested_key` parts (wandb splits `val/utility`) joined by `/`."""
    return item.key or "/".join(item.nested_key)


def test_wandb_logger_runs_offline_without_an_account(tiny_store, tmp_path, monkeypatch, train_app):
    """logger=wandb with no account and no WANDB_MODE: an offline run in the run dir with the params, the
    metrics of every epoch and the data's ceiling; the next run in this process gets a run of its own."""
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing written outside tmp_path
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    ids = []
    for run in ("a", "b"):
        p = train_app(f"data.store={tiny_store}", "logger=wandb", *TRAIN, run=run)
        assert p.returncode == 0, p.stderr[-3000:]
        (offline,) = (tmp_path / run / "wandb").glob("offline-run-*/run-*.wandb")
        records = list(wandb_records(offline))
        (info,) = [r.run for r in records if r.HasField("run")]
        assert (info.project, info.run_group) == ("jsmp", "train") and info.display_name.startswith("mlp ")
        config = {key(c): json.loads(c.value_json) for r in records if r.HasField("config") for c in r.config.update}
        assert config["seed"] == 42 and config["model"] == "MLP"
        history = [{key(h): json.loads(h.value_json) for h in r.history.item} for r in records if r.HasField("history")]
        utility = [h["val/utility"] for h in history if "val/utility" in h]
        metrics = json.loads((tmp_path / run / "metrics.json").read_text())
        assert len(utility) == 2 and utility[-1] == pytest.approx(metrics["val/utility"], rel=1e-6)
        assert [h["val/utility_ideal"] for h in history if "val/utility" in h] == pytest.approx(
            [metrics["val/utility_ideal"]] * 2, rel=1e-6)
        assert [r.exit.exit_code for r in records if r.HasField("exit")] == [0]  # finished with the fit
        ids.append(info.run_id)
    assert ids[0] != ids[1]
