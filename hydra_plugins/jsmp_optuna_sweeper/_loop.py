"""The sweep loop (imported by sweeper.py when a sweep starts: it loads Optuna and SQLAlchemy,
which Hydra's plugin scan must not). Every worker process (this one, its n_jobs - 1 children, or processes on
other machines given the same storage URL and study name) runs the same loop on the shared
study, so they finish exactly `n_trials` trials between them:

    repeat:
        fail trials whose worker died (heartbeat silent > grace_period, or a dead local pid);
            each is retried as a new trial with the same params and no longer counts
        counted = trials that are not such dead ones (nor surplus, below)
        stop when n_trials of them are finished (complete, pruned or failed)
        if fewer than n_trials are counted: ask a trial; if others asked at the same moment
            and it is beyond n_trials by trial number, it is closed as surplus; otherwise
            launch its job with the sampled params, keep its heartbeat, tell its result
        else wait for the other workers' running trials

A job that raises, or returns NaN, is told FAIL; one that raises optuna.TrialPruned
(jsmp/run/pruning.py does when the pruner says so) is told PRUNED. What a job gets to report
to its trial: `_trial_keys` (the contract: __init__.py).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf, read_write
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
from optuna.trial import FrozenTrial, TrialState

from . import config as _config  # noqa: F401  (registers the configs)
from .errors import SweepError, exit_on_sweep_error
from .files import write_text_atomic
from .jobs import LOG, failure_line, job_files, log_traceback, where
from .reports import OVERRIDES_ATTR, report
from .space import override_text, parse_space
from .storage import check_url, display, for_jobs, open_storage

log = logging.getLogger(__name__)

WORKER_ATTR = "worker"  # user attr: "host:pid" of the process running the trial
SURPLUS_ATTR = "surplus"  # user attr of a trial asked beyond n_trials by a racing worker
ERROR_ATTR = "error"  # user attr of a failed trial: why, in one line
CHILD_ENV = "JSMP_SWEEP_CHILD"  # set in the worker processes this sweeper starts
TRIAL_KEYS = ("study", "storage", "engine_kwargs", "id", "number", "threads")  # optuna_trial.* (_trial_keys)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class StudyLoop:
    # Hydra instantiates the sweeper, calls setup, then sweep: each one reports a SweepError
    # (a bad setting, an unusable storage, too many failures) in one line and exits 2.
    @exit_on_sweep_error
    def __init__(self, sampler: Any, direction: Any, storage: str | None, study_name: str | None,
                 n_trials: int, n_jobs: int, max_failure_rate: float, params: DictConfig | None,
                 custom_search_space: str | None, pruner: Any, threads_per_job: int | None,
                 heartbeat_interval: int, grace_period: int, poll_interval: float) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise SweepError(f"hydra.sweeper.max_failure_rate={max_failure_rate}: expected a number in [0, 1]")
        if n_jobs < 1:
            raise SweepError(f"hydra.sweeper.n_jobs={n_jobs}: expected an integer >= 1")
        if n_trials < 0:
            raise SweepError(f"hydra.sweeper.n_trials={n_trials}: expected an integer >= 0")
        if n_jobs > 1 and not os.environ.get(CHILD_ENV):
            _rerun_command(n_jobs)  # refused before anything is written when its workers cannot be started
        if storage is not None:
            # before anything is written: no password in it (Hydra would save it in every run dir),
            # a URL SQLAlchemy can parse, an installed driver
            check_url(storage)
        self.sampler, self.pruner = sampler, pruner  # instantiated by Hydra (or a GridSampler partial)
        self.directions = [str(d) for d in direction] if isinstance(direction, (list, tuple)) or (
            OmegaConf.is_list(direction)) else [str(direction)]
        self.storage_url, self.study_name = storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.params = params
        self.extend_space = get_method(custom_search_space) if custom_search_space else None
        self.threads = threads_per_job or max(1, len(os.sched_getaffinity(0)) // n_jobs)
        self.heartbeat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
        self.poll_interval = poll_interval
        self.me = f"{socket.gethostname()}:{os.getpid()}"

    @exit_on_sweep_error
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.study_name = self.study_name or default_study_name(config)
        self.default_storage = not self.storage_url
        with read_write(config.hydra):  # the launcher's config too (it shares this one)
            config.hydra.sweeper.study_name = self.study_name  # (a sweep dir may name it)
            # the study's SQLite file lives in the sweep dir, which must then outlive this command
            if self.default_storage and (stable := stable_sweep_dir(config, self.study_name)):
                config.hydra.sweep.dir = stable
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        self.metric_names = metric_names(config, self.directions)
        # each job's config is composed anew from the YAML (its sweep dir as written there): give it
        # ours, and keep the optuna_trial.* plumbing out of run dir names (hydra.job.override_dirname)
        excluded = OmegaConf.select(config, "hydra.job.config.override_dirname.exclude_keys", default=None) or []
        self.job_overrides = [f"hydra.sweep.dir={_hydra_value(str(self.sweep_dir))}",
                              "hydra.job.config.override_dirname.exclude_keys="
                              + _hydra_value([*excluded, *(f"optuna_trial.{k}" for k in TRIAL_KEYS)])]
        self.storage_url = self.storage_url or f"sqlite:///{self.sweep_dir / 'optuna.db'}"
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    # ---------------------------------------------------------------- the loop
    @exit_on_sweep_error
    def sweep(self, arguments: list[str]) -> None:
        with warnings.catch_warnings(), _optuna_lines_in_hydras_log():
            # heartbeats, retries and the matplotlib plots are marked experimental: no news to a user
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> None:
        params = [f"{k}={v}" for k, v in (self.params or {}).items()]
        self.searched, self.fixed, self.literal = parse_space(params + list(arguments), n_from_params=len(params))
        if self.default_storage:  # the study's SQLite file lives in the sweep dir
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
        study = self._study()  # a storage that cannot be opened stops here, before any dir is made
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        pruner = type(self.pruner).__name__ if self.pruner else None
        if len(self.directions) > 1:
            pruner = f"off ({len(self.directions)} objectives: Optuna prunes single-objective studies only)"
        log.info("study %s in %s: %d trials, %d at once, pruner %s", study.study_name, display(self.storage_url),
                 self.n_trials, self.n_jobs, pruner)
        children = self._start_children()
        try:
            self._work(study)
        finally:
            for child in children:
                child.wait()
        if not os.environ.get(CHILD_ENV):
            report(study, self.sweep_dir)

    def _study(self) -> optuna.Study:
        self.job_storage = for_jobs(self.storage_url)  # what each job gets to open the storage with
        storage = open_storage(self.storage_url, **self.heartbeat, heartbeat_stale_trial_callback=Retry())
        study = optuna.create_study(storage=storage, study_name=self.study_name, pruner=self.pruner,
                                    directions=self.directions, load_if_exists=True)
        if self.metric_names:  # (optuna-dashboard's objective names)
            study.set_metric_names(self.metric_names)
        study.sampler = self._sampler(len(study.get_trials(deepcopy=False)))
        return study

    def _sampler(self, n_existing: int) -> optuna.samplers.BaseSampler:
        """The configured sampler. A resumed study's is seeded with seed + its trial count:
        the same seed again would propose the first trials' params again."""
        sampler = self.sampler
        node = self.config.hydra.sweeper.sampler
        if n_existing and node.get("seed") is not None:
            sampler = instantiate(node, seed=node.seed + n_existing)
        if getattr(sampler, "func", None) is optuna.samplers.GridSampler:  # _partial_: wants the space
            grid = {k: _grid_values(d) for k, d in self.searched.items()}
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
            return sampler(grid)
        return sampler

    def _work(self, study: optuna.Study) -> None:
        while True:
            self._fail_dead(study)
            counted = _counted(study.get_trials(deepcopy=False))
            finished = [t for t in counted if t.state in FINISHED]
            self._check_failures(finished)
            if len(finished) >= self.n_trials:
                log.info("study %s: %d trials finished", study.study_name, len(finished))
                return
            waiting = any(t.state == TrialState.WAITING for t in counted)  # a dead trial's retry: run it
            if len(counted) >= self.n_trials and not waiting:  # the rest are running elsewhere
                time.sleep(self.poll_interval)
                continue
            self._run_one(study)

    def _run_one(self, study: optuna.Study) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask(fixed_distributions=self.searched)
        with _Heartbeat(study, trial._trial_id, self.heartbeat["heartbeat_interval"]):
            trial.set_user_attr(WORKER_ATTR, self.me)
            rank = sum(1 for t in _counted(study.get_trials(deepcopy=False)) if t.number < trial.number)
            if rank >= self.n_trials:
                trial.set_user_attr(SURPLUS_ATTR, True)
                _tell(study, trial, state=TrialState.FAIL)
                return
            if self.extend_space:
                self.extend_space(self.config, trial)
            overrides = [f"{k}={v}" for k, v in self.fixed.items()]
            overrides += [override_text(k, v, self.literal.get(k, frozenset())) for k, v in trial.params.items()]
            trial.set_user_attr(OVERRIDES_ATTR, overrides)
            trial_keys = [f"+optuna_trial.{k}={_hydra_value(v)}" for k, v in self._trial_keys(study, trial).items()]
            try:
                ret = self.launcher.launch([overrides + trial_keys + self.job_overrides], initial_job_idx=trial.number)[0]
            except Exception as e:  # noqa: BLE001  (e.g. a searched key the config lacks: the job cannot be composed)
                ret = JobReturn(status=JobStatus.FAILED, _return_value=e)
            self._tell(study, trial, ret)

    def _trial_keys(self, study: optuna.Study, trial: optuna.Trial) -> dict[str, Any]:
        """What the job needs to report to its trial (`optuna_trial.*`, TRIAL_KEYS; read by jsmp/run/pruning.py)."""
        keys = {"study": study.study_name, **self.job_storage, "id": trial._trial_id,
                "number": trial.number, "threads": self.threads}
        assert tuple(keys) == TRIAL_KEYS
        return keys

    def _tell(self, study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> None:
        """Record the job's outcome: its value(s), PRUNED for TrialPruned, else FAIL with the
        reason; its run dir and log file as user attrs."""
        for attr, path in job_files(ret).items():
            trial.set_user_attr(attr, path)
        if ret.status == JobStatus.COMPLETED:
            try:
                raw = ret.return_value
                values = [float(v) for v in (raw if isinstance(raw, (list, tuple)) else [raw])]
                if len(values) != len(self.directions) or not all(math.isfinite(v) for v in values):
                    raise ValueError(f"the job returned {raw!r}")
            except (TypeError, ValueError) as e:
                return _fail(study, trial, str(e))
            log.info("trial %d: %s", trial.number, values if len(values) > 1 else values[0])
            return _tell(study, trial, values)
        err = ret._return_value  # (ret.return_value would re-raise it)
        if isinstance(err, optuna.TrialPruned):
            log.info("trial %d pruned: %s", trial.number, err)
            return _tell(study, trial, state=TrialState.PRUNED)
        _fail(study, trial, failure_line(err))
        if trial.user_attrs.get(LOG):
            log_traceback(Path(trial.user_attrs[LOG]), f"trial {trial.number}", err)

    def _check_failures(self, finished: list[FrozenTrial]) -> None:
        failed = [t for t in finished if t.state == TrialState.FAIL]
        if len(failed) > self.max_failure_rate * self.n_trials:
            last = max(failed, key=lambda t: t.number)
            raise SweepError(f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: {len(failed)} of n_trials="
                             f"{self.n_trials} trials failed, more than it allows; the sweep stops. {_why_failed(last)}. "
                             "To go on past failed trials, rerun with a higher hydra.sweeper.max_failure_rate "
                             "(the study resumes)")

    def _fail_dead(self, study: optuna.Study) -> None:
        """FAIL, and retry, trials whose worker stopped: heartbeat too old, or a dead pid here;
        the run dirs here of the trials failed so get `"status": "killed"` in their metrics.json."""
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        host = socket.gethostname()
        storage = study._storage
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = str(t.user_attrs.get(WORKER_ATTR, "")).partition(":")
            if worker_host != host or not pid or _pid_alive(int(pid)):
                continue
            try:
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker got there first
            log.info("trial %d: its worker %s is gone; retrying its params", t.number, t.user_attrs[WORKER_ATTR])
            Retry()(study, storage.get_trial(t._trial_id))
        if running:
            retried = {n for t in study.get_trials(deepcopy=False) for n in Retry.retry_history(t)}
            for number in sorted(running & retried):
                self._mark_killed(number)

    def _run_dir(self, number: int) -> Path | None:
        """The run dir trial `number`'s job had (hydra.sweep.dir / hydra.sweep.subdir with
        hydra.job.num = number), or None when the subdir cannot be resolved without the job."""
        cfg = OmegaConf.create({"hydra": {"job": {"num": number}, "sweep": {
            "subdir": OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")}}})
        try:
            return self.sweep_dir / str(cfg.hydra.sweep.subdir)
        except Exception:  # noqa: BLE001  (an interpolation only the job's own config has)
            return None

    def _mark_killed(self, number: int) -> None:
        """`"status": "running"` -> `"killed"` in the metrics.json files of trial `number`'s run
        dir (and its CV folds'), each rewritten atomically; other files and statuses are kept."""
        run_dir = self._run_dir(number)
        if run_dir is None or not run_dir.is_dir():
            return  # another machine's trial, or one killed before its job started
        for path in [run_dir / "metrics.json", *sorted(run_dir.glob("fold-*/metrics.json"))]:
            try:
                metrics = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(metrics, dict) or metrics.get("status") != "running":
                continue
            metrics["status"] = "killed"
            write_text_atomic(path, json.dumps(metrics, indent=1, sort_keys=True) + "\n")
            log.info("trial %d: marked %s killed", number, path)

    # ------------------------------------------------------ local parallelism
    def _start_children(self) -> list[subprocess.Popen]:
        """n_jobs - 1 more worker processes: this command again (_rerun_command), on this study, one job each."""
        if self.n_jobs == 1 or os.environ.get(CHILD_ENV):
            return []
        program = _rerun_command(self.n_jobs)
        pinned = {
            "hydra.sweep.dir": str(self.sweep_dir),
            "hydra.sweeper.storage": "'" + self.storage_url.replace("'", "\\'") + "'",
            "hydra.sweeper.study_name": f"'{self.study_name}'",
            "hydra.sweeper.n_jobs": "1",
            "hydra.sweeper.threads_per_job": str(self.threads),
        }
        argv = [a for a in sys.argv[1:] if a.split("=", 1)[0] not in pinned]
        seed = OmegaConf.select(self.config, "hydra.sweeper.sampler.seed")
        children = []
        for i in range(1, self.n_jobs):
            extra = {**pinned, **({"hydra.sweeper.sampler.seed": str(seed + i)} if seed is not None else {})}
            cmd = [*program, *argv, *(f"{k}={v}" for k, v in extra.items())]
            children.append(subprocess.Popen(cmd, env={**os.environ, CHILD_ENV: "1"}))
        log.info("started %d more worker processes", len(children))
        return children


class _Heartbeat:
    """Records a trial's heartbeat every `interval` s while the sweeper waits for its job."""

    def __init__(self, study: optuna.Study, trial_id: int, interval: int):
        self.storage, self.trial_id, self.interval = study._storage, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            self.storage.record_heartbeat(self.trial_id)
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


@contextmanager
def _optuna_lines_in_hydras_log() -> Iterator[None]:
    """Within this context Optuna's log lines ("A new study created ...") go to the sweep's log (Hydra's
    handlers), not to Optuna's own stderr handler; its logger is left as it was after."""
    logger = logging.getLogger("optuna")
    handlers, propagate = list(logger.handlers), logger.propagate
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = handlers, propagate


def _tell(study: optuna.Study, trial: optuna.Trial, values=None, state=None) -> None:
    try:
        study.tell(trial, values, state=state)
    except RuntimeError as e:
        # GridSampler.after_trial calls study.stop() once the grid is done, which raises
        # outside study.optimize; the trial is stored all the same (tell stores it in a finally).
        if "Study.stop" not in str(e):
            raise


def _fail(study: optuna.Study, trial: optuna.Trial, why: str) -> None:
    """Record the trial FAIL, with `why` (one line) as its `error` user attr."""
    why = " ".join(why.split())[:500]
    log.warning("trial %d failed: %s", trial.number, why)
    trial.set_user_attr(ERROR_ATTR, why)
    _tell(study, trial, state=TrialState.FAIL)


def _why_failed(trial: FrozenTrial) -> str:
    """`Trial N failed: WHY (run dir D, log L)` from the trial's user attrs."""
    attrs = trial.user_attrs
    return f"Trial {trial.number} failed: {attrs.get(ERROR_ATTR, 'no reason recorded')}" + where(attrs)


def default_study_name(config: DictConfig) -> str:
    """The study of a search without `study_name`, the same for every rerun of one command:
    `<hparams_search>-<model>-<experiment>` from the config groups chosen (those of
    lightning-hydra-template and jsmp; absent ones left out), or, without an hparams_search
    group, the script's name (hydra.job.name) in its place."""
    choices = config.hydra.runtime.choices
    parts = [choices.get("hparams_search") or config.hydra.job.name, choices.get("model"), choices.get("experiment")]
    names = [re.sub(r"[^\w.-]+", "_", str(p)) for p in parts if p]
    return "-".join(dict.fromkeys(names))  # (each once, in order)


def metric_names(config: DictConfig, directions: list[str]) -> list[str] | None:
    """The job's `optimized_metric` (a name, or a list of them: one per direction) as the study's
    metric names; None when the config has none. A count other than the directions' is a SweepError."""
    value = OmegaConf.select(config, "optimized_metric", default=None, throw_on_resolution_failure=False)
    if value is None:
        return None
    names = [str(v) for v in value] if OmegaConf.is_list(value) else [str(value)]
    if len(names) != len(directions):
        raise SweepError(f"hydra.sweeper.direction={_listed(directions)} has {len(directions)} objective(s) but "
                         f"optimized_metric={_listed(names)} names {len(names)} metric(s): give one direction per metric")
    return names


def _listed(items: list[str]) -> str:
    """`a`, or `[a, b]` for several: a key's value as a user wrote it."""
    return items[0] if len(items) == 1 else "[" + ", ".join(items) + "]"


def stable_sweep_dir(config: DictConfig, study_name: str) -> str | None:
    """hydra.sweep.dir (unresolved) with its timestamp, from its first path component holding
    `${now:...}` on, replaced by the study name: `${paths.log_dir}/train/multiruns/${now:%Y-%m-%d_%H-%M-%S}`
    -> `${paths.log_dir}/train/multiruns/<study>`; None when it has no timestamp."""
    parts = str(OmegaConf.to_container(config.hydra.sweep, resolve=False)["dir"]).split("/")
    first = next((i for i, part in enumerate(parts) if "${now:" in part), None)
    return None if first is None else "/".join([*parts[:first], study_name])


def _counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that count toward n_trials: not surplus, not failed-and-retried."""
    with warnings.catch_warnings():  # (Optuna's "experimental" notice)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = {n for t in trials for n in Retry.retry_history(t)}
    return [t for t in trials if not t.user_attrs.get(SURPLUS_ATTR) and t.number not in retried]


def _hydra_value(value: Any) -> str:
    """`value` (a str, number, or list or dict of them) in Hydra's override grammar; strings always quoted."""
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):  # Hydra unescapes only backslashes before a quote, and \' itself
        return "'" + re.sub(r"(\\+)(?='|$)", r"\1\1", value).replace("'", "\\'") + "'"
    return repr(value)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (owned by anyone).

    A twin of jsmp.processes.pid_alive, kept here on purpose: the plugin imports nothing from
    jsmp (importing jsmp runs its package setup, which sets a torch allocator variable; see
    tests/test_imports.py), and jsmp does not import the plugin."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but belongs to another user
        return True
    return True


def _grid_values(dist) -> list:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return list(dist.choices)
    if dist.step is None:
        raise ValueError("the grid sampler needs choice() or range() params, not interval()")
    n = round((dist.high - dist.low) / dist.step) + 1
    return [dist.low + i * dist.step for i in range(n)]


# programs that run a Hydra app inside themselves (test runners, notebook kernels, debuggers), by
# the name of their script or `-m` package: starting their command line again starts them, not the app
_HOSTS = frozenset({"pytest", "py.test", "_pytest", "unittest", "nose2", "ipykernel_launcher", "ipykernel",
                    "colab_kernel_launcher", "IPython", "ipython", "jupyter", "spyder_kernels", "pydevd"})


def _rerun_command(n_jobs: int) -> list[str]:
    """`[python, SCRIPT]` or `[python, -m, MODULE]`: what runs this process's program again (with
    sys.argv[1:], a worker of n_jobs > 1). A SweepError when that program is not the Hydra app: one
    run inside another program (pytest, a notebook's kernel; sys.argv[0] is theirs) or from no
    script (python -c, an interactive session)."""
    main = sys.modules.get("__main__")
    spec, file = getattr(main, "__spec__", None), getattr(main, "__file__", None)
    script = sys.argv[0] if sys.argv else ""
    if spec is not None and spec.name != "__main__":  # python -m MODULE (a package: MODULE.__main__)
        module = spec.name.removesuffix(".__main__")
        command, host = [sys.executable, "-m", module], module.partition(".")[0]
    elif file:  # python SCRIPT, a console script, or runpy.run_path(SCRIPT, run_name="__main__")
        host = Path(file).name.removesuffix(".py")
        same = script and Path(script).resolve() == Path(file).resolve()
        command = [sys.executable, str(Path(script).absolute())] if same else []
    else:
        command, host = [], ""
    if command and host not in _HOSTS:
        return command
    program = f"{host}, not the Hydra app" if host else "no script (python -c, an interactive session)"
    raise SweepError(f"hydra.sweeper.n_jobs={n_jobs}: the sweeper starts its other workers by running this "
                     f"program's command line again, but this program is {program} (sys.argv[0]={script!r}); "
                     "use hydra.sweeper.n_jobs=1 here, or run the app as a script (python APP.py -m ...), or "
                     "start more such commands yourself on the same storage and study_name")
