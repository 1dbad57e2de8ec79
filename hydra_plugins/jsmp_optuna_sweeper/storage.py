"""Opening a study's storage the same way in the sweeper and in the trial jobs."""

from __future__ import annotations

import random
import time
from typing import Any

import optuna
from sqlalchemy.exc import SQLAlchemyError


def open_storage(url: str, attempts: int = 5, **heartbeat: Any) -> optuna.storages.RDBStorage:
    """An RDBStorage for `url`; SQLite waits up to a minute for a lock instead of 5 s, as
    several local workers and their jobs write to the same file.

    Workers started together may race to create the schema of a new database (one fails
    with "table ... already exists"); such a failure is retried after a short random wait.
    """
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for _ in range(attempts - 1):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except SQLAlchemyError:
            time.sleep(0.2 + random.random())
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
