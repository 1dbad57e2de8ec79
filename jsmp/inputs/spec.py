"""`InputSpec`: the whole input contract of a trained model, saved with its run as preprocess.json.

Built once by the data side (jsmp.batches.datamodule, at set-up), used by its batches, saved into the
run dir and read back by serving (jsmp.predict), which takes everything it needs from it: features
(lags among them), fills, window, instruments, targets and task. The file is versioned (`version`
2); a version-1 file (no `version` key: every run trained before) is upgraded on loading, its lag
features by name (jsmp.data.schema `is_lag`) and its targets, task and loss weight from the run (the caller's `legacy`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import KW_ONLY, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from jsmp.data.schema import FEATURE_LIMIT, is_lag
from jsmp.errors import UserError
from jsmp.files import write_text_atomic
from jsmp.inputs.fill import FILLS
from jsmp.inputs.weights import SAMPLE_WEIGHTS
from jsmp.inputs.windows import WindowSpec

PREPROCESS = "preprocess.json"
VERSION = 2
TASKS = ("action", "regression")  # data.task (jsmp.models.tasks.TASKS: the same names)


def forward_filled(features: list[str], lag_features: list[str], fill: str) -> list[str]:
    """The features `fill` forward-fills: the store's (the non-lag ones) for ffill, none otherwise."""
    return features[: len(features) - len(lag_features)] if fill == "ffill" else []


@dataclass(frozen=True)
class InputSpec:
    """How a model's input rows are made from store rows; the fields are preprocess.json's keys."""

    features: list[str]
    """Every model input column, in order: the store's features, then the lag features."""
    fill: str
    """The NaN fill rule: a `data.fill` mode (jsmp.inputs.fill.FILLS)."""
    fill_value: list[float]
    """(n_features,) the value for the NaNs the rule leaves: training means; zeros for 'zero'."""
    window: dict | None = None
    """{length, cross_days} of a sequence model's windows (docs/sequence-models.md); None for row models."""
    group: str | None = None
    """The instrument column of a grouped (2024-layout) store, whose windows and fills are per instrument;
    None for the 2021 layout's one global order."""
    feature_limit: float = FEATURE_LIMIT
    """Serving refuses a feature value beyond ±feature_limit: the limit the store's values were checked
    against at ingest (`--feature-limit`; runs and stores from before it: schema.FEATURE_LIMIT)."""
    _: KW_ONLY
    targets: list[str]
    """The run's `data.targets`: one model output each; the first is the served prediction's column."""
    task: str
    """The run's `data.task`: 'action' (trade probabilities) or 'regression' (the targets' values)."""
    ffill: list[str]
    """The features forward-filled within a day (and instrument) before the fill values: the leading
    (store) features when fill is 'ffill', else []."""
    lag_features: list[str] = field(default_factory=list)
    """The trailing features that are lags (`responder_N_lag_1`: jsmp.inputs.lags); [] without."""
    day: bool = False
    """The model reads whole dates, (time_ids x instruments x features) each (day samples:
    jsmp.batches.days), not rows or windows; a grouped store's only, without a window."""
    time_ids: list[int] | None = None
    """A day run's time grid: the training store's time_id values in rank order (jsmp.inputs.daygrid.time_grid;
    a time_id's time of day is its rank / len(time_ids)); None otherwise (and not written then)."""
    sample_weight: str | None = field(default="weight", compare=False)
    """The run's `data.sample_weight`: each row's weight in the loss (jsmp.inputs.weights.SAMPLE_WEIGHTS:
    'weight' the competition's, 'abs_resp_mean'), None unweighted; online learning weighs its fine-tune's
    rows the same way. Not an input rule, so not compared: specs are equal when they make the same inputs
    (a resume checks data.sample_weight against the run's config.yaml, jsmp.run.rundir). A version-1 file's is its run's config.yaml data.sample_weight (`legacy`); a version-2 file
    written before it was recorded reads as 'weight' (what online learning used then)."""
    version: int = VERSION
    """The preprocess.json format: 2; a file without it is version 1, upgraded by `load`."""

    @property
    def values(self) -> np.ndarray:
        """fill_value as (n_features,) float32."""
        return np.asarray(self.fill_value, dtype=np.float32)

    @property
    def window_spec(self) -> WindowSpec | None:
        return None if self.window is None else WindowSpec(**self.window)

    @property
    def store_features(self) -> list[str]:
        """The features read from the store (or a test row): all but the trailing lag features."""
        return self.features[: len(self.features) - len(self.lag_features)]

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON (version first), atomically (float32 values round-trip exactly through JSON's doubles)."""
        state = asdict(self)
        state = {"version": state.pop("version"), **state}
        if state["time_ids"] is None:  # (files of runs without a time grid stay as they were)
            del state["time_ids"]
        write_text_atomic(path, json.dumps(state, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike, legacy: Callable[[], tuple[list[str], str, str | None]] | None = None) -> InputSpec:
        """Read a preprocess.json; anything but what `save` writes (edited by hand: wrong keys, types or
        lengths, non-finite fill values) is a one-line UserError naming the file. A version-1 file is
        upgraded: `legacy()` gives the (targets, task, sample_weight) it did not record (the run's config.yaml
        data.targets and data.sample_weight and its checkpoint's task, jsmp.predict.model); without `legacy` it is
        refused."""
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
        if isinstance(state, dict) and "version" not in state:
            state = _upgraded(state, path, legacy)
        return cls(**_checked(state, path))


def _upgraded(state: dict, path: Path, legacy) -> dict:
    """A version-1 file's keys as version 2's: lags by name, ffill by the fill rule, targets, task and sample_weight
    from `legacy`."""
    if legacy is None:
        raise UserError(f"{path}: a version-1 {PREPROCESS} (written before jsmp recorded targets and task); "
                        f"serve or evaluate the run (jsmp.predict reads them from its config.yaml and checkpoint)")
    features = state.get("features")
    if not isinstance(features, list):  # refused by _checked, with the message of any bad file
        return state
    lags = [f for f in features if isinstance(f, str) and is_lag(f)]
    targets, task, sample_weight = legacy()
    return {**state, "version": VERSION, "lag_features": lags, "ffill": forward_filled(features, lags, state.get("fill")),
            "targets": list(targets), "task": task, "sample_weight": sample_weight}


def _names(value) -> bool:
    return isinstance(value, list) and all(isinstance(f, str) and f for f in value)


def _checked(state, path: Path) -> dict:
    """`state` (parsed JSON) as InputSpec keyword arguments, or a UserError saying what is wrong."""
    def bad(what: str) -> UserError:
        return UserError(f"{path}: not a valid {PREPROCESS}: {what} (it is written by training; "
                         f"restore the run's original file)")

    keys = {f.name for f in fields(InputSpec) if f.name != "_"}
    required = keys - {"window", "group", "feature_limit", "day", "time_ids", "sample_weight"}
    if not isinstance(state, dict):
        raise bad(f"expected a JSON object with keys {sorted(keys)}, got {type(state).__name__}")
    if state.get("version") != VERSION:
        raise bad(f"version must be {VERSION} (or absent: version 1), got {state.get('version')!r}")
    if unknown := sorted(set(state) - keys):
        raise bad(f"unknown key(s) {unknown}")
    if missing := sorted(required - set(state)):
        raise bad(f"missing key(s) {missing}")
    features, fill, values = state["features"], state["fill"], state["fill_value"]
    if not _names(features) or not features:
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
    lags, ffill, targets, task = state["lag_features"], state["ffill"], state["targets"], state["task"]
    if not _names(lags) or (lags and features[-len(lags):] != lags):
        raise bad(f"lag_features must be the trailing features (a list of names), got {lags!r}")
    if not _names(ffill) or features[: len(ffill)] != ffill or len(ffill) > len(features) - len(lags) \
            or (ffill and fill != "ffill"):
        raise bad(f"ffill must list the leading features, none of them a lag feature (none unless fill is 'ffill'), "
                  f"got {ffill!r}")
    if not _names(targets) or not targets:
        raise bad(f"targets must be a non-empty list of column names, got {targets!r}")
    if task not in TASKS:
        raise bad(f"task must be one of {list(TASKS)}, got {task!r}")
    window = state.get("window")
    if window is not None and (
            not isinstance(window, dict) or set(window) != {"length", "cross_days"}
            or isinstance(window["length"], bool) or not isinstance(window["length"], int)
            or window["length"] < 1 or not isinstance(window["cross_days"], bool)):
        raise bad(f"window must be null or {{\"length\": int >= 1, \"cross_days\": bool}}, got {window!r}")
    group = state.get("group")
    if group is not None and not (isinstance(group, str) and group):
        raise bad(f"group must be null or a column name, got {group!r}")
    day = state.get("day", False)
    if not isinstance(day, bool) or (day and (group is None or window is not None)):
        raise bad(f"day must be false, or true for a grouped store's run without a window, got {day!r}")
    time_ids = state.get("time_ids")
    if time_ids is not None and (not day or not isinstance(time_ids, list) or not time_ids
                                 or any(isinstance(t, bool) or not isinstance(t, int) for t in time_ids)
                                 or any(a >= b for a, b in zip(time_ids, time_ids[1:]))):
        raise bad(f"time_ids must be null, or for a day run an ascending non-empty list of integers, got {time_ids!r}")
    sample_weight = state.get("sample_weight", "weight")
    if sample_weight is not None and sample_weight not in SAMPLE_WEIGHTS:
        raise bad(f"sample_weight must be null or one of {list(SAMPLE_WEIGHTS)}, got {sample_weight!r}")
    limit = state.get("feature_limit", FEATURE_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit < math.inf:
        raise bad(f"feature_limit must be a number > 0, got {limit!r}")
    return {"features": features, "fill": fill, "fill_value": [float(v) for v in values], "window": window, "group": group,
            "feature_limit": float(limit), "targets": targets, "task": task, "ffill": ffill, "lag_features": lags, "day": day,
            "time_ids": time_ids, "sample_weight": sample_weight}
