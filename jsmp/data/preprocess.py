"""What a trained model needs from training to see new rows as it saw training rows.

`Preprocess` (feature list, NaN fill mode and values, window) is written by training into the
run dir as `preprocess.json`; inference reads it back. `OnlineFill` applies the fill one row
at a time and `fill_rows` to a whole block of rows; both give exactly the training fill:

- mean: a NaN becomes the feature's training mean;
- zero: a NaN becomes 0;
- ffill: a NaN becomes the feature's last value seen earlier on the same day (any row,
  weight 0 included, as in the store's forward-fill cache), else its training mean.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jsmp.data.fill import FILLS, ffill_days, fill_nan
from jsmp.data.windows import WindowSpec
from jsmp.errors import UserError

PREPROCESS = "preprocess.json"


@dataclass(frozen=True)
class Preprocess:
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
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocess:
        path = Path(path)
        try:
            state = cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise UserError(f"{path}: not found; the run dir must hold the {PREPROCESS} training writes "
                            f"(runs trained before it existed cannot be served)") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise UserError(f"{path}: not a valid {PREPROCESS} ({e})") from None
        if state.fill not in FILLS or len(state.fill_value) != len(state.features):
            raise UserError(f"{path}: expected fill in {list(FILLS)} and one fill value per feature, "
                            f"got {state.fill!r} and {len(state.fill_value)} values for {len(state.features)} features")
        return state


def fill_rows(x: np.ndarray, day_starts: np.ndarray, prep: Preprocess) -> np.ndarray:
    """Fill the NaNs of consecutive rows x (n, F) (in place when writable); `day_starts`: the
    ascending rows (incl. 0) where a day begins (x's first row always starts one)."""
    if prep.fill == "ffill":
        x = ffill_days(x, day_starts)
    return fill_nan(x, prep.values)


class OnlineFill:
    """Fills one row at a time, as `fill_rows` fills them all: `__call__(x, new_day)` fills
    the (F,) float32 row x in place; `new_day` says the row starts a day."""

    def __init__(self, prep: Preprocess):
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
