"""The jsmp_optuna sweeper (hydra_plugins/jsmp_optuna_sweeper) and tune.py: run in this process (conftest
train_in_process; the trials run in it too, as Hydra's basic launcher runs them), and as a user runs them where
a test needs processes of their own (a killed sweep, two workers, a hidden driver) or the command line's error."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from conftest import ROOT, compose_cfg, run_cli, train_in_process
from hydra_plugins.jsmp_optuna_sweeper._loop import StudyLoop, _counted
from hydra_plugins.jsmp_optuna_sweeper.space import parse_space

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


# the MLP search's four params, narrowed to optimizers and learning rates that never diverge on the
# tiny store: whatever the sampler draws, a trial completes (a diverged one would fail the sweep)
STABLE_SPACE = ("model/optimizer=choice(adam, sgd)", "model.optimizer.lr=tag(log, interval(1e-4, 2e-3))")
# a point of that space: trial params a test plants in a study itself
STABLE_PARAMS = {"model.hidden.0": 110, "model.hidden.1": 20, "model/optimizer": "adam", "model.optimizer.lr": 1e-3}


def tune_args(store, tmp_path, n_trials=3, *extra):
    """A tiny MLP search: 2 epochs on the tiny store, no logger, sweep dir under tmp_path."""
    return ["tune.py", "model=mlp", f"data.store={store}", "data.batch_size=256", "data.split.gap_days=1",
            "trainer.max_epochs=2", "logger=none", "callbacks=none", "+trainer.enable_progress_bar=false",
            *STABLE_SPACE, f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweep.dir={tmp_path}/sweep", *extra]


def tune(store, tmp_path, n_trials=3, *extra):
    """`python tune.py` with tune_args, in this process."""
    return train_in_process(tune_args(store, tmp_path, n_trials, *extra)[1:], {"JSMP_ROOT": str(tmp_path)}, "tune.py")


def trials(tmp_path, name="mlp", db=None):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db or tmp_path / 'sweep' / 'optuna.db'}")
    return study.get_trials()


def test_grammar_gives_optuna_distributions():
    searched, fixed, _ = parse_space([
        "a=interval(0.1, 1)", "b=int(interval(1, 5))", "c=tag(log, interval(1e-5, 1e-1))",
        "d=tag(log, int(interval(8, 256)))", "e=range(10, 50, 10)", "f=range(0.1, 0.5, 0.1)",
        "g=choice(adam, sgd, 3)", "h=7", "+i=[1,2]", "b=2",
    ])
    assert searched == {
        "a": FloatDistribution(0.1, 1.0),
        "c": FloatDistribution(1e-5, 0.1, log=True),
        "d": IntDistribution(8, 256, log=True),
        "e": IntDistribution(10, 50, step=10),  # range() includes its stop, as the official plugin's
        "f": FloatDistribution(0.1, 0.5, step=0.1),
        "g": CategoricalDistribution(["adam", "sgd", 3]),
    }
    assert fixed == {"h": "7", "+i": "[1,2]", "b": "2"}  # a later fixed value replaces a sweep
    # range(a, b, step): a, a + step, ... up to b included when reached (the official plugin's meaning)
    searched, _, _ = parse_space(["a=range(1, 10, 4)", "b=range(3, 3)", "c=range(1, 5, 2)", "d=range(0.0, 0.3, 0.1)"])
    assert searched == {"a": IntDistribution(1, 9, step=4), "b": IntDistribution(3, 3), "c": IntDistribution(1, 5, step=2),
                        "d": FloatDistribution(0.0, 0.3, step=0.1)}


def test_mlp_space_is_the_seeds():
    cfg = compose_cfg(["hparams_search=mlp"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and cfg.optimized_metric == "val/utility_best"
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    searched, *_ = parse_space([f"{k}={v}" for k, v in sweeper.params.items()])
    assert searched["model.hidden.0"] == IntDistribution(100, 200)
    assert searched["model.hidden.1"] == IntDistribution(10, 200)
    assert searched["model/optimizer"] == CategoricalDistribution(["adam", "rmsprop", "sgd"])
    assert searched["model.optimizer.lr"] == FloatDistribution(1e-5, 1e-1, log=True)
    assert isinstance(searched["trainer.max_epochs"], IntDistribution)
    assert str(cfg.hydra.mode).endswith("MULTIRUN")  # `train.py hparams_search=mlp` sweeps without -m
    assert cfg.hydra.sweep.dir.endswith("/train/sweeps/mlp")  # no timestamp: rerunning resumes


def test_lstm_space_composes():
    cfg = compose_cfg(["hparams_search=lstm"])
    searched, *_ = parse_space([f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()])
    assert {"model.hidden", "model.layers", "data.window.length", "model.optimizer.lr", "model.dropout"} <= set(searched)
    assert all(OmegaConf.select(cfg, key) is not None for key in searched)  # keys the configs have


def test_tune_end_to_end_writes_best_and_replays(tiny_store, tmp_path):
    p = tune(tiny_store, tmp_path, 3)
    assert p.returncode == 0, p.stderr[-3000:]
    done = trials(tmp_path)
    assert [t.state for t in done] == [TrialState.COMPLETE] * 3
    best = max(done, key=lambda t: t.value)
    assert f"best value: {best.value}" in p.stdout
    sweep = tmp_path / "sweep"
    written = yaml.safe_load((sweep / "best.yaml").read_text())
    assert written["trial"] == best.number and written["value"] == best.value
    assert set(written["params"]) == {"model.hidden.0", "model.hidden.1", "model/optimizer", "model.optimizer.lr"}
    assert (sweep / "optimization_history.png").stat().st_size > 0
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text()) == {
        "name": "optuna", "best_params": best.params, "best_value": best.value}
    # importances from 3 trials would be noise: none, and the log says why
    assert not (sweep / "param_importances.png").exists()
    assert "no param_importances.png: 3 complete trials, fewer than the 10 importances need" in p.stdout + p.stderr
    # each epoch reported the objective so far to the trial (pruning's input): the best epoch's
    # val/utility, never decreasing, ending at the trial's value
    assert all(sorted(t.intermediate_values) == [0, 1] for t in done)
    assert all(t.intermediate_values[0] <= t.intermediate_values[1] == t.value for t in done)

    # the best trial replays through train.py with its exact params
    p = train_in_process([f"+best={sweep / 'best.yaml'}", "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}/replay"],
                         {"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    cfg = yaml.safe_load((tmp_path / "replay" / "config.yaml").read_text())
    assert cfg["model"]["hidden"] == [written["params"]["model.hidden.0"], written["params"]["model.hidden.1"]]
    assert cfg["model"]["optimizer"]["lr"] == written["params"]["model.optimizer.lr"]


def test_failing_trials_are_recorded_and_the_sweep_goes_on(tiny_store, tmp_path):
    # a grid over lr: the negative one raises a UserError in its job
    grid = ["hydra/sweeper/sampler=grid", "model.hidden.0=110", "model.hidden.1=20", "model/optimizer=adam",
            "model.optimizer.lr=choice(0.001, -1.0, 0.002)", "hydra.sweeper.max_failure_rate=0.5"]
    p = tune(tiny_store, tmp_path, 3, *grid)
    assert p.returncode == 0, p.stderr[-3000:]
    by_lr = {t.params["model.optimizer.lr"]: t.state for t in trials(tmp_path)}
    assert by_lr == {0.001: TrialState.COMPLETE, -1.0: TrialState.FAIL, 0.002: TrialState.COMPLETE}
    assert "model.optimizer.lr must be > 0" in p.stdout + p.stderr

    # with no failures allowed, the same sweep in a new study stops at the failed trial with a one-line error
    strict = tmp_path / "strict"
    p = tune(tiny_store, strict, 3, *grid, "hydra.sweeper.max_failure_rate=0", "hydra.sweeper.study_name=strict")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    (failed,) = [t for t in trials(strict, name="strict") if t.state == TrialState.FAIL]
    assert failed.params["model.optimizer.lr"] == -1.0
    run_dir = strict / "sweep" / f"trial-{failed.number}"
    assert p.stderr.strip().splitlines()[-1] == (
        "error: hydra.sweeper.max_failure_rate=0.0: 1 of n_trials=3 trials failed, more than it allows; the sweep stops. "
        f"Trial {failed.number} failed: {failed.user_attrs['error']} (run dir {run_dir}, log {run_dir / 'train.log'}). "
        "To go on past failed trials, rerun with a higher hydra.sweeper.max_failure_rate (the study resumes)")
    assert failed.user_attrs["error"].startswith("UserError: model.optimizer.lr must be > 0")
    assert "model.optimizer.lr must be > 0" in (run_dir / "train.log").read_text()


def test_pruned_trials_are_recorded(tiny_store, tmp_path):
    # a pruner that prunes every trial after its 2nd epoch (step 1)
    pruner = "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1e9,n_warmup_steps:1}"
    p = tune(tiny_store, tmp_path, 2, "trainer.max_epochs=5", "hydra.sweeper.pruner=null", pruner)
    assert p.returncode == 0, p.stderr[-3000:]
    done = trials(tmp_path)
    assert [t.state for t in done] == [TrialState.PRUNED] * 2
    assert all(sorted(t.intermediate_values) == [0, 1] for t in done)  # stopped after epoch 1 of 5
    assert not (tmp_path / "sweep" / "best.yaml").exists()


@pytest.mark.parametrize("outcome,state", [
    ((JobStatus.COMPLETED, 1.5), TrialState.COMPLETE),
    ((JobStatus.COMPLETED, float("nan")), TrialState.FAIL),
    ((JobStatus.COMPLETED, "oops"), TrialState.FAIL),
    ((JobStatus.FAILED, RuntimeError("boom")), TrialState.FAIL),
    ((JobStatus.FAILED, optuna.TrialPruned("epoch 3")), TrialState.PRUNED),
])
def test_job_outcome_to_trial_state(outcome, state):
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    status, value = outcome
    StudyLoop._tell(SimpleNamespace(directions=["maximize"]), study, trial, JobReturn(status=status, _return_value=value))
    assert study.trials[0].state == state


@pytest.mark.slow
def test_killed_sweep_resumes_without_losing_or_duplicating_trials(tiny_store, tmp_path):
    args = tune_args(tiny_store, tmp_path, 6, "trainer.max_epochs=4")
    env = {**os.environ, "JSMP_ROOT": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "sweep" / "optuna.db"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill it in the middle of its 3rd trial
        time.sleep(0.5)
        if db.exists():
            try:
                states = [t.state for t in trials(tmp_path)]
            except Exception:  # noqa: BLE001, S112  (the study is being created)
                continue
            if states.count(TrialState.COMPLETE) >= 2 and TrialState.RUNNING in states:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = trials(tmp_path)
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1 and len(before) < 6

    p = tune(tiny_store, tmp_path, 6, "trainer.max_epochs=4")
    assert p.returncode == 0, p.stderr[-3000:]
    after = trials(tmp_path)
    counted = _counted(after)
    assert len(counted) == 6 and all(t.state in FINISHED for t in counted)
    assert len({tuple(t.params.items()) for t in counted}) == 6  # no config proposed twice
    # the trials finished before the kill are kept as they were, the killed one is run again
    for t in before:
        if t.state == TrialState.COMPLETE:
            assert after[t.number].value == t.value
    retry = [t for t in counted if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed[0].number]
    assert len(retry) == 1 and retry[0].params == killed[0].params
    assert after[killed[0].number].state == TrialState.FAIL
    metrics = tmp_path / "sweep" / f"trial-{killed[0].number}" / "metrics.json"
    if metrics.exists():  # (killed after its first epoch) its run dir says so, not "running"
        assert json.loads(metrics.read_text())["status"] == "killed"

    # rerunning a finished study runs nothing more
    p = tune(tiny_store, tmp_path, 6, "trainer.max_epochs=4")
    assert p.returncode == 0 and len(trials(tmp_path)) == len(after)


@pytest.mark.slow
def test_two_workers_on_one_storage_finish_exactly_n_trials(tiny_store, tmp_path):
    db = tmp_path / "shared.db"
    env = {**os.environ, "JSMP_ROOT": str(tmp_path)}
    procs = [
        subprocess.Popen([sys.executable, *tune_args(tiny_store, tmp_path / f"w{i}", 7, "trainer.max_epochs=4",
                                                     f"hydra.sweeper.storage=sqlite:///{db}",
                                                     f"hydra.sweeper.sampler.seed={i}")],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errs]
    done = trials(tmp_path, db=db)
    counted = _counted(done)
    assert len(counted) == 7 and all(t.state in FINISHED for t in counted)
    workers = {t.user_attrs["worker"] for t in counted}
    assert len(workers) == 2  # both took part
    assert sum(len(list((tmp_path / f"w{i}" / "sweep").glob("trial-*"))) for i in range(2)) == 7  # jobs run


def test_cv_objective_trials_return_the_fold_mean_and_prune_on_the_first_fold(tiny_store, tmp_path):
    cv = ["cv_objective=true", "data.cv.folds=2", "data.cv.gap_days=2"]
    p = tune(tiny_store, tmp_path, 1, *cv)
    assert p.returncode == 0, p.stderr[-3000:]
    (done,) = trials(tmp_path)
    folds = [yaml.safe_load((tmp_path / "sweep" / "trial-0" / f"fold-{k}" / "metrics.json").read_text()) for k in (0, 1)]
    assert done.value == pytest.approx(sum(f["val/utility_best"] for f in folds) / 2)
    # a pruner that stops every trial after its first fold's 2nd epoch: the 2nd fold never runs
    pruner = "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1e9,n_warmup_steps:1}"
    p = tune(tiny_store, tmp_path, 2, *cv, "trainer.max_epochs=3", "hydra.sweeper.pruner=null", pruner)
    assert p.returncode == 0, p.stderr[-3000:]
    assert trials(tmp_path)[1].state == TrialState.PRUNED
    assert (tmp_path / "sweep" / "trial-1" / "fold-0").is_dir() and not (tmp_path / "sweep" / "trial-1" / "fold-1").exists()


def one_error_line(p) -> str:
    """The process failed as a user mistake: exit 2, one `error: ...` line on stderr, no traceback."""
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-3000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("arg,expected", [
    ("hydra.sweeper.storage=nonsense", ("error: hydra.sweeper.storage=nonsense: not a database URL (Could not parse "
     "SQLAlchemy URL from given URL string); expected e.g. sqlite:///PATH/optuna.db or postgresql://USER@HOST[:PORT]/DB")),
    ("hydra.sweeper.storage=mysql://u@h/db", ("error: hydra.sweeper.storage=mysql://u@h/db: the mysql driver is not "
     "installed (No module named 'MySQLdb'); install the Python driver SQLAlchemy uses for mysql")),
    ("hydra.sweeper.storage=foo://h/db", "error: hydra.sweeper.storage=foo://h/db: unknown database kind 'foo'"),
    ("model.optimizer.lr=tag(log, interval(0, 1))", ("error: model.optimizer.lr=tag(log, interval(0, 1)): a log scale (tag(log, ...)) "
     "needs a low bound > 0, got (low=0.0, high=1.0)")),
    ("model.optimizer.lr='interval(1)'", ("error: model.optimizer.lr='interval(1)': a quoted string, not a search space; write it "
     "without the quotes, e.g. model.optimizer.lr=interval(LOW, HIGH)")),
    ("model.optimizer.lr=interval(1)", ("error: model.optimizer.lr=interval(1): TypeError while evaluating 'interval(1)': missing a "
     "required argument: 'end' (expected e.g. interval(LOW, HIGH)")),
    ("model.optimizer.lr=range(5, 1)", "error: model.optimizer.lr=range(5, 1): range(5, 1, 1) is empty"),
    ("hydra.sweeper.storage=sqlite:///x.db?password=SECRETPW", ("error: hydra.sweeper.storage=sqlite:///x.db?password=*** "
     "mismatched input '=' expecting <EOF> (quote a value holding = ? & or spaces for Hydra")),
    ("hydra.sweeper.max_failure_rate=2", "error: hydra.sweeper.max_failure_rate=2.0: expected a number in [0, 1]"),
])
def test_user_mistakes_are_one_line_before_anything_runs(arg, expected, tiny_store, tmp_path):
    line = one_error_line(tune(tiny_store, tmp_path, 2, arg))
    assert line.startswith(expected), line
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("value,expected", [
    ("tag(log, interval(0, 1))", "error: hydra.sweeper.params.model.optimizer.lr=tag(log, interval(0, 1)): a log scale"),
    ('"\'interval(1e-4, 1e-2)\'"', ("error: hydra.sweeper.params.model.optimizer.lr='interval(1e-4, 1e-2)': a quoted string, "
     "not a search space; write it without the quotes, e.g. model.optimizer.lr=interval(1e-4, 1e-2)")),
    ("interval(1)", "error: hydra.sweeper.params.model.optimizer.lr=interval(1): TypeError while evaluating 'interval(1)'"),
])
def test_a_bad_search_space_in_yaml_is_one_line(value, expected, tiny_store, tmp_path):
    conf = tmp_path / "myconf" / "hparams_search"
    conf.mkdir(parents=True)
    (conf / "bad.yaml").write_text(f"# @package _global_\ndefaults:\n  - mlp\nhydra:\n  sweeper:\n    params:\n"
                                   f"      model.optimizer.lr: {value}\n")
    p = run_cli(["tune.py", "--config-dir", str(tmp_path / "myconf"), "hparams_search=bad",
                 *tune_args(tiny_store, tmp_path, 2)[1:]], env={"JSMP_ROOT": str(tmp_path)})
    assert one_error_line(p).startswith(expected)
    assert not (tmp_path / "sweep").exists()


def test_a_postgres_url_without_its_driver_names_the_extra(tiny_store, tmp_path):
    fake = tmp_path / "no-psycopg" / "psycopg"  # hides an installed psycopg, as on a fresh install
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    p = run_cli(tune_args(tiny_store, tmp_path, 2, "hydra.sweeper.storage=postgresql://jsmp@dbhost/jsmp"),
                env={"JSMP_ROOT": str(tmp_path), "PYTHONPATH": str(fake.parent)})
    assert one_error_line(p) == ("error: hydra.sweeper.storage=postgresql+psycopg://jsmp@dbhost/jsmp: the postgresql "
                                 "driver is not installed (No module named 'psycopg'); pip install 'jsmp[postgres]'")


def test_an_unreachable_server_is_one_line(tiny_store, tmp_path):
    pytest.importorskip("psycopg", reason="pip install 'jsmp[postgres]'")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://jsmp@127.0.0.1:{port}/jsmp"
    p = tune(tiny_store, tmp_path, 2, f"hydra.sweeper.storage={url}")
    line = one_error_line(p)
    assert line.startswith(f"error: hydra.sweeper.storage: cannot connect to {url} (connection failed: ")
    assert "Connection refused" in line
    assert not (tmp_path / "sweep").exists()


def test_a_trial_whose_worker_died_is_retried_and_its_run_dir_marked_killed(tiny_store, tmp_path):
    # a study whose trial 0 is RUNNING for a worker process of this machine that is gone, and
    # whose run dir has the metrics.json the job was writing when it was killed
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(study_name="mlp", storage=f"sqlite:///{sweep / 'optuna.db'}", direction="maximize")
    params = [f"{k}={v}" for k, v in compose_cfg(["hparams_search=mlp"]).hydra.sweeper.params.items()]
    searched, *_ = parse_space([*params, *tune_args("S", tmp_path)[1:]], n_from_params=len(params))  # the sweep's space
    study.enqueue_trial(STABLE_PARAMS)  # its params fixed: the retry must not depend on a sampler's draw
    trial = study.ask(searched)
    # a pid no process can have (pids stay below pid_max): a pid that was alive would be reused under load
    gone = int(Path("/proc/sys/kernel/pid_max").read_text())
    trial.set_user_attr("worker", f"{socket.gethostname()}:{gone}")
    (sweep / "trial-0").mkdir()
    (sweep / "trial-0" / "metrics.json").write_text(json.dumps({"status": "running", "epoch": 1, "pid": gone}))

    p = tune(tiny_store, tmp_path, 1)
    assert p.returncode == 0, p.stderr[-3000:]
    after = trials(tmp_path)
    assert after[0].state == TrialState.FAIL
    (retry,) = _counted(after)
    assert retry.state == TrialState.COMPLETE and retry.params == after[0].params == STABLE_PARAMS
    assert json.loads((sweep / "trial-0" / "metrics.json").read_text()) == {"status": "killed", "epoch": 1, "pid": gone}
    assert json.loads((sweep / f"trial-{retry.number}" / "metrics.json").read_text())["status"] == "completed"
    assert [p.name for p in (sweep / "trial-0").iterdir()] == ["metrics.json"]  # no temp left behind
