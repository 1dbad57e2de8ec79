"""Run dirs are append-only history (jsmp/run/rundir.py), checked through train.py (in this process:
conftest train_in_process; a resume also as a user runs it): a refused run touches nothing, a resume is
checked before anything is written, and keeps the first invocation's files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import TINY, compose_cfg, run_cli, train_in_process
from jsmp.errors import UserError
from jsmp.inputs.spec import InputSpec
from jsmp.run.callbacks import run_status, writer
from jsmp.run.rundir import check_run_dir
from jsmp.run.training import check_trainer

ARGS = ["trainer.max_epochs=1", "data.batch_size=256", "logger=none", "callbacks.progress_bar=null"]


def _train(run, *overrides, root, user=False):
    if user:  # a process of its own (metrics.json names its writer)
        return run_cli(["train.py", f"hydra.run.dir={run}", *overrides], env={"JSMP_ROOT": str(root)})
    return train_in_process([f"hydra.run.dir={run}", *overrides], env={"JSMP_ROOT": str(root)})


def _tree(path) -> dict[str, str]:
    """Every file under `path` (hidden ones included) -> sha256 of its bytes."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _one_error(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1, p.stderr[-2000:]
    return err[0]


@pytest.fixture(scope="module")
def trained(tiny_store, tmp_path_factory):
    """A finished one-epoch run on the tiny store (copied by each test that changes it)."""
    root = tmp_path_factory.mktemp("trained")
    p = _train(root / "run", f"data.store={tiny_store}", *ARGS, root=root)
    assert p.returncode == 0, p.stderr[-3000:]
    return root / "run"


@pytest.fixture
def run(trained, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def _other_store(path, n_features=None, seed=TINY.seed):
    """The tiny store's layout with its first `n_features` features, or another seed's rows."""
    from dataclasses import replace

    from jsmp.data import schema
    from jsmp.data.synthetic import iter_days, synth_source
    from jsmp.store.store import StoreWriter

    spec = replace(TINY, seed=seed)
    n = n_features or len(schema.FEATURE_COLUMNS)
    side = {**schema.SIDE_DTYPES, "ideal": "int8"}
    with StoreWriter(path, schema.FEATURE_COLUMNS[:n], side, synth_source(spec), shard_rows=500) as w:
        for day in iter_days(spec):
            w.append(day["x"][:, :n], day)
        return w.close()


def test_fresh_run_into_a_used_run_dir_is_refused_and_touches_nothing(run, tiny_store, tmp_path):
    before = _tree(run)
    assert ".hydra/config.yaml" in before and "metrics.json" in before
    err = _one_error(_train(run, f"data.store={tiny_store}", *ARGS, "seed=7", root=tmp_path))
    assert f"hydra.run.dir={run} already holds a run (config.yaml, metrics.json" in err and "ckpt_path=last" in err
    assert _tree(run) == before  # .hydra/*.yaml and train.log included


def test_resume_that_does_not_match_the_run_is_refused(run, tiny_store, tmp_path):
    before = _tree(run)
    err = _one_error(_train(run, f"data.store={tiny_store}", *ARGS, "ckpt_path=last", "data.fill=zero", root=tmp_path))
    assert err.startswith("error: ckpt_path=last: ") and "data.fill was 'mean', now 'zero'" in err, err
    assert _tree(run) == before


@pytest.mark.parametrize("override,fragment", [
    ("model.hidden=[16,8]", "model.hidden was [118, 142], now [16, 8]"),
    ("data.split.gap_days=2", "data.split was"),
])
def test_resume_check_names_what_changed(run, tiny_store, override, fragment):
    """The same check in-process (train.py runs it in its Hydra callback, as above)."""
    cfg = compose_cfg([f"data.store={tiny_store}", *ARGS, "ckpt_path=last", override])
    with pytest.raises(UserError, match=r"^ckpt_path=last: ") as e:
        check_run_dir(cfg, run)
    assert fragment in str(e.value)


def test_resume_into_a_store_with_fewer_features_names_the_counts(run, tmp_path):
    few = _other_store(tmp_path / "few", n_features=100)
    before = _tree(run)
    err = _one_error(_train(run, f"data.store={few}", *ARGS, "ckpt_path=last", root=tmp_path))
    assert f"the store {few} has 100 features, but this run was trained on 130" in err, err
    assert _tree(run) == before


def test_resume_with_other_fill_values_keeps_preprocess_json(run, tmp_path):
    other = _other_store(tmp_path / "other", seed=TINY.seed + 1)  # same features, other rows
    prep = (run / "preprocess.json").read_bytes()
    err = _one_error(_train(run, f"data.store={other}", *ARGS, "ckpt_path=last", root=tmp_path))
    assert "data does not match" in err and "the fill value of feature_" in err, err
    assert (run / "preprocess.json").read_bytes() == prep
    assert not list(run.glob("config.resume-*"))


def test_ckpt_path_last_without_a_checkpoint(tiny_store, tmp_path):
    run = tmp_path / "none"
    err = _one_error(_train(run, f"data.store={tiny_store}", *ARGS, "ckpt_path=last", root=tmp_path))
    assert f"error: ckpt_path=last: no checkpoint at {run}/checkpoints/last.ckpt;" in err
    assert not run.exists()
    p = _train(tmp_path / "r", f"data.store={tiny_store}", *ARGS, "ckpt_path=/nonexistent/x.ckpt", root=tmp_path)
    assert "ckpt_path=/nonexistent/x.ckpt: no such checkpoint file" in _one_error(p)


def test_truncated_checkpoint_is_one_line(run, tiny_store, tmp_path):
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:3000])
    before = _tree(run)
    err = _one_error(_train(run, f"data.store={tiny_store}", *ARGS, "ckpt_path=last", root=tmp_path))
    assert f"ckpt_path=last: {last}: checksum mismatch (recorded in last.ckpt.sha256)" in err  # (jsmp/checkpoint.py)
    assert _tree(run) == before


def test_edited_preprocess_json_is_one_line(run, tiny_store, tmp_path):
    prep = json.loads((run / "preprocess.json").read_text())
    prep["fill_value"] = prep["fill_value"][:-1]
    (run / "preprocess.json").write_text(json.dumps(prep))
    before = _tree(run)
    err = _one_error(_train(run, f"data.store={tiny_store}", *ARGS, "ckpt_path=last", root=tmp_path))
    assert "preprocess.json: not a valid preprocess.json: fill_value must be a list of one number per feature (130), got 129" in err
    assert _tree(run) == before


def test_resume_keeps_the_first_invocations_files(run, tiny_store, tmp_path):
    first = {k: v for k, v in _tree(run).items() if k in ("config.yaml", "preprocess.json") or k.startswith(".hydra/")}
    p = _train(run, f"data.store={tiny_store}", *ARGS, "ckpt_path=last", "trainer.max_epochs=2", root=tmp_path, user=True)
    assert p.returncode == 0, p.stderr[-3000:]
    after = _tree(run)
    assert {k: after[k] for k in first} == first
    assert "trainer:\n" in (run / "config.resume-1.yaml").read_text()
    assert "max_epochs: 2" in (run / "config.resume-1.yaml").read_text()
    assert (run / ".hydra-resume-1" / "overrides.yaml").is_file()
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["epoch"] == 2 and m["pid"] != os.getpid()
    assert run_status(run) == "completed"
    p = _train(run, f"data.store={tiny_store}", *ARGS, "ckpt_path=last", "trainer.max_epochs=3", root=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (run / "config.resume-2.yaml").is_file() and (run / ".hydra-resume-2").is_dir()


@pytest.mark.parametrize("written", ["before sample_weight was recorded", "as version 1"])
def test_a_run_recorded_by_earlier_jsmp_resumes(run, tiny_store, tmp_path, written):
    """preprocess.json files of earlier runs (no `sample_weight`; version 1: no version, targets, task either) still
    let the run resume: the loss weight is checked against config.yaml's data.sample_weight, not the input rules."""
    prep = json.loads((run / "preprocess.json").read_text())
    del prep["sample_weight"]
    if written == "as version 1":
        prep = {k: prep[k] for k in ("features", "fill", "fill_value", "window")}
    (run / "preprocess.json").write_text(recorded := json.dumps(prep))
    p = _train(run, f"data.store={tiny_store}", *ARGS, "ckpt_path=last", "trainer.max_epochs=2", root=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (run / "preprocess.json").read_text() == recorded and json.loads((run / "metrics.json").read_text())["epoch"] == 2


def test_max_epochs_must_be_a_positive_integer(tiny_store, tmp_path):
    err = _one_error(_train(tmp_path / "r", f"data.store={tiny_store}", "trainer.max_epochs=abc", root=tmp_path))
    assert err == "error: trainer.max_epochs must be an integer >= 1, got 'abc'"
    assert not (tmp_path / "r" / "config.yaml").exists() and not (tmp_path / "r" / "metrics.json").exists()
    for value, shown in [("0", "0"), ("-5", "-5"), ("1.5", "1.5")]:
        with pytest.raises(UserError, match=rf"^trainer.max_epochs must be an integer >= 1, got {re.escape(shown)}$"):
            check_trainer(compose_cfg([f"trainer.max_epochs={value}"]).trainer)
    check_trainer(compose_cfg(["trainer.max_epochs=3"]).trainer)


def test_trainer_constructor_errors_are_one_line(tiny_store, tmp_path):
    err = _one_error(_train(tmp_path / "r", f"data.store={tiny_store}", "trainer.devices=abc", root=tmp_path))
    assert err.startswith("error: trainer: ") and "devices" in err


def test_a_refused_invocation_does_not_block_the_run_dir(tiny_store, tmp_path):
    run = tmp_path / "r"
    _one_error(_train(run, f"data.store={tiny_store}", "data.frac=0", root=tmp_path))  # writes .hydra/ and the log only
    p = _train(run, f"data.store={tiny_store}", "trainer.fast_dev_run=true", root=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]


# -- the reader of metrics.json --------------------------------------------------------------
def _metrics(run, **kw):
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").write_text(json.dumps({"status": "running", **writer(), **kw}))


def test_run_status_tells_a_killed_run(tmp_path):
    assert run_status(tmp_path / "nothing") is None
    _metrics(tmp_path / "alive")
    assert run_status(tmp_path / "alive") == "running"  # this process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _metrics(tmp_path / "dead", pid=dead.pid, pid_start=None)
    assert run_status(tmp_path / "dead") == "killed"
    _metrics(tmp_path / "recycled", pid_start=-1)  # our pid, but another process's start time
    assert run_status(tmp_path / "recycled") == "killed"
    _metrics(tmp_path / "elsewhere", pid=dead.pid, host=socket.gethostname() + "-other")
    assert run_status(tmp_path / "elsewhere") == "running"  # cannot tell from here
    _metrics(tmp_path / "done", pid=dead.pid, status="completed")
    assert run_status(tmp_path / "done") == "completed"


# -- preprocess.json edited by hand ----------------------------------------------------------
GOOD = {"version": 2, "features": ["a", "b"], "fill": "mean", "fill_value": [0.5, 1], "window": None, "targets": ["resp"],
        "task": "action", "ffill": [], "lag_features": []}


@pytest.mark.parametrize("change,fragment", [
    ({"fill_value": [0.5, float("nan")]}, "fill_value of b must be a finite number, got nan"),
    ({"fill_value": [0.5, "1"]}, "fill_value of b must be a finite number, got '1'"),
    ({"fill_value": [0.5]}, "one number per feature (2), got 1"),
    ({"fill_value": 3}, "one number per feature (2), got int"),
    ({"fill": "median"}, "fill must be one of ['mean', 'ffill', 'zero'], got 'median'"),
    ({"features": "ab"}, "features must be a non-empty list of column names"),
    ({"features": ["a", "a"]}, "features has duplicate names"),
    ({"extra": 1}, "unknown key(s) ['extra']"),
    ({"window": {"length": 0, "cross_days": True}}, "window must be null or"),
    ({"window": {"length": 4}}, "window must be null or"),
])
def test_preprocess_load_rejects_edits(tmp_path, change, fragment):
    path = tmp_path / "preprocess.json"
    path.write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(UserError) as e:
        InputSpec.load(path)
    assert str(e.value).startswith(f"{path}: not a valid preprocess.json") and fragment in str(e.value)


def test_preprocess_load_rejects_missing_keys_and_non_json(tmp_path):
    path = tmp_path / "preprocess.json"
    path.write_text(json.dumps({"version": 2, "features": ["a"]}))
    with pytest.raises(UserError, match=r"missing key\(s\) \['ffill', 'fill', 'fill_value', 'lag_features', 'targets', 'task'\]"):
        InputSpec.load(path)
    for text in ("[1, 2]", "{not json"):
        path.write_text(text)
        with pytest.raises(UserError, match="not a valid preprocess.json"):
            InputSpec.load(path)
    path.write_text(json.dumps(GOOD))
    assert InputSpec.load(path).fill_value == [0.5, 1.0]


def test_resume_on_a_store_with_another_feature_limit_is_one_line(run, tiny_store, tmp_path):
    prep = json.loads((run / "preprocess.json").read_text())
    (run / "preprocess.json").write_text(recorded := json.dumps({**prep, "feature_limit": 1e7}))  # a store ingested with 1e7
    err = _one_error(_train(run, f"data.store={tiny_store}", *ARGS, "ckpt_path=last", root=tmp_path))
    assert "data does not match" in err and "feature_limit 1e+07, group None then; 1e+06, None now" in err, err
    assert (run / "preprocess.json").read_text() == recorded
