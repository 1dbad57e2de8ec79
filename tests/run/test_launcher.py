"""Multiruns and sweeps as submitit jobs (hydra/launcher=submitit_local: what submitit_slurm does on a
cluster, on this machine; docs/scale-out.md#launchers)."""

import json
from pathlib import Path

import optuna
import pytest

from conftest import run_cli

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
pytestmark = pytest.mark.slow

QUIET = ["logger=none", "callbacks=none", "+trainer.enable_progress_bar=false", "data.batch_size=256"]


def job_runs(sweep_dir: Path) -> list[str]:
    """The run dir each finished submitit job (.submitit/<job id>/, with its result) trained into, from its log."""
    runs = []
    for job in (sweep_dir / ".submitit").iterdir():
        if list(job.glob("*_result.pkl")):
            (log,) = job.glob("*_log.out")
            runs += [line.rsplit(" -> ", 1)[1] for line in log.read_text().splitlines() if "][jsmp.run.training][INFO] - training " in line]
    return sorted(runs)


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))


def test_multirun_folds_run_as_submitit_jobs(tiny_store, tmp_path):
    sweep = tmp_path / "multirun"
    p = run_cli(["train.py", "-m", "hydra/launcher=submitit_local", f"data.store={tiny_store}", "data.fold=0,1",
                 "data.cv.gap_days=1", "trainer.max_epochs=1", *QUIET, f"hydra.sweep.dir={sweep}"],
                env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    runs = run_dirs(sweep)
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    assert [m["status"] for m in metrics] == ["completed", "completed"]
    assert sorted("fold: 0" in (r / "config.yaml").read_text() for r in runs) == [False, True]
    assert job_runs(sweep) == [str(r) for r in runs]  # each fold trained in its own submitit job


def test_sweep_trials_run_as_submitit_jobs(tiny_store, tmp_path):
    sweep = tmp_path / "sweep"
    p = run_cli(["tune.py", "hydra/launcher=submitit_local", "model=mlp", f"data.store={tiny_store}",
                 "data.split.gap_days=1", "trainer.max_epochs=2", *QUIET, "hydra.sweeper.n_trials=2",
                 # optimizers and rates that never diverge here: both trials complete, whatever the sampler draws
                 "model/optimizer=choice(adam, sgd)", "model.optimizer.lr=tag(log, interval(1e-4, 2e-3))",
                 f"hydra.sweep.dir={sweep}"], env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    trials = optuna.load_study(study_name="mlp", storage=f"sqlite:///{sweep / 'optuna.db'}").get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    runs = run_dirs(sweep)
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    assert sorted(m["val/utility_best"] for m in metrics) == pytest.approx(sorted(t.value for t in trials))
    assert job_runs(sweep) == [str(r) for r in runs]  # each trial trained in its own submitit job
    assert (sweep / "best.yaml").is_file()


def test_a_failing_submitit_job_ends_the_multirun_in_one_line(tiny_store, tmp_path):
    sweep = tmp_path / "multirun"
    p = run_cli(["train.py", "-m", "hydra/launcher=submitit_local", f"data.store={tiny_store}", "model.optimizer.lr=-1,0.001",
                 "trainer.max_epochs=1", *QUIET, f"hydra.sweep.dir={sweep}"], env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 2, p.stderr[-3000:]
    (failed,) = sweep.glob("0_*")
    assert p.stderr.strip().splitlines() == [
        f"error: 1 of 2 jobs failed. Job 0 failed: UserError: model.optimizer.lr must be > 0, got -1 "
        f"(run dir {failed}, log {failed / 'train.log'})"]
    (done,) = sweep.glob("1_*")
    assert json.loads((done / "metrics.json").read_text())["status"] == "completed"
