"""Opening a study's storage in the sweeper, handing it to the trial jobs, and keeping its
password off the disk.

The storage URL travels through Hydra's configs (`hydra.sweeper.storage`, each trial's
`optuna_trial.storage`), which Hydra and the jobs write into every run dir, so it must never
hold a password. The password comes from the environment instead:

    JSMP_STORAGE_PASSWORD=...            the password itself
    JSMP_STORAGE_PASSWORD_FILE=PATH      a file holding it (one line; the first one counts)

(for PostgreSQL, libpq's own PGPASSWORD and ~/.pgpass work as well: psycopg reads them).
The sweeper adds it to the URL in memory only, with SQLAlchemy's URL API (`open_storage`);
a trial job, which opens the storage with Optuna alone (`for_jobs`), finds it in PGPASSWORD,
which the sweeper sets in the environment its jobs inherit. A URL that carries a password
(`user:PASSWORD@host`, or `?password=`) is refused by `check_url` before anything is written.

Hydra's plugin scan imports this module on every run: SQLAlchemy and Optuna are imported in
the functions that use them.
"""

from __future__ import annotations

import os
import random
import time
from typing import TYPE_CHECKING, Any

from .errors import SweepError, redact

if TYPE_CHECKING:
    import optuna
    from sqlalchemy.engine import URL

KEY = "hydra.sweeper.storage"
PASSWORD_ENV = "JSMP_STORAGE_PASSWORD"
PASSWORD_FILE_ENV = "JSMP_STORAGE_PASSWORD_FILE"
# query parameters through which a driver would take a password (libpq, mysqlclient, pymysql)
PASSWORD_QUERY_KEYS = ("password", "passwd")
# the pip extra of this project that brings a backend's driver
EXTRAS = {"postgresql": "pip install 'jsmp[postgres]'"}
CONNECT_TIMEOUT_S = 10

HOW = (f"give the URL without it and the password in the environment: {PASSWORD_ENV}=... "
       f"(or {PASSWORD_FILE_ENV}=PATH; for PostgreSQL also PGPASSWORD or ~/.pgpass)")


class StorageError(SweepError):
    """A storage URL or database the user must fix; the message is one line without the password."""


def parse_url(url: Any) -> URL:
    """`url` as a SQLAlchemy URL, or a StorageError naming what was expected."""
    if not isinstance(url, str) or not url.strip():
        raise StorageError(f"{KEY}={url!r}: expected a database URL, e.g. sqlite:///PATH/optuna.db or "
                           "postgresql://USER@HOST/DB")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError) as e:
        raise StorageError(f"{KEY}={redact(url)}: not a database URL ({redact(e)}); expected e.g. "
                           "sqlite:///PATH/optuna.db or postgresql://USER@HOST[:PORT]/DB") from None


def check_url(url: Any) -> URL:
    """Refuse a URL that is not one, carries a password, or whose driver is not installed."""
    u = parse_url(url)
    if u.password or any(k in u.query for k in PASSWORD_QUERY_KEYS):
        raise StorageError(f"{KEY}={redact(url)}: the URL holds a password, which would be written into "
                           f"every run dir's config; {HOW}")
    _engine(with_driver(u)).dispose()  # imports the driver: a missing one is reported before any trial
    return u


def password() -> str | None:
    """The storage password from the environment (JSMP_STORAGE_PASSWORD, else the file named by
    JSMP_STORAGE_PASSWORD_FILE), or None."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    path = os.environ.get(PASSWORD_FILE_ENV)
    if not path:
        return None
    try:
        with open(path) as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise StorageError(f"{PASSWORD_FILE_ENV}={path}: cannot read the storage password file "
                           f"({e.strerror})") from None


def with_password(u: URL) -> URL:
    """`u` with the environment's password added (in memory only) when it has none; SQLite has none."""
    pw = password()
    if pw is None or u.password or u.get_backend_name() == "sqlite":
        return u
    return u.set(password=pw)


def with_driver(u: URL) -> URL:
    """A driver-less `postgresql://` uses psycopg 3 (`pip install 'jsmp[postgres]'`), as SQLAlchemy
    >= 2.1 does by default; older SQLAlchemy would pick psycopg2."""
    return u.set(drivername="postgresql+psycopg") if u.drivername == "postgresql" else u


def display(u: URL | str) -> str:
    """The URL as it may be printed and logged: any password as ***."""
    from sqlalchemy.engine import make_url

    return (make_url(u) if isinstance(u, str) else u).render_as_string(hide_password=True)


def _engine_kwargs(u: URL) -> dict:
    # SQLite: several local workers and their jobs write to the same file: wait up to a minute
    # for a lock instead of 5 s. PostgreSQL: an unreachable host fails within seconds, not minutes.
    if u.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 60}}
    if u.get_backend_name() == "postgresql" and "connect_timeout" not in u.query:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


def _engine(u: URL, **kwargs: Any):
    from sqlalchemy import create_engine
    from sqlalchemy.exc import NoSuchModuleError

    try:
        return create_engine(u, **kwargs)
    except NoSuchModuleError:
        raise StorageError(f"{KEY}={display(u)}: unknown database kind {u.drivername!r}; expected e.g. "
                           "sqlite:///PATH/optuna.db or postgresql://USER@HOST/DB") from None
    except ImportError as e:
        backend = u.get_backend_name()
        how = EXTRAS.get(backend, f"install the Python driver SQLAlchemy uses for {u.drivername}")
        raise StorageError(f"{KEY}={display(u)}: the {backend} driver is not installed ({e}); {how}") from None


def _connect_reason(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return redact("; ".join(lines)[:300]) or type(orig).__name__


def open_storage(url: str, attempts: int = 5, **heartbeat: Any) -> optuna.storages.RDBStorage:
    """An RDBStorage for `url` (a password from the environment added in memory).

    A bad URL, a missing driver or a database that cannot be reached raises a one-line
    StorageError. Workers started together may race to create the schema of a new database
    (one fails with "table ... already exists"); such a failure is retried after a short wait.
    """
    import optuna
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    given = check_url(url)
    u = with_password(with_driver(given))
    kwargs = _engine_kwargs(u)
    probe = _engine(u, **kwargs)
    try:
        with probe.connect():
            pass
    except DBAPIError as e:
        raise StorageError(f"{KEY}: cannot connect to {display(given)} ({_connect_reason(e)})") from None
    finally:
        probe.dispose()
    full = u.render_as_string(hide_password=False)  # RDBStorage takes a string; kept in memory only
    for _ in range(attempts - 1):
        try:
            return optuna.storages.RDBStorage(full, engine_kwargs=kwargs, **heartbeat)
        except SQLAlchemyError:
            time.sleep(0.2 + random.random())
    try:
        return optuna.storages.RDBStorage(full, engine_kwargs=kwargs, **heartbeat)
    except SQLAlchemyError as e:
        raise StorageError(f"{KEY}: cannot open the study storage {display(given)} ({_connect_reason(e)})") from None


def for_jobs(url: str) -> dict[str, Any]:
    """The storage as a trial job opens it with Optuna alone, `optuna.storages.RDBStorage(storage,
    engine_kwargs=engine_kwargs)`: {"storage": the URL (no password; psycopg named where
    SQLAlchemy < 2.1 would pick another driver), "engine_kwargs": the sweeper's own (lock and
    connect timeouts)}.

    A PostgreSQL password from JSMP_STORAGE_PASSWORD(_FILE) is put into this process's PGPASSWORD,
    which the jobs inherit (run in this process by Hydra's basic launcher, or started from it)
    and libpq, under psycopg, reads itself: it never enters a config. No other server driver
    reads a password from the environment, so there a JSMP_STORAGE_PASSWORD is a StorageError.
    """
    given = parse_url(url)
    u = with_driver(given)
    pw = password()
    if pw is not None and u.get_backend_name() == "postgresql":
        os.environ["PGPASSWORD"] = pw
    elif pw is not None and u.get_backend_name() != "sqlite":
        raise StorageError(f"{KEY}={display(given)}: {PASSWORD_ENV} and {PASSWORD_FILE_ENV} reach the trial "
                           f"jobs for PostgreSQL only (as PGPASSWORD); for {u.get_backend_name()} give the "
                           "password through its driver's own configuration")
    # the URL as given where SQLAlchemy picks the same driver for it (>= 2.1 does for postgresql://)
    text = url if u.get_dialect() is given.get_dialect() else u.render_as_string(hide_password=False)
    return {"storage": text, "engine_kwargs": _engine_kwargs(u)}
