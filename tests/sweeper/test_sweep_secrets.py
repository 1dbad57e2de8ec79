"""A sweep storage's password never reaches the disk: not in configs, Hydra's files, TensorBoard
hparams or event files, logs or the study. It is given in the environment (JSMP_STORAGE_PASSWORD
or JSMP_STORAGE_PASSWORD_FILE); a URL that carries one is refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
from test_postgres import clean_env, postgres_server
from test_sweep import tune_args

from conftest import ROOT, train_in_process

PASSWORD = "Sw0rdfish-s3cret"


def files_holding(root: Path, secret: str, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Every file under `root` (binary ones included) whose bytes contain `secret` or its URL-quoted form."""
    needles = {secret.encode(), quote(secret, safe="").encode()}
    return [p for p in sorted(root.rglob("*"))
            if p.is_file() and p not in skip and any(n in p.read_bytes() for n in needles)]


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-3000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("url", [
    f"postgresql://jsmp:{PASSWORD}@127.0.0.1:1/jsmp",
    f"postgresql+psycopg://jsmp:{PASSWORD}@127.0.0.1:1/jsmp",
    f"'postgresql://jsmp@127.0.0.1:1/jsmp?password={PASSWORD}'",  # quoted for Hydra: it has a =
])
def test_password_in_the_command_line_url_is_refused_before_anything_is_written(url, tiny_store, tmp_path):
    p = train_in_process(tune_args(tiny_store, tmp_path, 2, f"hydra.sweeper.storage={url}")[1:], {"JSMP_ROOT": str(tmp_path)},
                         "tune.py")
    line = one_error_line(p)
    assert line.startswith("error: hydra.sweeper.storage=postgresql") and "the URL holds a password" in line
    assert "JSMP_STORAGE_PASSWORD" in line
    assert PASSWORD not in p.stdout + p.stderr and quote(PASSWORD) not in p.stderr
    assert not (tmp_path / "sweep").exists()
    assert files_holding(tmp_path, PASSWORD) == []


def test_password_in_a_search_yaml_is_refused_before_anything_is_written(tiny_store, tmp_path):
    conf = tmp_path / "myconf" / "hparams_search"
    conf.mkdir(parents=True)
    (conf / "shared.yaml").write_text(
        "# @package _global_\ndefaults:\n  - mlp\nhydra:\n  sweeper:\n"
        f"    storage: postgresql://jsmp:{PASSWORD}@dbhost/jsmp\n")
    p = train_in_process(["--config-dir", str(tmp_path / "myconf"), "hparams_search=shared", *tune_args(tiny_store, tmp_path, 2)[1:]],
                         {"JSMP_ROOT": str(tmp_path)}, "tune.py")
    line = one_error_line(p)
    assert "postgresql://jsmp:***@dbhost/jsmp" in line and "JSMP_STORAGE_PASSWORD" in line
    assert PASSWORD not in p.stdout + p.stderr
    assert not (tmp_path / "sweep").exists()
    assert files_holding(tmp_path, PASSWORD, skip=(conf / "shared.yaml",)) == []


@pytest.mark.slow
def test_a_sweep_on_a_password_protected_postgres_writes_the_password_nowhere(tiny_store, tmp_path):
    """A whole sweep (2 trials, the default TensorBoard logger and callbacks, 2 worker processes)
    against a real server with password auth; the password comes from a file named by
    JSMP_STORAGE_PASSWORD_FILE. Then every file the sweep left, and its output, is searched for it."""
    with postgres_server() as pg:
        secret_dir = tmp_path.parent / f"{tmp_path.name}-secret"  # outside everything searched
        secret_dir.mkdir()
        (secret_dir / "pw").write_text(pg.password + "\n")
        env = clean_env(tmp_path / "root", JSMP_STORAGE_PASSWORD_FILE=str(secret_dir / "pw"))
        args = [a for a in tune_args(tiny_store, tmp_path, 2, f"hydra.sweeper.storage={pg.url}", "hydra.sweeper.n_jobs=2")
                if a not in ("logger=none", "callbacks=none", "+trainer.enable_progress_bar=false")]
        p = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                           check=False)
        assert p.returncode == 0, p.stderr[-3000:]
        storage = f"postgresql+psycopg://{pg.user}:{quote(pg.password, safe='')}@{pg.host}:{pg.port}/{pg.db}"
        study = optuna.load_study(study_name="mlp", storage=storage)
        trials = study.get_trials()
        storage_obj = study._storage  # the study's own attrs, as any worker or the dashboard sees them
        attrs = json.dumps([study.user_attrs, storage_obj.get_study_system_attrs(study._study_id),
                            *[[t.user_attrs, t.system_attrs, t.params] for t in trials]], default=str)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    sweep = tmp_path / "sweep"
    written = [p for p in sweep.rglob("*") if p.is_file()]
    # the places the password used to leak into are there: Hydra's files and config.yaml hold the
    # password-less URL; TensorBoard's hparams leave the sweep's plumbing (optuna_trial.*) out altogether
    assert any(p.name.startswith("events.out.tfevents") for p in written)
    assert any(p.name == "hparams.yaml" for p in written)
    assert pg.url in (sweep / "trial-0" / ".hydra" / "hydra.yaml").read_text()
    assert pg.url in (sweep / "trial-0" / "config.yaml").read_text()
    assert pg.url not in (sweep / "trial-0" / "tensorboard" / "hparams.yaml").read_text()
    # ... and nothing anywhere holds the password
    assert files_holding(tmp_path, pg.password, skip=(secret_dir / "pw",)) == []
    assert pg.password not in p.stdout + p.stderr + attrs
