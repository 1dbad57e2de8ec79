"""Column layout of the Kaggle JSMP `train.csv` (see shared/JSMP.md)."""

from __future__ import annotations

import itertools
import re

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
