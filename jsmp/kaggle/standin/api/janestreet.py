"""Stand-in for the 2021 `janestreet` module (jsmp.kaggle.standin.gateway.Env2021): `make_env()` serves the
competition folder's example_test.csv."""

from __future__ import annotations

from jsmp.kaggle.standin.gateway import Env2021, data_dir


def make_env() -> Env2021:
    return Env2021(data_dir() / "example_test.csv")
