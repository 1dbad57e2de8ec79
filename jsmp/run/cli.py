"""The Hydra commands `jsmp train|tune` (and train.py, tune.py): the command line checked, the
project root fixed, the configs shipped in the package composed, the training recipe run; user
errors become one line + exit 2.

Nothing here imports torch or Lightning before the recipe runs, so `--help` and a bad command
line answer in about a second.

jsmp never imports the sweeper plugin (hydra_plugins/), nor the plugin jsmp. What this glue needs
of it (the command line's overrides checked before Hydra runs; a full disk worded as the sweeper
words a failed job) it reaches as Hydra reaches a sweeper: `sweeper()` is the class of the
config `hydra/sweeper: jsmp_basic` (conf/hydra/default.yaml), looked up in Hydra's registries,
and it calls that class's public entry point (check_command_line, disk_full, DISK_FULL).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import jsmp
from jsmp.errors import EXIT_USAGE, UserError, exit_on_user_error, report
from jsmp.run import (
    dataconfig,  # noqa: F401  (registers the `data` schemas with Hydra's ConfigStore)
    rundir,  # (also registers ${jsmp.job_name:...}, the multirun job dirs' names)
)
from jsmp.run.groupfiles import check_group_files

# the configs shipped inside the package (in a clone jsmp/conf is a symlink to the top-level conf/)
CONF_DIR = Path(jsmp.__file__).resolve().parent / "conf"
# data/ and logs/ go under this directory (conf/paths/default.yaml reads it)
ROOT_ENV = "JSMP_ROOT"

# the sweeper `-m` runs (conf/hydra/default.yaml), whose class offers the entry point this glue calls
SWEEPER = "jsmp_basic"
# keys an older jsmp had, and where they are now
MOVED = {f"model.{k}": f"model.optimizer.{k} (the optimizer class: model/optimizer=NAME, see conf/model/optimizer/)"
         for k in ("lr", "weight_decay", "momentum")}
# sweeper classes an older jsmp had (a `hydra.sweeper._target_` in a search file), and their names now
RENAMED = {"hydra_plugins.jsmp_optuna_sweeper.sweeper.OptunaSweeper":
           "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper (or leave _target_ out: "
           "`override /hydra/sweeper: optuna` sets it)",
           "hydra_plugins.jsmp_optuna_sweeper.basic.BasicSweeper": "hydra_plugins.jsmp_optuna_sweeper.basic.JsmpBasicSweeper"}


@functools.cache
def sweeper() -> type:
    """The class Hydra runs for `hydra/sweeper: SWEEPER`, found as Hydra finds it: the config's
    `_target_` (registered in the ConfigStore by Hydra's plugin scan) looked up among the plugin
    classes that scan found. jsmp calls its `check_command_line(argv, sweeping)`,
    `disk_full(err, run_dir)` and `DISK_FULL` (hydra_plugins/jsmp_optuna_sweeper/basic.py)."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # (scans hydra_plugins once per process, as every Hydra run does)
    return plugins.class_name_to_class[ConfigStore.instance().load(f"hydra/sweeper/{SWEEPER}.yaml").node._target_]


def run_task(task: Callable[[DictConfig], float], cfg: DictConfig) -> float:
    """Run `task(cfg)`. A full disk (ENOSPC, EDQUOT: a checkpoint, the logger, metrics.json) is a
    UserError naming the file, as is a UserError a resolver raised (`${jsmp.score:bogus}`), which
    OmegaConf wraps. In a single run a UserError exits 2 with one line; in a multirun it
    is raised so the sweeper can record the job or trial as failed (and report it in one line)."""
    try:
        try:
            with _quiet_disk_full_in_threads():
                return task(cfg)
        except Exception as e:
            if isinstance(e, OmegaConfBaseException) and (cause := _user_error_within(e)):
                raise cause from None
            if isinstance(e, UserError) or (line := sweeper().disk_full(e, OmegaConf.select(cfg, "paths.output_dir"))) is None:
                raise
            raise UserError(line) from e
    except UserError as err:
        if rundir.in_multirun():
            raise
        report(err)
        sys.exit(EXIT_USAGE)


def _user_error_within(err: BaseException) -> UserError | None:
    """The UserError an OmegaConf error was raised while handling (a resolver's), if any: OmegaConf
    chains it as the context of its own, not as the cause."""
    while err is not None and not isinstance(err, UserError):
        err = err.__cause__ or err.__context__
    return err


class LogFile(logging.FileHandler):
    """The handler of a job's log file (conf/hydra/default.yaml): logging's FileHandler, except
    on a full disk, which it reports once, in one line on stderr, instead of a traceback for every
    record it cannot write (the run stops, in one line, at its next write of its own files)."""

    full = False  # (reported already)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802  (logging's name)
        err = sys.exc_info()[1]
        if not (isinstance(err, OSError) and err.errno in sweeper().DISK_FULL):
            super().handleError(record)
        elif not self.full:
            self.full = True
            print(f"warning: disk full writing {self.baseFilename}: its later lines are lost", file=sys.stderr, flush=True)


def check_compose(argv: list[str], config_dir: Path, config_name: str = "config") -> None:
    """Compose the config that Hydra's command line `argv` asks for, as Hydra will, and check
    each typed group against its schema (jsmp/run/dataconfig.py): a wrong type or an unknown
    key, added with `+` too, is a UserError naming the key, before Hydra would report it in
    several lines (exit 1). Costs one compose; Hydra's own flags (--help, ...) are left to it."""
    from hydra import initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException

    args, _ = get_args_parser().parse_known_args(argv)
    if not args.overrides or args.help or args.hydra_help or args.info or args.shell_completion \
            or args.config_path or args.config_dir or args.experimental_rerun:
        return
    check_group_files(config_dir, args.overrides)  # the files an override selects: Hydra may skip one silently
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            # as for a multirun: sweep overrides (data.fold=0,1) are left to the sweep, the rest applied
            cfg = GlobalHydra.instance().hydra.compose_config(args.config_name or config_name, args.overrides,
                                                               run_mode=RunMode.MULTIRUN)
        for key in ("data",):  # the groups with a schema: keys added with `+` bypass it
            schema = OmegaConf.get_type(cfg.get(key))
            if schema not in (None, dict):
                OmegaConf.merge(schema, OmegaConf.to_container(cfg[key]))
    except ConfigCompositionException as e:
        cause = e.__cause__
        if isinstance(cause, OmegaConfBaseException) and cause.full_key:
            key = cause.full_key
            hint = f"; it moved to {MOVED[key]}" if key in MOVED else ""
            raise UserError(f"{key}: {_first_line(cause)}{hint}") from None
        text = str(e).split("\nConfig search path")[0]  # (Hydra's listing of where it looked)
        raise UserError(" ".join(text.split())) from None
    except OmegaConfBaseException as e:
        raise UserError(f"{key}.{e.full_key}: {_first_line(e)}") from None
    target = OmegaConf.select(cfg, "hydra.sweeper._target_", default=None)
    if target in RENAMED:  # (Hydra would stop with a traceback: "Unknown plugin class")
        raise UserError(f"hydra.sweeper._target_={target}: that class was renamed; write {RENAMED[target]}")


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0]


def set_root(default: str | Path) -> str:
    """Fix the project root for this process and every process it starts (sweep trials,
    launcher jobs, DDP ranks), whatever their working directory: $JSMP_ROOT if set, else
    `default`, made absolute and put into the environment. Returns it."""
    root = os.path.abspath(os.environ.get(ROOT_ENV) or default)
    os.environ[ROOT_ENV] = root
    return root


def tune_argv(argv: list[str]) -> list[str]:
    """`argv` plus `hparams_search=<model>` (model from `model=...`, default mlp) unless given."""
    if any(a.startswith("hparams_search=") for a in argv):
        return argv
    model = next((a.split("=", 1)[1] for a in argv if a.startswith("model=")), "mlp")
    return [*argv, f"hparams_search={model}"]


def train_main(argv: list[str], root: str | Path = ".") -> None:
    """`jsmp train ARGV` / `python train.py ARGV`: Hydra overrides and flags; `+best=PATH`
    (a sweep's best.yaml) stands for the overrides its best trial ran with."""
    from jsmp.run.tuning import expand_best

    argv = exit_on_user_error(expand_best)(argv)
    sweeping = any(a.startswith(("hparams_search=", "-m", "--multirun")) for a in argv)
    hydra_command("train", argv, root, sweeping)


def tune_main(argv: list[str], root: str | Path = ".") -> None:
    """`jsmp tune ARGV` / `python tune.py ARGV`: `train hparams_search=<model> ARGV` (see tune.py)."""
    hydra_command("tune", tune_argv(argv), root, sweeping=True)


def hydra_command(name: str, argv: list[str], root: str | Path, sweeping: bool) -> None:
    """Run the training recipe under Hydra with the command line `argv` (overrides, `-m`, `--help`,
    `--cfg job`, ...), composing CONF_DIR, the project root set first (set_root(root)).
    A mistake Hydra would report in several lines is one line and exit 2 here: an override that does
    not parse or (when `sweeping`) a quoted sweep, a wrong type or an unknown key."""
    from hydra import version
    from hydra._internal.utils import _run_hydra, get_args_parser

    version.setbase("1.3")  # as @hydra.main(version_base="1.3") does; else Hydra falls back to 1.1 (jobs chdir)
    set_root(root)
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.overrides:
        sweeper().check_command_line(argv, sweeping=sweeping)
        exit_on_user_error(check_compose)(argv, CONF_DIR)
    if args.shell_completion:
        os.environ["COMP_LINE"] = completion_line(os.environ.get("COMP_LINE", ""), name)
    task = _recipe_task(name)
    if args.experimental_rerun is not None:  # as @hydra.main does
        from hydra.core.utils import _flush_loggers
        from hydra.main import _get_rerun_conf

        task(_get_rerun_conf(args.experimental_rerun, args.overrides))
        _flush_loggers()
        return
    with _one_repository_for_help() if args.help else nullcontext(), _disk_full_is_one_line():
        _run_hydra(args=args, args_parser=parser, task_function=task, config_path=str(CONF_DIR), config_name="config")


def completion_line(line: str, name: str) -> str:
    """The shell's command line `line` (COMP_LINE: `jsmp train model=l`) as Hydra's completion reads
    it, for command `name`: `jsmp train ...` and `jsmp tune ...` lose the command's name (Hydra strips
    one program word, as in `python train.py ...`), and tune's gets the search it adds
    (`jsmp hparams_search=mlp model=l`), so that `hydra.sweeper.` completes the search's keys."""
    words = line.split()
    if len(words) < 2 or words[1] != name:  # (`python train.py ...`: Hydra's own form)
        return line
    rest = words[2:]
    typed = rest[:-1] if rest and not line.endswith(" ") else rest  # (the last word is being completed)
    added = tune_argv(typed)[len(typed):] if name == "tune" else []
    return " ".join([words[0], *added, *rest]) + (" " if line.endswith(" ") else "")


def _recipe_task(name: str) -> Callable[[DictConfig], float]:
    def task(cfg: DictConfig) -> float:
        # imported here: torch and Lightning are not needed to parse or report a bad command line
        from jsmp.run import extras
        from jsmp.run.training import train

        return run_task(functools.partial(extras.run, train), cfg)  # (tags, print_config, eval_after_fit)

    # Hydra names the job (hydra.job.name: `NAME is powered by Hydra`, a Slurm job's name) after the task's module
    task.__module__ = f"jsmp.{name}"
    return task


@contextmanager
def _quiet_disk_full_in_threads() -> Iterator[None]:
    """Within this context a thread that dies of a full disk prints no traceback (TensorBoard's
    event writer: its error is raised again in the training thread, which reports it in one line)."""
    disk_full = sweeper().disk_full
    original = threading.excepthook

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or disk_full(args.exc_value) is None:
            original(args)

    threading.excepthook = excepthook
    try:
        yield
    finally:
        threading.excepthook = original


@contextmanager
def _disk_full_is_one_line() -> Iterator[None]:
    """A full disk while Hydra itself writes (a run dir's .hydra/, a sweep dir's multirun.yaml,
    before any job runs) is one line and exit 2 within this context, not Hydra's traceback and
    exit 1 (hydra._internal.utils.run_and_report reports any exception but SystemExit)."""
    from hydra._internal import utils as hydra_utils

    disk_full = sweeper().disk_full
    original = hydra_utils.run_and_report

    def run_and_report(func):
        def guarded():
            try:
                return func()
            except OSError as e:
                if (line := disk_full(e)) is None:
                    raise
                report(UserError(line))
                sys.exit(EXIT_USAGE)

        return original(guarded)

    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


@contextmanager
def _one_repository_for_help() -> Iterator[None]:
    """Hydra's `--help` lists the config groups with ~110 calls to ConfigLoaderImpl.get_group_options,
    each of which deep-copies the whole config repository (~40 ms): 4-5 s. Within this context each
    loader copies it once per (config name, overrides) and answers every listing from that copy
    (listing reads a repository, never changes it): the same text in ~0.1 s."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.object_type import ObjectType

    original = ConfigLoaderImpl.get_group_options
    repos = {}

    def get_group_options(self, group_name, results_filter=ObjectType.CONFIG, config_name=None, overrides=None):
        key = (id(self), config_name, tuple(overrides or ()))
        if key not in repos:
            repos[key] = self._parse_overrides_and_create_caching_repo(config_name, list(overrides or ()))[1]
        return repos[key].get_group_options(group_name, results_filter)

    ConfigLoaderImpl.get_group_options = get_group_options
    try:
        yield
    finally:
        ConfigLoaderImpl.get_group_options = original
