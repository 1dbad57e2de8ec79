"""What a trained model needs from training to see new rows as it saw training rows.

`InputSpec` (feature list, NaN fill mode and values, window) is written by training into the
run dir as `preprocess.json`; inference reads it back. `OnlineFill` applies the fill one row
at a time and `fill_rows` to a whole block of rows; both give exactly the training fill:

- mean: a NaN becomes the feature's training mean;
- zero: a NaN becomes 0;
- ffill: a NaN becomes the feature's last value seen earlier on the same day (any row,
  weight 0 included, as in the store's forward-fill cache), else its training mean.
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
from jsmp.errors import UserError
from jsmp.files import write_text_atomic

PREPROCESS = "preprocess.json"


@dataclass(frozen=True)
class InputSpec:
    """features: the model's input columns, in order. fill: a `data.fill` mode. fill_value:
    (n_features,) the value for NaNs the fill leaves (training means; zeros for 'zero'). window: {length, cross_days} for
    sequence models, None for row models."""

    features: list[str]
    fill: str
    fill_value: list[float]
    window: dict | None = None

    @property
    def values(self) -> np.ndarray:
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
    required = keys - {"window"}
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
    return {"features": features, "fill": fill, "fill_value": [float(v) for v in values], "window": window}


def fill_rows(x: np.ndarray, day_starts: np.ndarray, prep: InputSpec) -> np.ndarray:
    """Fill the NaNs of consecutive rows x (n, F) (in place when writable); `day_starts`: the
    ascending rows (incl. 0) where a day begins (x's first row always starts one)."""
    if prep.fill == "ffill":
        x = ffill_days(x, day_starts)
    return fill_nan(x, prep.values)


class OnlineFill:
    """Fills one row at a time, as `fill_rows` fills them all: `__call__(x, new_day)` fills
    the (F,) float32 row x in place; `new_day` says the row starts a day."""

    def __init__(self, prep: InputSpec):
        self.ffill = prep.fill == "ffill"
        self.value = prep.values
        self.last = np.full(len(prep.features), np.nan, dtype=np.float32)  # ffill: today's last values

    def reset(self) -> None:
        self.last.fill(np.nan)

    def __call__(self, x: np.ndarray, new_day: bool) -> np.ndarray:
        if self.ffill:
            if new_day:
                self.last.fill(np.nan)
            np.copyto(self.last, x, where=~np.isnan(x))
            np.copyto(x, self.last)
        np.copyto(x, self.value, where=np.isnan(x))
        return x
