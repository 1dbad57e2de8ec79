"""The competitions' column layouts (docs/jsmp.md) and how a file's header maps onto a store: `Layout`,
`plan` (picks the layout from the header: the 2021 train file, the 2024 train file or its lags file;
the header rules: docs/ingest.md)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from jsmp.errors import UserError

N_FEATURES = 130
RESP_COLUMNS = ["resp_1", "resp_2", "resp_3", "resp_4", "resp"]
FEATURE_COLUMNS = [f"feature_{i}" for i in range(N_FEATURES)]
# Order of the real file: date, weight, resp_1..4, resp, feature_0..129, ts_id.
TRAIN_COLUMNS = ["date", "weight", *RESP_COLUMNS, *FEATURE_COLUMNS, "ts_id"]
# example_test.csv (and the rows the scoring API hands over): no returns.
TEST_COLUMNS = ["date", "weight", *FEATURE_COLUMNS, "ts_id"]

# Per-row arrays kept beside the feature matrix, with their store dtypes.
SIDE_DTYPES = {
    "date": "int32",
    "weight": "float32",
    **{name: "float32" for name in RESP_COLUMNS},
    "ts_id": "int64",
}
REQUIRED = ("date", "weight", "resp")  # in a training file; resp_1..4 are optional, ts_id made from row order when absent

# The 2024 layout ("Real-Time Market Data Forecasting"): rows of many instruments side by side in
# (date_id, time_id) order; `date_id` is stored as `date`, so days work as in 2021.
RTMDF_KEYS = ("date_id", "time_id", "symbol_id")
RTMDF_REQUIRED = (*RTMDF_KEYS, "weight")  # in a 2024 train file, with feature_NN and responder_N columns
RTMDF_RENAME = {"date_id": "date"}
RTMDF_GROUP = "symbol_id"
RTMDF_TIME = ["date", "time_id"]
KEY_DTYPES = {"date": "int32", "time_id": "int32", "symbol_id": "int32"}

_FEATURE_RE = re.compile(r"^feature_(\d+)$")
_RESPONDER_RE = re.compile(r"^responder_(\d+)$")  # the 2024 layout's return columns
_RESP_RE = re.compile(r"^resp(_\d+)?$")  # the 2021 layout's: resp, resp_1 .. resp_4
_LAG_RE = re.compile(r"^responder_(\d+)_lag_1$")  # a lag feature: the previous date's responder_N (jsmp.inputs.lags)


def feature_number(name: str) -> int | None:
    """`feature_17` -> 17; anything else -> None."""
    m = _FEATURE_RE.match(name)
    return int(m.group(1)) if m else None


def sorted_features(columns) -> list[str]:
    """The `feature_*` columns among `columns`, ordered by number."""
    feats = [c for c in columns if feature_number(c) is not None]
    return sorted(feats, key=feature_number)


def _numbered(columns, pattern: re.Pattern) -> list[str]:
    """The `columns` that match `pattern`, ordered by the number it captures."""
    return sorted((c for c in columns if pattern.match(c)), key=lambda c: int(pattern.match(c).group(1)))


def is_responder(name: str) -> bool:
    """Whether `name` is a 2024 return column, `responder_N`."""
    return _RESPONDER_RE.match(name) is not None


def responders(columns) -> list[str]:
    """The `responder_N` columns among `columns`, ordered by N."""
    return _numbered(columns, _RESPONDER_RE)


def is_target(name: str) -> bool:
    """Whether `name` is a return column a model may target: `resp` or `resp_N` (2021), `responder_N` (2024)."""
    return _RESP_RE.match(name) is not None or is_responder(name)


def lag_name(responder: str) -> str:
    """The lag feature of a responder: `responder_N` -> `responder_N_lag_1`."""
    return f"{responder}_lag_1"


def responder_of(lag: str) -> str:
    """The responder a lag feature holds: `responder_N_lag_1` -> `responder_N`."""
    return lag.removesuffix("_lag_1")


def is_lag(name: str) -> bool:
    """Whether `name` is a lag feature, `responder_N_lag_1`."""
    return _LAG_RE.match(name) is not None

# Text that reads as NaN in a feature column (an error in the others): pandas' default na_values,
# plus `nan` in every case with either sign, which pandas' float conversion also reads as NaN.
NA_VALUES = sorted(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "None", "n/a", "null"}
    | {sign + "".join(c) for sign in ("", "+", "-") for c in itertools.product("nN", "aA", "nN")}
)
# Integer columns and the range their store dtype holds; symbol_id (the real ids are 0..38) from 0 to
# SYMBOL_MAX, so that (time_id, symbol_id) packs into one int64 key without collisions (jsmp.batches.lags).
SYMBOL_MAX = 2**20 - 1
INT_RANGES = {**dict.fromkeys(["date", *RTMDF_KEYS], (-(2**31), 2**31 - 1)), "symbol_id": (0, SYMBOL_MAX),
              "ts_id": (-(2**63), 2**63 - 1)}
INT_COLUMNS = tuple(INT_RANGES)
# Feature values beyond +-FEATURE_LIMIT are refused (the real features are O(1..100); one 3e38 makes a
# BatchNorm's variance inf and the model a constant): at ingest (`--feature-limit`, recorded in the
# manifest as `feature_limit`) and, with the run's limit, when serving (docs/ingest.md).
FEATURE_LIMIT = 1e6


@dataclass
class Layout:
    """Which of a file's `columns` are read as what: `features` (the order of x's columns) and
    `side` (per-row columns beside them, named as in the file); `ignored` ones are not read.

    For the store writer: `rename` (file name -> store name of a side column), `dtypes` (store
    side column -> dtype, ts_id always among them), `group` (the column whose rows form one
    instrument's series, None for one global order) and `time` (store columns of the row order)."""

    columns: list[str]
    features: list[str]
    side: list[str]
    ignored: list[str]
    rename: dict[str, str] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    time: list[str] = field(default_factory=lambda: ["date"])

    @property
    def read(self) -> list[str]:
        return [*self.side, *self.features]

    def source_name(self, column: str) -> str:
        """The file's name of store side column `column` (`date` -> `date_id` in the 2024 layout)."""
        return next((k for k, v in self.rename.items() if v == column), column)


def _unique(columns: list[str], where: str) -> set[str]:
    seen: dict[str, int] = {}
    for i, c in enumerate(columns, 1):
        if c in seen:
            raise UserError(f"{where}: column {c!r} appears twice in the header (columns {seen[c]} and {i}); expected unique names")
        seen[c] = i
    return set(seen)


def _require(columns: list[str], have: set[str], required, what: str, where: str) -> None:
    if missing := [c for c in required if c not in have]:
        raise UserError(f"{where}: missing required column {missing[0]!r}; expected {what}, got {short(columns)}")


def plan_columns(columns: list[str], where: str) -> Layout:
    """A 2021 training file's layout: its header checked against the schema rules; `where` names the file in messages."""
    seen = _unique(columns, where)
    _require(columns, seen, REQUIRED, f"{', '.join(REQUIRED)} and feature_* columns", where)
    features = sorted_features(columns)
    if not features:
        raise UserError(f"{where}: no feature_* columns in the header; expected feature_0 ... feature_N, got {short(columns)}")
    side = [c for c in SIDE_DTYPES if c in seen]
    ignored = [c for c in columns if c not in side and c not in features]
    return Layout(list(columns), features, side, ignored, dtypes={c: SIDE_DTYPES[c] for c in SIDE_DTYPES if c in side or c == "ts_id"})


def _grouped(columns: list[str], features: list[str], side: list[str]) -> Layout:
    """A 2024-style layout: rows of `symbol_id` instruments in (date, time_id) order; ts_id numbered from row order when absent."""
    side = [*RTMDF_KEYS, *side, *(["ts_id"] if "ts_id" in columns else [])]
    dtypes = {**KEY_DTYPES, **{c: "float32" for c in side if c not in RTMDF_KEYS and c != "ts_id"}, "ts_id": "int64"}
    ignored = [c for c in columns if c not in side and c not in features]
    return Layout(list(columns), features, side, ignored, dict(RTMDF_RENAME), dtypes, RTMDF_GROUP, list(RTMDF_TIME))


RTMDF_NEEDS = f"{', '.join(RTMDF_REQUIRED)}, feature_NN and responder_N columns"
LAGS_NEEDS = f"{', '.join(RTMDF_KEYS)} and responder_N_lag_1 columns"


def plan_rtmdf(columns: list[str], where: str) -> Layout:
    """A 2024 train file's layout (train.parquet): the keys, weight, feature_NN as features and every
    responder_N (at least one) as side columns; partition_id, row_id, is_scored, ... are ignored."""
    seen = _unique(columns, where)
    _require(columns, seen, RTMDF_REQUIRED, RTMDF_NEEDS, where)
    features = sorted_features(columns)
    if not features:
        raise UserError(f"{where}: no feature_NN columns in the header; expected feature_00 ... feature_78, got {short(columns)}")
    found = responders(columns)
    if not found:
        raise UserError(f"{where}: no responder_N columns in the header; expected responder_0 ... responder_8 (any of them), got {short(columns)}")
    return _grouped(columns, features, ["weight", *found])


def plan_lags(columns: list[str], where: str) -> Layout:
    """A 2024 lags file's layout (lags.parquet): the keys as side columns, responder_N_lag_1 as features."""
    seen = _unique(columns, where)
    _require(columns, seen, RTMDF_KEYS, LAGS_NEEDS, where)
    lags = _numbered(columns, _LAG_RE)
    if not lags:
        raise UserError(f"{where}: no responder_N_lag_1 columns in the header; expected responder_0_lag_1 ... responder_8_lag_1, got {short(columns)}")
    return _grouped(columns, lags, [])


def plan(columns: list[str], where: str) -> Layout:
    """The layout a header names: lags when a `*_lag_1` column is there, 2024 when date_id or
    symbol_id is, 2021 when date or resp is; otherwise a one-line error naming what each needs."""
    if any(c.endswith("_lag_1") for c in columns):
        return plan_lags(columns, where)
    if "date_id" in columns or "symbol_id" in columns:
        return plan_rtmdf(columns, where)
    if "date" in columns or "resp" in columns:
        return plan_columns(columns, where)
    raise UserError(f"{where}: no known layout in the header; expected the 2021 train layout ({', '.join(REQUIRED)} and feature_* "
                    f"columns), the 2024 one ({RTMDF_NEEDS}) or its lags file ({LAGS_NEEDS}), got {short(columns)}")


def short(columns: list[str], k: int = 8) -> str:
    """The first `k` names of `columns`, for a message."""
    return ", ".join(columns[:k]) + (f", ... ({len(columns)} columns)" if len(columns) > k else "") if columns else "no columns"
