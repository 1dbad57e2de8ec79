from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from jsmp.data.synthetic import SynthSpec, write_store
from jsmp.run import dataconfig  # noqa: F401  (registers the data config schemas with Hydra's ConfigStore)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
TINY = SynthSpec(days=30, rows_per_day=80, seed=3)


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
