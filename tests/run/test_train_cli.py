"""train.py with Hydra overrides, run in-process (conftest train_app: train_main, Hydra and all); a
subprocess, as a user runs it, for the command line's error classes (one line + exit 2; Hydra's own)."""

import json

import pytest
import yaml

from conftest import ROOT


def test_fast_dev_run_writes_metrics_and_config(tiny_store, tmp_path, train_app):
    p = train_app(f"data.store={tiny_store}", "trainer.fast_dev_run=true")
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    for key in ["val/utility", "val/utility_oracle", "val/utility_ideal", "val/auc", "val/acc", "val/loss", "val/utility_best"]:
        assert key in metrics, key
    assert metrics["val/utility_oracle"] >= metrics["val/utility"]
    cfg = (run / "config.yaml").read_text()
    assert f"store: {tiny_store}" in cfg and "${" not in cfg  # resolved


def test_training_logs_tensorboard_scalars_and_checkpoints(tiny_store, tmp_path, train_app):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    p = train_app(f"data.store={tiny_store}", "trainer.max_epochs=2", "data.batch_size=256")
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    tags = set()
    for ev in (run / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"val/utility", "val/utility_oracle", "val/auc", "val/acc", "val/loss", "train/loss",
            "val/utility_best", "hp_metric"} <= tags
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("best-epoch*.ckpt"))) == 1
    m = json.loads((run / "metrics.json").read_text())
    assert m["epoch"] >= 1 and m["best/val/utility"] == m["val/utility_best"]
    assert m["hp_metric"] == m["val/utility_best"]
    hparams = yaml.safe_load((run / "tensorboard" / "hparams.yaml").read_text())  # the HParams table's keys
    assert list(hparams)[:4] == ["model", "optimizer", "lr", "hidden"] and hparams["batch_size"] == 256


def test_default_synthetic_store_is_generated_once(tmp_path, train_app):
    args = ["data.synthetic.days=12", "data.synthetic.rows_per_day=30", "trainer.fast_dev_run=true", "data.split.gap_days=1"]
    p = train_app(*args)
    assert p.returncode == 0, p.stderr[-3000:]
    store = tmp_path / "data" / "synthetic-d12-r30-s0"
    assert (store / "manifest.json").is_file()
    stamp = (store / "manifest.json").stat().st_mtime_ns
    p = train_app(*args, run="run2")  # (a run dir holds one run)
    assert p.returncode == 0 and (store / "manifest.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("override,message", [
    ("data.frac=0", "data.frac must be in (0, 1]"),
    ("trainer.accelerator=gpu", "no CUDA GPU is visible"),
    ("model.optimizer=adamax", "model.optimizer must be one of"),
    ("data.store=/nonexistent/store", "store /nonexistent/store: does not exist"),
    ("+model.nonsense=1", "model: "),
    ("model.lr=1e-3", "model.lr: Key 'lr' is not in struct; it moved to model.optimizer.lr"),
])
def test_user_mistakes_give_one_line_and_exit_2(tiny_store, tmp_path, override, message, train_app, train_cli):
    base = [] if override.startswith("data.store") else [f"data.store={tiny_store}"]
    train = train_cli if override == "data.frac=0" else train_app  # one of them as a user runs it
    p = train(*base, override, "trainer.fast_dev_run=true")
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and message in err[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr


def test_unknown_group_option_is_one_line_naming_the_file_and_the_options(tmp_path, train_cli):
    p = train_cli("model=nope")
    assert p.returncode == 2 and p.stderr == (f"error: model=nope: no {ROOT / 'conf' / 'model' / 'nope.yaml'}; expected one "
                                              "of aemlp, axial, day_gru, gru, lstm, mlp, sincos\n")


DISK_FULL_HINT = "free space there, or choose another hydra.run.dir (hydra.sweep.dir for -m) or paths.log_dir"


def _train_in_process(tmp_path, monkeypatch, capsys, *overrides) -> str:
    """`train.py OVERRIDES` in this process, run dir tmp_path/run: the one stderr line of its exit 2."""
    from jsmp.run.cli import train_main

    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    with pytest.raises(SystemExit) as e:
        train_main([f"hydra.run.dir={tmp_path}/run", "logger=none", "callbacks=none", "+trainer.enable_progress_bar=false",
                    *overrides],
                   root=tmp_path)
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_full_disk_during_training_is_one_line(tiny_store, tmp_path, monkeypatch, capsys):
    import errno

    from jsmp.run import callbacks

    def full(path, text):  # metrics.json's writes, as on a full disk: the write fails (naming no file)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(callbacks, "write_text_atomic", full)
    line = _train_in_process(tmp_path, monkeypatch, capsys, f"data.store={tiny_store}", "trainer.max_epochs=1")
    assert line == f"error: disk full writing the run dir {tmp_path}/run (No space left on device): {DISK_FULL_HINT}"


def test_a_full_disk_while_hydra_writes_the_run_dir_is_one_line(tiny_store, tmp_path, monkeypatch, capsys):
    import errno

    from hydra.core import utils

    def full(cfg, filename, output_dir):
        raise OSError(errno.ENOSPC, "No space left on device", str(output_dir / filename))

    monkeypatch.setattr(utils, "_save_config", full)  # Hydra's writes of .hydra/*.yaml, before the job runs
    line = _train_in_process(tmp_path, monkeypatch, capsys, f"data.store={tiny_store}")
    assert line == f"error: disk full writing {tmp_path}/run/.hydra/config.yaml (No space left on device): {DISK_FULL_HINT}"


def test_a_full_disk_is_reported_once_by_the_log_file_and_threads(capsys, monkeypatch):
    import errno
    import logging
    import threading
    import weakref

    from jsmp.run.cli import LogFile, _quiet_disk_full_in_threads

    handler = LogFile("/dev/full")  # every write: ENOSPC
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a line", None, None)
    handler.emit(record)
    handler.emit(record)
    logging.shutdown([weakref.ref(handler)])  # (as at exit: its last flush fails too, silently)
    assert capsys.readouterr().err == "warning: disk full writing /dev/full: its later lines are lost\n"

    def fail(err):
        def run():
            raise err
        return run

    reported = []  # what the hook in place before (Python's prints a traceback) is left to report
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_value))
    with _quiet_disk_full_in_threads():  # (TensorBoard's writer thread: its error is raised again in training)
        for err in (OSError(errno.ENOSPC, "No space left on device"), ValueError("a bug")):
            thread = threading.Thread(target=fail(err))
            thread.start()
            thread.join()
    assert [str(e) for e in reported] == ["a bug"]
