"""What a sweeper reports about a failed job: why, in one line, and where its run dir and log
are; the job's traceback goes to its log. Shared by the Optuna loop (_loop.py) and the basic
sweeper (basic.py). Light: Hydra's plugin scan imports this module on every run."""

from __future__ import annotations

import errno
import logging
import re
import time
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

RUN_DIR, LOG = "run_dir", "log"  # the keys of job_files (and the Optuna trials' user attrs)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(err: BaseException, run_dir: str | None = None) -> str | None:
    """`disk full writing PATH: ...`, one line, when `err`, or an exception it was raised from or
    while handling (Lightning raises a callback's error again from its teardown), is an OSError
    ENOSPC or EDQUOT; else None. PATH is the file (a temp sibling `.NAME.tmp-...` named as NAME),
    or else `run_dir`, or the dir of the job being run."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            if err.filename:
                path = Path(err.filename)
                path = path.with_name(re.sub(r"^\.(.+)\.tmp-\d+-\w+$", r"\1", path.name))
                what = str(path)
            else:
                run_dir = run_dir or (_job_dir() if HydraConfig.initialized() else None)
                what = f"the run dir {run_dir}" if run_dir else "the run dir"
            return f"disk full writing {what} ({err.strerror}): free space there, or choose another hydra.run.dir " \
                   "(hydra.sweep.dir for -m) or paths.log_dir"
        err = err.__cause__ or err.__context__
    return None


def _job_dir() -> str:
    """The dir of the job being run: hydra.runtime.output_dir once set (Hydra sets it after
    writing .hydra/), else hydra.run.dir or, in a multirun, hydra.sweep.dir."""
    hc = HydraConfig.get()
    return str(OmegaConf.select(hc, "runtime.output_dir", default=None)
               or (hc.sweep.dir if hc.mode == RunMode.MULTIRUN else hc.run.dir))


def failure_line(err: BaseException, run_dir: str | None = None) -> str:
    """Why a job failed, in one line (at most 500 characters): `Type: message`, whitespace collapsed;
    for a full disk, disk_full's line (`run_dir`: its dir when the error names none).
    A submitit job that raised (FailedJobError, whose message holds the job's traceback) gives
    its exception's own line and log file; one that never finished (UncompletedJobError: killed,
    out of memory, timed out) the first two lines of submitit's message (job id, state); one whose
    config does not compose (a searched value of the wrong type) its type and composition_line's."""
    if full := disk_full(err, run_dir):
        return full
    kind, text = type(err).__name__, composition_line(err) if isinstance(err, CompactHydraException) else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if kind == "FailedJobError" and lines:  # (submitit's, told by name: the plugin does not import submitit)
        trace = text.split("-" * 22)  # "...with trace:\n-----\n<traceback>\n-----\nYou can check ... paths:\n  - ERR"
        last = [line for line in trace[1].splitlines() if line.strip()] if len(trace) > 2 else lines
        text = f"{last[-1].strip()} (submitit job log {lines[-2].lstrip('- ')})" if lines[-2].startswith("- ") else last[-1]
    elif kind == "UncompletedJobError":
        text = " ".join(lines[:2])
    else:
        text = f"{kind}: {text}"
    return " ".join(text.split())[:500]


def composition_line(err: CompactHydraException) -> str:
    """Why Hydra cannot compose a job's config, in one line: its message without its listing of
    the config search path, then OmegaConf's reason for a bad value or key
    (`Error merging override data.fold=x: Value 'x' of type 'str' could not be converted to Integer`)."""
    text = str(err).split("\nConfig search path")[0]
    if err.__cause__ is not None:
        text += ": " + (str(err.__cause__).strip().splitlines() or [""])[0]
    return " ".join(text.split())


def job_files(ret: JobReturn) -> dict[str, str]:
    """{run_dir, log} of a job Hydra ran: its output dir and its log file (Hydra's job_logging
    file handler), those it has."""
    if ret.hydra_cfg is None:
        return {}
    out = {RUN_DIR: OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir", default=None)}
    try:  # the file name may use the job's keys (jsmp's: ${task_name}.log)
        full = OmegaConf.create({**OmegaConf.to_container(ret.cfg or {}), **OmegaConf.to_container(ret.hydra_cfg)})
        out[LOG] = OmegaConf.select(full, "hydra.job_logging.handlers.file.filename", default=None)
    except Exception:  # noqa: BLE001, S110  (an interpolation that does not resolve: no log named)
        pass
    return {k: str(v) for k, v in out.items() if v}


def where(files: dict[str, str]) -> str:
    """` (run dir D, log L)` from job_files' dict, those it has; "" for none."""
    parts = ", ".join(f"{name} {files[key]}" for name, key in (("run dir", RUN_DIR), ("log", LOG)) if files.get(key))
    return f" ({parts})" if parts else ""


def log_traceback(path: Path, what: str, err: BaseException) -> None:
    """Append the exception a job raised (`what`: e.g. "trial 3"), with its traceback, to the
    job's log file: Hydra's launchers keep it in the JobReturn and log nothing."""
    try:
        with path.open("a") as f:
            f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}][{__name__}][ERROR] - {what} failed:\n"
                    + "".join(traceback.format_exception(err)))
    except OSError as e:
        log.warning("%s: cannot append its error to %s (%s)", what, path, e.strerror)
