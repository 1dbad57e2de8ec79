"""Stand-in for `kaggle_evaluation.jane_street_inference_server` (jsmp.kaggle.standin.gateway.serve_2024)."""

from __future__ import annotations

from collections.abc import Callable

from jsmp.kaggle.standin.gateway import GatewayError, data_dir, serve_2024


class JSInferenceServer:
    """`JSInferenceServer(predict)`: the gateway calls the endpoint named `predict` (the function's name)."""

    def __init__(self, *endpoints: Callable):
        self.endpoints = {f.__name__: f for f in endpoints}

    def _predict(self) -> Callable:
        if "predict" not in self.endpoints:
            raise GatewayError(f"no endpoint named 'predict' (given: {', '.join(self.endpoints) or 'none'})")
        return self.endpoints["predict"]

    def serve(self) -> None:
        """The scoring rerun: the gateway serves the competition folder's test.parquet and lags.parquet."""
        print(f"stand-in gateway: scoring rerun over {data_dir()}", flush=True)
        serve_2024(self._predict(), data_dir() / "test.parquet", data_dir() / "lags.parquet")

    def run_local_gateway(self, data_paths: tuple | None = None, file_share_dir=None) -> None:
        """A local run over `data_paths` (test, lags), by default the competition folder's."""
        test, lags = (
            data_paths if data_paths is not None else (data_dir() / "test.parquet", data_dir() / "lags.parquet")
        )
        print(f"stand-in gateway: local run over {test}, {lags}", flush=True)
        serve_2024(self._predict(), test, lags)
