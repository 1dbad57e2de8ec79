"""`hydra/sweeper: jsmp_basic`, jsmp's default sweeper for `-m` (conf/hydra/default.yaml): Hydra's
basic sweeper (every combination of the sweep overrides, run in batches of `max_batch_size`, all
at once by default), except how failed jobs end the multirun.

Hydra's re-raises the first failed job's exception after its batch: a traceback and exit 1,
whatever the job's launcher (basic, submitit). This one writes each failed job's traceback to the
job's log and ends the multirun after that batch with one line and exit 2:

    error: 1 of 4 jobs failed. Job 2 failed: UserError: model.optimizer.lr must be > 0, got -1 (run dir D, log L)

A launcher that raises instead of returning its jobs' results (a submitit job that died: killed,
out of memory) ends it the same way, naming the jobs and why, and so does a job whose config does
not compose (`-m data.fold=0,x`), before its batch runs.

The class is also the package's public entry point for a command line that runs Hydra (jsmp's
`train|tune`, jsmp/run/cli.py): such a program finds it as Hydra does, through Hydra's registries
(the `_target_` of `hydra/sweeper: jsmp_basic` in the ConfigStore, looked up among the plugins
Hydra's scan found), never by importing this package, and calls `check_command_line(argv,
sweeping)` before Hydra runs and `disk_full(err, run_dir)` / `DISK_FULL` to word a full disk as
a failed job is worded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper as HydraBasicSweeper
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from . import errors
from .jobs import DISK_FULL, LOG, composition_line, disk_full, failure_line, job_files, log_traceback, where
from .space import check_overrides


class JsmpBasicSweeper(HydraBasicSweeper):
    """Hydra's BasicSweeper, its failed jobs reported in one line (SweepError, exit 2) after their batch."""

    # the entry point for a program running Hydra (see the module's docstring)
    check_command_line = staticmethod(errors.exit_on_sweep_error(check_overrides))
    """(argv, sweeping=True) -> None: check_overrides (space.py); a mistake prints one `error:` line and exits 2."""
    disk_full = staticmethod(disk_full)
    """(err, run_dir=None) -> the `disk full writing ...` line of a failed job (jobs.py), or None."""
    DISK_FULL = DISK_FULL
    """The errnos of a full disk (ENOSPC, EDQUOT)."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = _StopAfterFailedBatch(self.launcher, self)

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        return errors.exit_on_sweep_error(super().sweep)(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Hydra's check, before a batch runs, that each of its jobs' configs composes; one that
        does not (`-m data.fold=0,x`: a value of the wrong type, a missing group option) is a
        SweepError naming the job and why (Hydra's would print its error in several lines, exit 1)."""
        first = sum(len(b) for b in self.overrides[: self.batch_index - 1])  # (the batch is overrides[batch_index - 1])
        for number, overrides in enumerate(batch, first):
            try:
                super().validate_batch_is_legal([overrides])
            except CompactHydraException as e:
                total = self.n_jobs()
                stop = _not_run(total, first - 1) if first else f"; the multirun runs none of its {total} jobs"
                raise errors.SweepError(f"job {number} of {total} does not compose: {composition_line(e)}{stop}") from None

    def n_jobs(self) -> int:
        """The multirun's jobs, every batch's."""
        return sum(len(batch) for batch in self.overrides or ())


class _StopAfterFailedBatch:
    """The sweeper's launcher; after a batch with failed jobs, a SweepError saying how many and
    why the first failed (Hydra's sweeper would re-raise that job's exception)."""

    def __init__(self, launcher: Launcher, sweeper: JsmpBasicSweeper):
        self.launcher, self.sweeper = launcher, sweeper

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        total, last = self.sweeper.n_jobs(), initial_job_idx + len(job_overrides) - 1
        try:
            rets = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        except Exception as e:  # noqa: BLE001  (the jobs' results are lost with it: one line says why)
            jobs = f"job {last}" if last == initial_job_idx else f"jobs {initial_job_idx}-{last}"
            raise errors.SweepError(f"the launcher ({type(self.launcher).__name__}) failed running {jobs} of {total}: "
                             f"{failure_line(e, str(self.sweeper.config.hydra.sweep.dir))}{_not_run(total, last)}") from None
        failed = [(initial_job_idx + i, ret, job_files(ret)) for i, ret in enumerate(rets) if ret.status != JobStatus.COMPLETED]
        for number, ret, files in failed:
            if LOG in files:
                log_traceback(Path(files[LOG]), f"job {number}", ret._return_value)  # (.return_value re-raises)
        if failed:
            number, ret, files = failed[0]
            raise errors.SweepError(f"{len(failed)} of {total} jobs failed. Job {number} failed: "
                             f"{failure_line(ret._return_value)}{where(files)}{_not_run(total, last)}")
        return rets


def _not_run(total: int, last: int) -> str:
    """`; the multirun stops before its other N jobs` when jobs after number `last` are left."""
    left = total - last - 1
    return f"; the multirun stops before its other {left} job{'s' * (left != 1)}" if left > 0 else ""
