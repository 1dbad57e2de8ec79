"""What a trained model needs to see new rows as it saw its training rows (docs/store.md).

`InputSpec` (features, NaN fill rule and values, window) is built once by the data side (the
DataModule, at set-up), used by its batches (jsmp.batches.datamodule.RowBatches), saved into
the run dir as `preprocess.json` and read back by inference (jsmp.predict). `fill_rows` fills a
block of rows and `OnlineFill` one row at a time, both with the rules of jsmp.batches.fill:
exactly what training batches hold.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from jsmp.batches.fill import FILLS, ffill_days, fill_nan
from jsmp.batches.windows import WindowSpec
from jsmp.data.schema import FEATURE_LIMIT
from jsmp.errors import UserError
from jsmp.files import write_text_atomic

PREPROCESS = "preprocess.json"


@dataclass(frozen=True)
class InputSpec:
    """How a model's input rows are made from store rows; the fields are preprocess.json's keys."""

    features: list[str]
    """The model's input columns, in order."""
    fill: str
    """The NaN fill rule: a `data.fill` mode (jsmp.batches.fill.FILLS)."""
    fill_value: list[float]
    """(n_features,) the value for the NaNs the rule leaves: training means; zeros for 'zero'."""
    window: dict | None = None
    """{length, cross_days} of a sequence model's windows (docs/sequence-models.md); None for row models."""
    group: str | None = None
    """The instrument column of a grouped (2024-layout) store, whose windows and fills are per instrument;
    None for the 2021 layout's one global order. Features named `responder_N_lag_1` are lag features
    (jsmp.batches.lags)."""
    feature_limit: float = FEATURE_LIMIT
    """Serving refuses a feature value beyond ±feature_limit: the limit the store's values were checked
    against at ingest (`--feature-limit`; runs and stores from before it: schema.FEATURE_LIMIT)."""

    @property
    def values(self) -> np.ndarray:
        """fill_value as (n_features,) float32."""
        return np.asarray(self.fill_value, dtype=np.float32)

    @property
    def window_spec(self) -> WindowSpec | None:
        return None if self.window is None else WindowSpec(**self.window)

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON, atomically (float32 values round-trip exactly through JSON's doubles)."""
        write_text_atomic(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> InputSpec:
        """Read a preprocess.json; anything but what `save` writes (edited by hand: wrong keys,
        types or lengths, non-finite fill values) is a one-line UserError naming the file."""
        path = Path(path)
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: not found; the run dir must hold the {PREPROCESS} training writes "
                            f"(runs trained before it existed cannot be served)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not a valid {PREPROCESS} (not JSON: {e})") from None
        except OSError as e:
            raise UserError(f"{path}: cannot be read ({e.strerror})") from None
        return cls(**_checked(state, path))


def _checked(state, path: Path) -> dict:
    """`state` (parsed JSON) as InputSpec keyword arguments, or a UserError saying what is wrong."""
    def bad(what: str) -> UserError:
        return UserError(f"{path}: not a valid {PREPROCESS}: {what} (it is written by training; "
                         f"restore the run's original file)")

    keys = {f.name for f in fields(InputSpec)}
    required = keys - {"window", "group", "feature_limit"}
    if not isinstance(state, dict):
        raise bad(f"expected a JSON object with keys {sorted(keys)}, got {type(state).__name__}")
    if unknown := sorted(set(state) - keys):
        raise bad(f"unknown key(s) {unknown}")
    if missing := sorted(required - set(state)):
        raise bad(f"missing key(s) {missing}")
    features, fill, values = state["features"], state["fill"], state["fill_value"]
    if not isinstance(features, list) or not features or not all(isinstance(f, str) and f for f in features):
        raise bad("features must be a non-empty list of column names")
    if len(set(features)) != len(features):
        raise bad("features has duplicate names")
    if fill not in FILLS:
        raise bad(f"fill must be one of {list(FILLS)}, got {fill!r}")
    if not isinstance(values, list) or len(values) != len(features):
        n = len(values) if isinstance(values, list) else type(values).__name__
        raise bad(f"fill_value must be a list of one number per feature ({len(features)}), got {n}")
    for name, v in zip(features, values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(f"fill_value of {name} must be a finite number, got {v!r}")
    window = state.get("window")
    if window is not None and (
            not isinstance(window, dict) or set(window) != {"length", "cross_days"}
            or isinstance(window["length"], bool) or not isinstance(window["length"], int)
            or window["length"] < 1 or not isinstance(window["cross_days"], bool)):
        raise bad(f"window must be null or {{\"length\": int >= 1, \"cross_days\": bool}}, got {window!r}")
    group = state.get("group")
    if group is not None and not (isinstance(group, str) and group):
        raise bad(f"group must be null or a column name, got {group!r}")
    limit = state.get("feature_limit", FEATURE_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit < math.inf:
        raise bad(f"feature_limit must be a number > 0, got {limit!r}")
    return {"features": features, "fill": fill, "fill_value": [float(v) for v in values], "window": window, "group": group,
            "feature_limit": float(limit)}


def fill_rows(x: np.ndarray, day_starts: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Fill the NaNs of consecutive rows x (n, F) (in place when writable and not ffill);
    `day_starts`: the ascending rows (incl. 0) where a day begins."""
    if spec.fill == "ffill":
        x = ffill_days(x, day_starts)
    return fill_nan(x, spec.values)


class OnlineFill:
    """Fills one row at a time, as `fill_rows` fills them all: `__call__(x, new_day)` fills
    the (F,) float32 row x in place; `new_day` says the row starts a day."""

    def __init__(self, spec: InputSpec):
        self.value = spec.values
        self.last = np.full(len(spec.features), np.nan, dtype=np.float32)  # ffill: today's last values
        self.ffill = None
        if spec.fill == "ffill":
            from jsmp.store.kernels import ffill_row

            ffill_row(np.zeros_like(self.last), self.last, True)  # compiled (or loaded) now, not on the first row
            self.ffill = ffill_row

    def reset(self) -> None:
        self.last.fill(np.nan)

    def __call__(self, x: np.ndarray, new_day: bool) -> np.ndarray:
        if self.ffill is not None:
            self.ffill(x, self.last, new_day)
        return fill_nan(x, self.value)
