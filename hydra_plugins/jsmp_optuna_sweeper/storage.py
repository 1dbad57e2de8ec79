"""Opening a study's storage the same way in the sweeper and in the trial jobs."""

from __future__ import annotations

from typing import Any

import optuna


def open_storage(url: str, **heartbeat: Any) -> optuna.storages.RDBStorage:
    """An RDBStorage for `url`; SQLite waits up to a minute for a lock instead of 5 s, as
    several local workers and their jobs write to the same file."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
