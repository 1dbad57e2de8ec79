"""Shared fixtures. Behaviour is tested in this process: the recipe on a composed config (cfg_for, train_cfg),
a command line's entry point (run_main; train.py and tune.py: train_in_process, train_app), runs trained once a
session (runs, rtmdf_runs). A command runs as a user runs it (run_cli, train_cli) only for the command-line
surface (one per command and per error class) and where a test needs a process of its own (a kill, DDP, an
installed wheel, an environment variable read once per process)."""

from __future__ import annotations

import copy
import io
import logging
import os
import subprocess
import sys
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from jsmp.data.synthetic import SynthSpec, write_store
from jsmp.run import dataconfig  # noqa: F401  (registers the data config schemas with Hydra's ConfigStore)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
TINY = SynthSpec(days=30, rows_per_day=80, seed=3)


@pytest.fixture(autouse=True)
def _torch_threads_kept():
    """Each test starts with torch's thread count of this process (a Predictor sets its own): runs
    trained in this process are numerically those of a fresh process."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A small synthetic store (30 days x ~80 rows) with several shards."""
    return write_store(TINY, tmp_path_factory.mktemp("stores") / "tiny", shard_rows=500)


@pytest.fixture(scope="session")
def tiny_rtmdf_store(tmp_path_factory) -> Path:
    """A small synthetic store of the 2024 layout (30 dates x 8 time_ids, 6 instruments entering and
    leaving) with several shards."""
    from jsmp.data import synthetic_rtmdf

    return synthetic_rtmdf.write_store(synthetic_rtmdf.RtmdfSpec(days=30, times=8, symbols=6, seed=3), tmp_path_factory.mktemp("stores") / "tiny-rtmdf",
                       shard_rows=300)


def compose_cfg(overrides: list[str] = (), config_name: str = "config"):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)


def run_cli(args: list[str], cwd: Path = ROOT, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python ARGS...` the way a user does; returns the finished process (text output)."""
    e = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def data_cli_error(argv: list[str], capsys) -> str:
    """The one `error: ...` line `python -m jsmp.data ARGV` (in-process) prints, after checking it exits 2."""
    from jsmp.data.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


@pytest.fixture
def train_cli(tmp_path):
    """`train_cli(*overrides, env=None, run="run")`: `python train.py OVERRIDES` as a user runs it,
    with JSMP_ROOT=tmp_path (data/, logs/ there) and hydra.run.dir=tmp_path/<run>."""

    def train(*overrides: str, env: dict | None = None, run: str = "run") -> subprocess.CompletedProcess:
        return run_cli(["train.py", f"hydra.run.dir={tmp_path}/{run}", *overrides], env={"JSMP_ROOT": str(tmp_path), **(env or {})})

    return train


@contextmanager
def process_state_kept():
    """Within: what a command run in this process changes beyond its files (os.environ: JSMP_ROOT,
    Lightning's PL_GLOBAL_SEED; the root logger's handlers and level, which Hydra sets; HydraConfig;
    torch's thread count, which a Predictor sets) is put back on exit, so the next test sees the
    process as before. Handlers the command added are closed (flushed)."""
    import torch

    environ, root, threads = dict(os.environ), logging.getLogger(), torch.get_num_threads()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        HydraConfig.instance().cfg = None
        for h in root.handlers:
            if h not in handlers:
                h.close()
        root.handlers[:], root.level = handlers, level
        os.environ.clear()
        os.environ.update(environ)


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_main(main, argv: list[str]) -> subprocess.CompletedProcess:
    """`main(ARGV)`, a command line's entry point (`python -m jsmp.evaluate ARGV`: jsmp.evaluate.cli.main),
    run in this process as run_cli runs it in another: its exit code, stdout and stderr. What it changes
    in the process is undone (process_state_kept)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), process_state_kept(), warnings.catch_warnings():
        # warnings printed to its stderr, as in its own process (pytest would record them); pytest's
        # filters show more of them than an interpreter's defaults, except pyproject.toml's ignores
        warnings.showwarning = _print_warning
        try:
            code = main(list(argv))
        except SystemExit as e:
            code = e.code
    code = 0 if code is None else code if isinstance(code, int) else 1
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def train_in_process(argv: list[str], env: dict | None = None, script: str = "train.py") -> subprocess.CompletedProcess:
    """`python SCRIPT ARGV` (train.py or tune.py) run in this process (jsmp.run.cli.train_main or tune_main:
    the command line checked, Hydra's run dir and logging, the recipe) with ENV added to os.environ, as
    run_cli runs it."""
    from jsmp.run import cli

    def train(argv: list[str]) -> None:
        os.environ.update(env or {})
        getattr(cli, f"{Path(script).stem}_main")(argv, root=ROOT)

    return run_main(train, argv)


@pytest.fixture
def train_app(tmp_path):
    """`train_app(*overrides, env=None, run="run")`: what `train_cli` runs, in this process
    (train_in_process): JSMP_ROOT=tmp_path, hydra.run.dir=tmp_path/<run>. Returns a CompletedProcess."""

    def train(*overrides: str, env: dict | None = None, run: str = "run") -> subprocess.CompletedProcess:
        return train_in_process([f"hydra.run.dir={tmp_path}/{run}", *overrides], {"JSMP_ROOT": str(tmp_path), **(env or {})})

    return train


def cfg_for(tmp_path: Path, *overrides: str, run: str = "run") -> DictConfig:
    """conf/config.yaml composed with OVERRIDES as `python train.py` composes it, Hydra's node included
    (lightning-hydra-template's way): the project root tmp_path (data/, logs/ there), the run dir tmp_path/<run>."""
    cfg = compose_cfg([f"hydra.run.dir={tmp_path / run}", *overrides])
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp_path)
        cfg.hydra.runtime.output_dir = str(tmp_path / run)
    return cfg


def train_cfg(cfg: DictConfig) -> float:
    """The recipe (jsmp.run.training.train) on `cfg` from cfg_for, as Hydra's run_job calls a task:
    HydraConfig set from it, the task's config without its `hydra` node. Returns cfg.optimized_metric;
    a user mistake raises its UserError."""
    from jsmp.run.training import train

    task_cfg = copy.deepcopy(cfg)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    with process_state_kept():
        HydraConfig.instance().set_config(cfg)
        return train(task_cfg)


# Runs trained once a session, for the tests that read them (evaluate, checkpoints); a test that changes
# one copies it into its tmp_path first.
# 1-epoch runs on the tiny store (30 days) that differ in model, fill and window (the LSTM's windows
# cross days, so its first validation rows look back on earlier days), and a 2-fold CV multirun
# (10-day blocks, 2-day gap: fold 0 trains on days 0-7 and validates on 10-19, fold 1 on 0-17 and 20-29)
RUNS = {
    "mlp": ["data.fill=ffill"],
    "lstm": ["model=lstm", "model.hidden=8", "data.window.length=8"],
    "cv": ["-m", "data.fold=0,1", "data.cv.folds=2", "data.cv.gap_days=2"],
}
RUN_ARGS = ["trainer.max_epochs=1", "logger=none"]  # (and data.store: the tiny store)
# 2-epoch runs on the tiny 2024 store: an MLP whose first target is responder_7 (so the one scored), a GRU
RTMDF_RUNS = {"mlp-r7": ["model=mlp", "data.targets=[responder_7,responder_6]"],
              "gru": ["model=gru", "data.window.length=4"]}


@pytest.fixture(scope="session")
def runs(tiny_store, tmp_path_factory) -> dict[str, Path]:
    """RUNS' run dirs mlp, lstm and the multirun dir cv (jobs 0/ and 1/), trained by train.py (in this process)."""
    root = tmp_path_factory.mktemp("runs")
    for name, args in RUNS.items():
        where = [args[0], f"hydra.sweep.dir={root / name}"] if args[0] == "-m" else [f"hydra.run.dir={root / name}"]
        p = train_in_process([*where, f"data.store={tiny_store}", *RUN_ARGS, *args[len(where) - 1:]], {"JSMP_ROOT": str(root)})
        assert p.returncode == 0, p.stderr[-3000:]
    return {name: root / name for name in RUNS}


@pytest.fixture(scope="session")
def rtmdf_runs(tiny_rtmdf_store, tmp_path_factory) -> dict[str, Path]:
    """RTMDF_RUNS' run dirs, trained by train.py (in this process) on the tiny 2024 store."""
    root = tmp_path_factory.mktemp("rtmdf-runs")
    for name, args in RTMDF_RUNS.items():
        p = train_in_process([f"hydra.run.dir={root / name}", "data=rtmdf", f"data.store={tiny_rtmdf_store}",
                              "trainer.max_epochs=2", "logger=none", "data.batch_size=256", *args], {"JSMP_ROOT": str(root)})
        assert p.returncode == 0, p.stderr[-3000:]
    return {name: root / name for name in RTMDF_RUNS}


def run_data(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m jsmp.data ARGV` run in directory CWD (default: the current one), in this process (run_main)."""
    from contextlib import chdir

    from jsmp.data.__main__ import main

    with chdir(cwd or "."):
        return run_main(main, argv)
