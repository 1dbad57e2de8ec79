"""Fault tolerance: NaN guard, determinism, kill-and-resume, damaged and interrupted stores."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, TINY, cfg_for, train_cfg
from jsmp.data.synthetic import write_store
from jsmp.errors import UserError
from jsmp.run.callbacks import run_status
from jsmp.store.store import Store


def test_diverging_run_stops_with_a_clear_message(tiny_store, tmp_path, train_app):
    p = train_app(f"data.store={tiny_store}", "model.optimizer.lr=10", "data.batch_size=128", "trainer.max_epochs=3", run="nan")
    assert p.returncode == 2
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "training diverged at epoch 0" in err[0] and "lower model.optimizer.lr (now 10" in err[0]
    m = json.loads((tmp_path / "nan" / "metrics.json").read_text())
    assert m["status"] == "failed" and "diverged" in m["error"]
    assert not list((tmp_path / "nan").glob("checkpoints/*.ckpt"))


def test_same_seed_gives_identical_metrics(tiny_store, tmp_path):
    args = [f"data.store={tiny_store}", "trainer.max_epochs=2", "data.batch_size=256", "logger=none"]
    for run in "ab":
        train_cfg(cfg_for(tmp_path, *args, run=run))
    ma, mb = (_without_writer(json.loads((tmp_path / r / "metrics.json").read_text())) for r in "ab")
    assert ma == mb
    train_cfg(cfg_for(tmp_path, *args, "seed=7", run="c"))
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["val/loss"] != ma["val/loss"]


def _without_writer(m: dict) -> dict:
    return {k: v for k, v in m.items() if k not in ("pid", "pid_start", "host")}  # who wrote it differs


def test_kill_mid_epoch_then_resume_matches_uninterrupted(tiny_store, tmp_path, train_app):
    args = [f"data.store={tiny_store}", "trainer.max_epochs=3", "data.batch_size=32", "logger=none",
            "callbacks.early_stopping.patience=100"]
    train_cfg(cfg_for(tmp_path, *args, run="ref"))
    run = tmp_path / "killed"
    cmd = [sys.executable, "train.py", f"hydra.run.dir={run}", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "JSMP_ROOT": str(tmp_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists(), "no checkpoint before the kill"
    assert json.loads((run / "metrics.json").read_text())["status"] == "running"
    assert run_status(run) == "killed"  # running, but its writer is gone
    first = {n: (run / n).read_bytes() for n in ("config.yaml", "preprocess.json", ".hydra/config.yaml")}
    resumed = train_app(*args, "ckpt_path=last", run="killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert {n: (run / n).read_bytes() for n in first} == first  # the first invocation's files stay
    assert (run / "config.resume-1.yaml").read_text() == (run / "config.yaml").read_text().replace(
        "ckpt_path: null", "ckpt_path: last")  # the resumed invocation's own config, alongside
    assert run_status(run) == "completed"
    m_ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    m_res = json.loads((run / "metrics.json").read_text())
    assert m_res["status"] == "completed" and m_res["epoch"] == m_ref["epoch"]
    for key in ["val/utility", "val/utility_best", "val/auc", "val/loss", "best_epoch"]:
        assert m_res[key] == pytest.approx(m_ref[key], rel=1e-5), key


def test_tampered_shard_is_named(tmp_path, train_app):
    path = write_store(TINY, tmp_path / "s", shard_rows=500)
    shard = path / "features-00001.npy"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # same size, different bytes
    shard.write_bytes(bytes(data))
    Store(path)  # sizes still match: opening is fine
    with pytest.raises(UserError, match="shard features-00001.npy does not match its checksum"):
        Store(path).verify()
    with open(shard, "ab") as f:
        f.write(b"\0" * 8)
    with pytest.raises(UserError, match=r"shard features-00001.npy has \d+ bytes, the manifest says"):
        Store(path)
    p = train_app(f"data.store={path}", "trainer.fast_dev_run=true", run="t")
    assert p.returncode == 2 and "features-00001.npy" in p.stderr and "Traceback" not in p.stderr


def test_tampered_side_column_stops_training(tmp_path, train_app):
    path = write_store(TINY, tmp_path / "s", shard_rows=500)
    weight = path / "weight.npy"
    data = bytearray(weight.read_bytes())
    data[-3] ^= 0x01  # one bit of one weight: NaN-free, plausible, wrong
    weight.write_bytes(bytes(data))
    p = train_app(f"data.store={path}", "trainer.fast_dev_run=true", run="t")
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(err) == 1
    assert "column weight.npy does not match its checksum in the manifest (the store is damaged; rebuild it: " in err[0]


def test_store_write_killed_midway_is_never_complete(tmp_path):
    target = tmp_path / "big"
    code = ("from jsmp.data.synthetic import SynthSpec, write_store; "
            f"write_store(SynthSpec(days=400, rows_per_day=2000), {str(target)!r}, shard_rows=20000)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(tmp_path.glob(".big.tmp-*/features-00002.npy")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists() and list(tmp_path.glob(".big.tmp-*"))  # only a temp dir is left
    with pytest.raises(UserError, match="does not exist"):
        Store(target)
    write_store(TINY, target)  # the next write cleans the dead writer's temp dir
    assert Store(target).n_rows > 0
    assert not list(tmp_path.glob(".big.tmp-*"))
