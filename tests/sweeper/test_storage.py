"""What the sweeper hands its trial jobs to open the study's storage with Optuna alone
(storage.for_jobs, sweeper._trial_keys): a password-less URL, engine kwargs, and for
PostgreSQL the password in PGPASSWORD, never in the config."""

from __future__ import annotations

import os

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from hydra_plugins.jsmp_optuna_sweeper import storage
from hydra_plugins.jsmp_optuna_sweeper._loop import _hydra_value


@pytest.fixture
def env(monkeypatch):
    """No storage password in the environment; a user's own PGPASSWORD of "users-own"."""
    for name in ("JSMP_STORAGE_PASSWORD", "JSMP_STORAGE_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSWORD", "users-own")
    return monkeypatch


def test_sqlite_gets_its_lock_timeout_and_no_password(env, tmp_path):
    env.setenv("JSMP_STORAGE_PASSWORD", "s3cret")
    url = f"sqlite:///{tmp_path}/optuna.db"
    assert storage.for_jobs(url) == {"storage": url, "engine_kwargs": {"connect_args": {"timeout": 60}}}
    assert os.environ["PGPASSWORD"] == "users-own"


def test_postgres_password_goes_to_pgpassword_not_the_url(env, tmp_path):
    url = "postgresql://jsmp@dbhost:5433/jsmp"
    assert storage.for_jobs(url) == {"storage": url, "engine_kwargs": {"connect_args": {"connect_timeout": 10}}}
    assert os.environ["PGPASSWORD"] == "users-own"  # none of ours: libpq's own is kept

    (tmp_path / "pw").write_text("from-file\nsecond line\n")
    env.setenv("JSMP_STORAGE_PASSWORD_FILE", str(tmp_path / "pw"))
    assert storage.for_jobs(url)["storage"] == url
    assert os.environ["PGPASSWORD"] == "from-file"

    env.setenv("JSMP_STORAGE_PASSWORD", "s3cret")  # wins over the file, as in the sweeper's own URL
    assert storage.for_jobs(f"{url}?connect_timeout=3") == {"storage": f"{url}?connect_timeout=3", "engine_kwargs": {}}
    assert os.environ["PGPASSWORD"] == "s3cret"


def test_another_server_with_our_password_is_one_line(env):
    assert storage.for_jobs("mysql://u@h/db") == {"storage": "mysql://u@h/db", "engine_kwargs": {}}
    env.setenv("JSMP_STORAGE_PASSWORD", "s3cret")
    # (storage.StorageError looked up now: Hydra's plugin scan re-executes the plugin's modules)
    with pytest.raises(storage.StorageError, match=r"^hydra.sweeper.storage=mysql://u@h/db: JSMP_STORAGE_PASSWORD and "
                                           r"JSMP_STORAGE_PASSWORD_FILE reach the trial jobs for PostgreSQL only"):
        storage.for_jobs("mysql://u@h/db")


@pytest.mark.parametrize("value", [
    "mlp", "2024", "null", "true", "it's a \\ study", "ends\\", "a\\'b", "a\\\\'b\\\\",
    "sqlite:////tmp/o'brien/sweeps/optuna.db", "postgresql://jsmp@127.0.0.1:5432/jsmp?sslmode=require",
    7, 2.5, {"connect_args": {"timeout": 60}}, {"connect_args": {"connect_timeout": 10, "options": "-c x=1"}}, {},
])
def test_trial_keys_reach_the_job_config_unchanged(value):
    """Each `+optuna_trial.KEY=VALUE` override parses back to the value the sweeper meant
    (a study named 2024 stays a string)."""
    override = OverridesParser.create().parse_override(f"+optuna_trial.key={_hydra_value(value)}")
    assert override.value() == value and type(override.value()) is type(value)
