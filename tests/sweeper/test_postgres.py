"""The multi-machine sweep of the README against a real PostgreSQL server, started here on
127.0.0.1 (a temp data dir, a free port, password auth for a role with a password).

Needs PostgreSQL's server binaries (initdb, pg_ctl; Debian: apt-get install postgresql, which
`make test-slow` ensures) and the driver (`pip install 'jsmp[postgres]'`, which the make
targets install); skipped without them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from test_sweep import FINISHED, tune_args

from conftest import ROOT
from hydra_plugins.jsmp_optuna_sweeper._loop import _counted

pytestmark = pytest.mark.slow


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return shutil.which(name) or (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server(user: str = "jsmp", db: str = "jsmp"):
    """A PostgreSQL server on 127.0.0.1:<free port> with role `user` (a random password) owning
    database `db`; stopped and removed on exit. initdb refuses root: as root it runs as `postgres`
    (or `nobody`)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; `make test-slow` does)")
    psycopg = pytest.importorskip("psycopg", reason="pip install 'jsmp[postgres]'")
    run_as = {}
    if os.geteuid() == 0:
        name = next((n for n in ("postgres", "nobody") if _has_user(n)), None)
        if name is None:
            pytest.skip("initdb refuses root, and there is no postgres or nobody user to run it as")
        pw = pwd.getpwnam(name)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    base = Path(tempfile.mkdtemp(prefix="jsmp-pg-"))  # not under pytest's root-only tmp dirs
    data, su_pw, password = base / "data", secrets.token_urlsafe(12), "pw-" + secrets.token_urlsafe(16)
    (base / "pwfile").write_text(su_pw + "\n")
    if run_as:
        for p in (base, base / "pwfile"):
            os.chown(p, run_as["user"], run_as["group"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    port = _free_port()

    def pg(*cmd):
        return subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True, timeout=120, check=False, **run_as)

    try:
        p = pg(initdb, "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={base / 'pwfile'}",
               "-E", "UTF8", "--no-sync")
        assert p.returncode == 0, p.stdout + p.stderr
        p = pg(pg_ctl, "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60",
               "-o", f"-h 127.0.0.1 -p {port} -k {base} -F", "start")
        assert p.returncode == 0, p.stdout + p.stderr + (base / "server.log").read_text()
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=su_pw, dbname="postgres",
                                 autocommit=True) as conn:
                from psycopg import sql

                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user),
                                                                                sql.Literal(password)))
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(user)))
            yield SimpleNamespace(host="127.0.0.1", port=port, user=user, db=db, password=password,
                                  url=f"postgresql://{user}@127.0.0.1:{port}/{db}")
        finally:
            pg(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def clean_env(tmp_path, **extra) -> dict:
    """The environment of a user's run: no libpq variables, no password unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and not k.startswith("JSMP_STORAGE")}
    return {**env, "JSMP_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1", **extra}


def run(args, env, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_two_machines_share_a_postgres_study_and_finish_exactly_n_trials(postgres, tiny_store, tmp_path):
    """The README's several-machines sweep: the same command, a driver-less postgresql:// URL
    without the password (it is in JSMP_STORAGE_PASSWORD), a different seed and sweep dir each."""
    env = clean_env(tmp_path, JSMP_STORAGE_PASSWORD=postgres.password)
    procs = [
        subprocess.Popen([sys.executable, *tune_args(tiny_store, tmp_path / f"m{i}", 6, "trainer.max_epochs=3",
                                                     f"hydra.sweeper.storage={postgres.url}",
                                                     f"hydra.sweeper.sampler.seed={i}")],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    storage = f"postgresql+psycopg://{postgres.user}:{postgres.password}@127.0.0.1:{postgres.port}/{postgres.db}"
    done = optuna.load_study(study_name="mlp", storage=storage).get_trials()
    counted = _counted(done)
    assert len(counted) == 6 and all(t.state in FINISHED for t in counted)
    assert len({t.user_attrs["worker"] for t in counted}) == 2  # both machines took part
    assert sum(len(list((tmp_path / f"m{i}" / "sweep").glob("trial-*"))) for i in range(2)) == 6  # jobs run
    assert any("best value:" in out for out, _ in outs)


def test_wrong_or_missing_password_is_one_line_without_the_password(postgres, tiny_store, tmp_path):
    for extra in ({}, {"JSMP_STORAGE_PASSWORD": "not-" + postgres.password}):
        p = run(tune_args(tiny_store, tmp_path, 1, f"hydra.sweeper.storage={postgres.url}"), clean_env(tmp_path, **extra))
        assert p.returncode == 2, p.stderr[-3000:]
        assert p.stderr.startswith(f"error: hydra.sweeper.storage: cannot connect to {postgres.url} (")
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
        assert "password" in p.stderr and "not-" not in p.stderr  # e.g. "password authentication failed"
    assert not (tmp_path / "sweep").exists()
