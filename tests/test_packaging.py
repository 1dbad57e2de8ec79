"""A built wheel trains: its configs ship inside the package, and `jsmp` / `python -m jsmp` run from
any directory on a non-editable install (fast: `pip install --target`; slow: a fresh venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT

SOURCES = ["pyproject.toml", "README.md", "conf", "jsmp", "hydra_plugins"]
TRAIN = ["trainer.max_epochs=1", "logger=none"]


def run(args: list, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`ARGS...` in `cwd` with JSMP_ROOT and PYTHONPATH unset unless `env` sets them."""
    e = {k: v for k, v in os.environ.items() if k not in ("JSMP_ROOT", "PYTHONPATH")}
    p = subprocess.run([str(a) for a in args], cwd=cwd, env={**e, "PYTHONUNBUFFERED": "1", **(env or {})},
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-3000:])
    return p


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """jsmp's wheel, built (as `pip wheel .` does, without build isolation) from a copy of the clone's
    sources, so that no build/ or egg-info lands in the clone."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():  # jsmp/conf stays a symlink to ../conf, as in the clone
            shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, src], src)
    (whl,) = dist.glob("jsmp-*.whl")
    return whl


def test_wheel_holds_every_config_the_plugins_and_the_console_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(n.removeprefix("jsmp/conf/") for n in names if n.startswith("jsmp/conf/"))
    assert shipped == sorted(str(f.relative_to(ROOT / "conf")) for f in (ROOT / "conf").rglob("*.yaml"))
    assert "hydra_plugins/jsmp_optuna_sweeper/sweeper.py" in names and "jsmp/cli.py" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "jsmp = jsmp.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode().splitlines()


def test_installed_wheel_trains_from_another_directory(wheel, tiny_store, tmp_path):
    site = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel], tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(site)}
    where = run([sys.executable, "-c", "import jsmp, hydra_plugins.jsmp_optuna_sweeper as s; print(jsmp.__file__, s.__file__)"],
                work, env).stdout.split()
    assert [Path(f).is_relative_to(site) for f in where] == [True, True], where  # the wheel's copy, not the clone's
    run([sys.executable, "-m", "jsmp", "train", f"data.store={tiny_store}", "trainer.fast_dev_run=true"], work, env)
    (run_dir,) = (work / "logs" / "train" / "runs").iterdir()
    assert (run_dir / "metrics.json").is_file()
    sources = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.config_sources
    assert str(site / "jsmp" / "conf") in [s.path for s in sources]


@pytest.mark.slow
def test_fresh_venv_from_the_wheel_trains_evaluates_and_predicts(wheel, tmp_path):
    """`python -m venv; pip install torch==2.13.0 WHEEL`, then the console script only, from other directories."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path)
    py, jsmp = venv / "bin" / "python", venv / "bin" / "jsmp"
    run([py, "-m", "pip", "install", "-q", "torch==2.13.0"], tmp_path, timeout=1200)  # the Makefile's TORCH (CPU build)
    run([py, "-m", "pip", "install", "-q", wheel], tmp_path, timeout=1200)
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    run([jsmp, "data", "synth", "--store", "tiny", "--days", "30", "--rows-per-day", "80", "--seed", "3"], work)
    run([jsmp, "data", "synth", "--out", "test.csv", "--test-layout", "--days", "2", "--rows-per-day", "40", "--seed", "4"], work)
    run([jsmp, "train", "data.store=tiny", *TRAIN], work)
    (run_dir,) = (work / "logs" / "train" / "runs").iterdir()
    assert OmegaConf.load(run_dir / "config.yaml").paths.root_dir == str(work)

    # its relative data.store is found from another directory (where the run trained, in .hydra/hydra.yaml)
    ev = run([jsmp, "eval", "--run", run_dir, "--out", other / "eval"], other)
    assert "logged by training at epoch 0" in ev.stdout and (other / "eval" / "daily_pnl.csv").is_file()
    pred = run([jsmp, "predict", "--run", run_dir, "--data", work / "test.csv", "--out", "sub.csv"], other)
    lines = (other / "sub.csv").read_text().splitlines()
    assert lines[0] == "ts_id,action" and len(lines) > 1 and "rows -> sub.csv" in pred.stdout
    assert sorted(f.name for f in other.iterdir()) == ["eval", "sub.csv"]  # nothing else lands in the working dir

    # a sweep: the plugin ships in the wheel, Hydra finds it, trials land under the root
    run([jsmp, "tune", "model=mlp", "data.store=tiny", "hydra.sweeper.n_trials=2", *TRAIN], work)
    sweep = work / "logs" / "train" / "sweeps" / "mlp"
    assert (sweep / "best.yaml").is_file() and set(OmegaConf.load(sweep / "optimization_results.yaml").best_params) == {
        "model.hidden.0", "model.hidden.1", "model/optimizer", "model.optimizer.lr"}  # (max_epochs: fixed by TRAIN)
