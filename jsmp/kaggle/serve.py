"""What a bundle's submission.py runs (docs/kaggle.md): the bundle's runs, one Predictor (a run or an
ensemble, with online learning when the bundle asks for it), served through the competition's scoring API.

- 2024 (a StepPredictor): `kaggle_evaluation.jane_street_inference_server.JSInferenceServer(predict)`,
  `predict(test, lags)` being Predictor.predict_batch (polars in, polars out); `serve()` when
  $KAGGLE_IS_COMPETITION_RERUN is set (the scoring rerun), else `run_local_gateway((test, lags))` over the
  competition folder's test.parquet and lags.parquet.
- 2021 (a RowPredictor): `env = janestreet.make_env()`, each `(test_df, sample_prediction_df)` of
  `env.iter_test()` answered with Predictor.predict_row and `env.predict(sample_prediction_df)`.

The competition folder is $JSMP_KAGGLE_DATA, else Kaggle's input folder of the competition (COMPETITION_DIRS);
an API module not importable as is is looked for there.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from jsmp.errors import UserError, exit_on_user_error
from jsmp.kaggle import DATA_ENV
from jsmp.predict.online import OnlineConfig
from jsmp.predict.predictor import Predictor
from jsmp.predict.steps import StepPredictor

MANIFEST = "kaggle.json"
VERSION = 1  # of the manifest
COMPETITION_DIRS = {
    "2024": "/kaggle/input/jane-street-real-time-market-data-forecasting",
    "2021": "/kaggle/input/jane-street-market-prediction",
}


def read_manifest(bundle: Path) -> dict:
    """The bundle's kaggle.json (written by jsmp.kaggle.bundle); a one-line UserError when it is not one."""
    path = bundle / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(
            f"{path}: cannot read it ({getattr(e, 'strerror', None) or e}); expected the folder "
            f"`jsmp kaggle bundle` wrote"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION or not manifest.get("runs"):
        raise UserError(
            f"{path}: not a version-{VERSION} bundle manifest (version, runs, ...); rebundle with this jsmp"
        )
    return manifest


def load(bundle: str | os.PathLike) -> Predictor:
    """The Predictor of the bundle's runs, as its manifest lists them (checkpoints verified as they load)."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    online = OnlineConfig(**manifest["online"]) if manifest.get("online") is not None else None
    return Predictor([bundle / r for r in manifest["runs"]], online=online, threads=manifest.get("threads", 1))


def data_dir(competition: str) -> Path:
    return Path(os.environ.get(DATA_ENV) or COMPETITION_DIRS[competition])


def api(module: str, competition: str):
    """The scoring API's module, importable as is or from the competition folder."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not module.startswith(e.name):
            raise
    where = data_dir(competition)
    sys.path.append(str(where))
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise UserError(
            f"cannot import {module}: not installed and not in {where}; add the competition's data to "
            f"the notebook (or set ${DATA_ENV} to its folder)"
        ) from None


def predict_fn(predictor: StepPredictor) -> Callable:
    """The 2024 endpoint: the gateway calls it by its name, `predict`."""

    def predict(test, lags):
        return predictor.predict_batch(test, lags)

    return predict


def serve_2024(predictor: StepPredictor) -> None:
    server = api("kaggle_evaluation.jane_street_inference_server", "2024").JSInferenceServer(predict_fn(predictor))
    if os.getenv("KAGGLE_IS_COMPETITION_RERUN"):
        server.serve()
    else:
        where = data_dir("2024")
        server.run_local_gateway((str(where / "test.parquet"), str(where / "lags.parquet")))


def row_of(test_df):
    """The row predict_row reads from the API's 1-row test_df: itself when it has a ts_id column, else its
    values with its index as ts_id."""
    if "ts_id" in test_df.columns:
        return test_df
    return {**dict(zip(test_df.columns, test_df.to_numpy()[0])), "ts_id": test_df.index[0]}


def serve_2021(predictor: Predictor) -> None:
    env = api("janestreet", "2021").make_env()
    for test_df, sample_prediction_df in env.iter_test():
        sample_prediction_df.action = predictor.predict_row(row_of(test_df))
        env.predict(sample_prediction_df)


@exit_on_user_error
def main(bundle: str | os.PathLike) -> None:
    """Serve the bundle in folder `bundle` through its competition's API (submission.py's one call)."""
    predictor = load(bundle)
    (serve_2024 if isinstance(predictor, StepPredictor) else serve_2021)(predictor)
