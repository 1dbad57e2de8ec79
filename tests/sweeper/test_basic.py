"""`-m` multiruns (hydra/sweeper: jsmp_basic, hydra_plugins/jsmp_optuna_sweeper/basic.py): failed jobs
end the multirun in one `error:` line and exit 2, run in-process as `train.py -m ...` runs them."""

from __future__ import annotations

import errno
import json

import pytest

from jsmp.run.cli import train_main

QUIET = ["logger=none", "callbacks=none", "+trainer.enable_progress_bar=false", "data.batch_size=128"]


def multirun(store, tmp_path, monkeypatch, capsys, *overrides) -> str:
    """`train.py -m OVERRIDES` on `store`, sweep dir tmp_path/multirun: the stderr line of its exit 2."""
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    with pytest.raises(SystemExit) as e:
        train_main(["-m", f"data.store={store}", *QUIET, f"hydra.sweep.dir={tmp_path}/multirun", *overrides], root=tmp_path)
    assert e.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("error", "Error", "Traceback"))]
    assert len(errors) == 1, errors
    return errors[0]


def test_a_user_error_in_a_job_is_one_line_after_the_other_jobs(tiny_store, tmp_path, monkeypatch, capsys):
    line = multirun(tiny_store, tmp_path, monkeypatch, capsys, "model.optimizer.lr=-1,0.001", "trainer.max_epochs=1")
    (failed,), (done,) = (list((tmp_path / "multirun").glob(f"{n}_*model.optimizer.lr={lr},*")) for n, lr in ((0, -1), (1, 0.001)))
    assert line == (f"error: 1 of 2 jobs failed. Job 0 failed: UserError: model.optimizer.lr must be > 0, got -1 "
                    f"(run dir {failed}, log {failed / 'train.log'})")
    assert json.loads((done / "metrics.json").read_text())["status"] == "completed"  # the batch's other job ran
    log = (failed / "train.log").read_text()
    assert "job 0 failed:\nTraceback" in log and log.rstrip().endswith("UserError: model.optimizer.lr must be > 0, got -1")


def test_a_diverged_job_stops_the_multirun_after_its_batch(tiny_store, tmp_path, monkeypatch, capsys):
    line = multirun(tiny_store, tmp_path, monkeypatch, capsys, "model.optimizer.lr=10,0.001", "trainer.max_epochs=3",
                    "hydra.sweeper.max_batch_size=1")
    (run,) = (tmp_path / "multirun").glob("0_*model.optimizer.lr=10,*")
    assert line.startswith("error: 1 of 2 jobs failed. Job 0 failed: DivergedError: training diverged at epoch 0")
    assert line.endswith(f"(run dir {run}, log {run / 'train.log'}); the multirun stops before its other 1 job")
    assert sorted(p.name for p in (tmp_path / "multirun").iterdir() if p.is_dir()) == [run.name]  # job 1 never ran


def test_a_launcher_that_raises_is_one_line_naming_the_jobs(tmp_path):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from hydra_plugins.jsmp_optuna_sweeper import errors
    from hydra_plugins.jsmp_optuna_sweeper.basic import _StopAfterFailedBatch

    submitit = pytest.importorskip("submitit")
    died = submitit.core.utils.FailedJobError(  # as submitit words a job that raised
        "Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nMemoryError: out of memory\n\n----------------------\n'
        "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n  - /s/1_0_log.err\n  - /s/1_0_log.out")

    class Launcher:
        def launch(self, job_overrides, initial_job_idx):
            raise died

    sweeper = SimpleNamespace(n_jobs=lambda: 5, config=OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    with pytest.raises(errors.SweepError) as e:
        _StopAfterFailedBatch(Launcher(), sweeper).launch([["a=1"], ["a=2"]], initial_job_idx=2)
    assert str(e.value) == ("the launcher (Launcher) failed running jobs 2-3 of 5: MemoryError: out of memory (submitit job "
                            "log /s/1_0_log.err); the multirun stops before its other 1 job")


@pytest.mark.parametrize("err,line", [
    (ValueError("a\n  b"), "ValueError: a b"),
    (OSError(errno.ENOSPC, "No space left on device", "/r/.metrics.json.tmp-12-0a1b2c3d"),
     "disk full writing /r/metrics.json (No space left on device): free space there, or choose another hydra.run.dir "
     "(hydra.sweep.dir for -m) or paths.log_dir"),
])
def test_failure_line(err, line):
    from hydra_plugins.jsmp_optuna_sweeper.jobs import failure_line

    assert failure_line(err) == line


def test_failure_line_of_a_submitit_job_that_never_finished():
    from hydra_plugins.jsmp_optuna_sweeper.jobs import failure_line

    submitit = pytest.importorskip("submitit")
    killed = submitit.core.utils.UncompletedJobError(  # as submitit words it, with the job's stderr after
        "Job 12_0 (task: 0) with path /s/12_0_result.pkl\nhas not produced any output (state: OUT_OF_MEMORY)\n"
        "Error stream produced:\n----------------------------------------\nslurmstepd: error: Detected 1 oom_kill event")
    assert failure_line(killed) == ("Job 12_0 (task: 0) with path /s/12_0_result.pkl has not produced any output "
                                    "(state: OUT_OF_MEMORY)")


def test_a_full_disk_raised_while_handling_another_error_is_found():
    from hydra_plugins.jsmp_optuna_sweeper.jobs import disk_full

    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")  # no file named
        except OSError:
            raise RuntimeError("teardown failed") from None  # (from None: still its __context__)
    except RuntimeError as e:
        assert disk_full(e, "/runs/r") == ("disk full writing the run dir /runs/r (Disk quota exceeded): free space there, "
                                           "or choose another hydra.run.dir (hydra.sweep.dir for -m) or paths.log_dir")
    assert disk_full(OSError(errno.EACCES, "Permission denied", "/x")) is None


def test_train_m_with_a_failing_job_exits_2_with_one_line(tiny_store, tmp_path):
    from conftest import run_cli

    p = run_cli(["train.py", "-m", f"data.store={tiny_store}", "model.optimizer.lr=-1,0.001", "trainer.max_epochs=1",
                 "logger=none", f"hydra.sweep.dir={tmp_path}/multirun"], env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 2, p.stderr[-3000:]
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("error: 1 of 2 jobs failed. Job 0 failed: UserError: model.optimizer.lr must be > 0, got -1 (run dir ")


def test_the_plugin_scan_leaves_one_sweep_error_class(capsys):
    """Hydra's plugin scan executes the plugin's modules again in their namespaces (hydra/core/plugins.py):
    a SweepError raised by a module imported before it is still the one the entry points catch."""
    import importlib.util

    from hydra_plugins.jsmp_optuna_sweeper import errors, space

    raised_by_space = space.SweepError
    importlib.util.find_spec(errors.__name__).loader.exec_module(errors)  # what the scan does
    assert errors.SweepError is raised_by_space

    @errors.exit_on_sweep_error
    def entry():
        raise raised_by_space("hydra.sweeper.n_trials=-1: expected an integer >= 0")

    with pytest.raises(SystemExit) as e:
        entry()
    assert e.value.code == 2 and capsys.readouterr().err == "error: hydra.sweeper.n_trials=-1: expected an integer >= 0\n"
