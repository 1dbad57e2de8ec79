"""The competition's column layout (docs/jsmp.md) and how a file's header maps onto a store: `Layout`,
`plan_columns` (the header rules: docs/ingest.md)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

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

_FEATURE_RE = re.compile(r"^feature_(\d+)$")


def feature_number(name: str) -> int | None:
    """`feature_17` -> 17; anything else -> None."""
    m = _FEATURE_RE.match(name)
    return int(m.group(1)) if m else None


def sorted_features(columns) -> list[str]:
    """The `feature_*` columns among `columns`, ordered by number."""
    feats = [c for c in columns if feature_number(c) is not None]
    return sorted(feats, key=feature_number)

# Text that reads as NaN in a feature column (an error in the others): pandas' default na_values,
# plus `nan` in every case with either sign, which pandas' float conversion also reads as NaN.
NA_VALUES = sorted(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "None", "n/a", "null"}
    | {sign + "".join(c) for sign in ("", "+", "-") for c in itertools.product("nN", "aA", "nN")}
)
# Integer columns and the range their store dtype holds.
INT_RANGES = {"date": (-(2**31), 2**31 - 1), "ts_id": (-(2**63), 2**63 - 1)}
INT_COLUMNS = tuple(INT_RANGES)


@dataclass
class Layout:
    """Which of a file's `columns` are read as what: `features` (the order of x's columns) and
    `side` (per-row columns beside them); `ignored` ones are not read."""

    columns: list[str]
    features: list[str]
    side: list[str]
    ignored: list[str]

    @property
    def read(self) -> list[str]:
        return [*self.side, *self.features]


def plan_columns(columns: list[str], where: str) -> Layout:
    """A training file's layout: its header checked against the schema rules; `where` names the file in messages."""
    seen: dict[str, int] = {}
    for i, c in enumerate(columns, 1):
        if c in seen:
            raise UserError(f"{where}: column {c!r} appears twice in the header (columns {seen[c]} and {i}); expected unique names")
        seen[c] = i
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        raise UserError(f"{where}: missing required column {missing[0]!r}; expected {', '.join(REQUIRED)} and feature_* columns, got {short(columns)}")
    features = sorted_features(columns)
    if not features:
        raise UserError(f"{where}: no feature_* columns in the header; expected feature_0 ... feature_N, got {short(columns)}")
    side = [c for c in SIDE_DTYPES if c in seen]
    ignored = [c for c in columns if c not in side and c not in features]
    return Layout(list(columns), features, side, ignored)


def short(columns: list[str], k: int = 8) -> str:
    """The first `k` names of `columns`, for a message."""
    return ", ".join(columns[:k]) + (f", ... ({len(columns)} columns)" if len(columns) > k else "") if columns else "no columns"
