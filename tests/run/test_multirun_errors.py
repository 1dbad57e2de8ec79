"""Errors under `-m`, as a user meets them (`python train.py -m ...`): one `error:` line on stderr and exit 2,
with the basic sweeper (jsmp_basic) and the Optuna sweeper alike; a failed job's traceback is in its log."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, train_in_process

QUIET = ["logger=none", "callbacks=none", "+trainer.enable_progress_bar=false", "data.batch_size=256"]
DIVERGES = ["model.optimizer.lr=1e6", "diverge_factor=1.0001", "trainer.max_epochs=2"]  # (the loss passes 1.0001x its first)


def error_line(p) -> str:
    """The one line of a multirun that exits 2: its last stderr line, the only `error`/traceback line there."""
    assert p.returncode == 2, p.stderr[-3000:]
    lines = p.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith(("error", "Error", "Traceback"))] == lines[-1:], lines
    return lines[-1]


def test_a_swept_value_that_does_not_compose_is_one_line_before_any_job(tiny_store, tmp_path):
    sweep = tmp_path / "multirun"
    p = run_cli(["train.py", "-m", f"data.store={tiny_store}", "data.fold=0,x", f"hydra.sweep.dir={sweep}"],
                env={"JSMP_ROOT": str(tmp_path)})
    assert p.stderr.splitlines() == [  # (Hydra's own: its exception's lines, the search path, exit 1)
        "error: job 1 of 2 does not compose: Error merging override data.fold=x: Value 'x' of type 'str' could not be "
        "converted to Integer; the multirun runs none of its 2 jobs"]
    assert p.returncode == 2 and [f.name for f in sweep.iterdir()] == ["multirun.yaml"]


def test_a_later_batch_that_does_not_compose_stops_after_the_jobs_that_ran(tiny_store, tmp_path):
    sweep = tmp_path / "multirun"
    p = train_in_process(["-m", f"data.store={tiny_store}", *QUIET, "trainer.max_epochs=1", "data.batch_size=256,x",
                          "hydra.sweeper.max_batch_size=1", f"hydra.sweep.dir={sweep}"], {"JSMP_ROOT": str(tmp_path)})
    assert error_line(p) == ("error: job 1 of 2 does not compose: Error merging override data.batch_size=x: Value 'x' of type "
                             "'str' could not be converted to Integer; the multirun stops before its other 1 job")
    (done,) = sweep.glob("0_mlp*")
    assert json.loads((done / "metrics.json").read_text())["status"] == "completed"


def test_a_diverged_trial_under_the_optuna_sweeper_is_one_line(tiny_store, tmp_path):
    sweep = tmp_path / "sweep"  # (the official plugin's name: jsmp's sweeper's class)
    p = run_cli(["train.py", "-m", "hydra/sweeper=optuna", f"data.store={tiny_store}", *QUIET, *DIVERGES,
                 "model.dropout=choice(0.0)", "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={sweep}"],
                env={"JSMP_ROOT": str(tmp_path)})
    (trial,) = sweep.glob("0_mlp*")
    line = error_line(p)
    assert line.startswith("error: hydra.sweeper.max_failure_rate=0.0: 1 of n_trials=1 trials failed, more than it allows; "
                           "the sweep stops. Trial 0 failed: DivergedError: training diverged at epoch ")
    assert f"(run dir {trial}, log {trial / 'train.log'})" in line
    log = (trial / "train.log").read_text()
    assert "trial 0 failed:\nTraceback" in log and "DivergedError: training diverged" in log.split("trial 0 failed:")[1]


def test_a_trial_whose_config_does_not_compose_says_why(tiny_store, tmp_path):
    p = train_in_process(["hparams_search=mlp", f"data.store={tiny_store}", *QUIET, "data.fold=choice(x)",
                          "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp_path}/sweep"], {"JSMP_ROOT": str(tmp_path)})
    assert error_line(p).startswith(
        "error: hydra.sweeper.max_failure_rate=0.2: 1 of n_trials=1 trials failed, more than it allows; the sweep stops. "
        "Trial 0 failed: ConfigCompositionException: Error merging override data.fold=x: Value 'x' of type 'str' could "
        "not be converted to Integer.")


@pytest.mark.slow
def test_a_failing_submitit_trial_under_the_optuna_sweeper_is_one_line(tiny_store, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    p = run_cli(["train.py", "-m", "hydra/sweeper=optuna", "hydra/launcher=submitit_local", f"data.store={tiny_store}",
                 *QUIET, "trainer.max_epochs=1", "model.optimizer.lr=choice(-1)", "hydra.sweeper.n_trials=1",
                 f"hydra.sweep.dir={sweep}"], env={"JSMP_ROOT": str(tmp_path)})
    (trial,) = sweep.glob("0_mlp*")
    assert error_line(p) == (
        "error: hydra.sweeper.max_failure_rate=0.0: 1 of n_trials=1 trials failed, more than it allows; the sweep stops. "
        f"Trial 0 failed: UserError: model.optimizer.lr must be > 0, got -1 (run dir {trial}, log {trial / 'train.log'}). "
        "To go on past failed trials, rerun with a higher hydra.sweeper.max_failure_rate (the study resumes)")
    assert "UserError: model.optimizer.lr must be > 0, got -1" in (trial / "train.log").read_text()


def test_a_multirun_into_a_sweep_dir_that_holds_its_runs_names_the_sweep_dir(tiny_store, tmp_path):
    sweep = tmp_path / "multirun"
    args = ["-m", f"data.store={tiny_store}", *QUIET, "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"]
    assert train_in_process(args, {"JSMP_ROOT": str(tmp_path)}).returncode == 0
    p = train_in_process(args, {"JSMP_ROOT": str(tmp_path)})
    (job,) = [d for d in sweep.iterdir() if d.is_dir()]
    assert error_line(p).startswith(
        f"error: 1 of 1 jobs failed. Job 0 failed: UserError: the job dir {job} already holds a run (")
    assert "choose another hydra.sweep.dir, or continue this one with ckpt_path=last" in error_line(p)
