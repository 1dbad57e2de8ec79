"""`python -m jsmp.data ingest` of the 2024 layout: a hive-partitioned train.parquet directory and
lags.parquet into grouped stores, its order and uniqueness checks, and the layout chosen by the header."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jsmp.data.parquetfile as parquetfile
from conftest import run_cli, run_data
from jsmp.data import schema
from jsmp.data.ingest import ingest
from jsmp.data.sources import hive_order
from jsmp.errors import UserError
from jsmp.store.store import Store

FEATURES = [f"feature_{i:02d}" for i in range(4)]
RESPONDERS = [f"responder_{i}" for i in range(9)]
LAGS = [f"{r}_lag_1" for r in RESPONDERS]
PARTITIONS = [0, 9, 10]  # name order would put 10 before 9, and so rows out of time order


def _keys() -> pd.DataFrame:
    """date_id, time_id, symbol_id in the real order: 4 dates of 3..5 time steps, symbols 0..5 entering
    and leaving (5 from date 1 on, 2 only before date 2, 4 from time_id 2 of date 0); symbols of a step
    in a shuffled order."""
    rng = np.random.default_rng(3)
    rows = []
    for d in range(4):
        for t in range(3 + d % 3):
            syms = [s for s in range(6) if not (s == 5 and d < 1) and not (s == 2 and d >= 2) and not (s == 4 and d == 0 and t < 2)]
            rows += [(d, t, s) for s in rng.permutation(syms)]
    return pd.DataFrame(rows, columns=["date_id", "time_id", "symbol_id"])


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The 2024 train layout with the real dtypes, NaN blocks in the features."""
    rng = np.random.default_rng(4)
    keys = _keys()
    n = len(keys)
    f = keys.astype({"date_id": np.int16, "time_id": np.int16, "symbol_id": np.int8})
    f["weight"] = rng.uniform(0, 4, n).astype(np.float32)
    for c in FEATURES:
        f[c] = rng.normal(size=n).astype(np.float32)
    f.loc[3:11, "feature_01"] = np.nan  # a block across time steps
    f.loc[f.symbol_id == 3, "feature_03"] = np.nan  # one instrument's column
    for c in RESPONDERS:
        f[c] = rng.uniform(-5, 5, n).astype(np.float32)
    return f


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _hive(frame: pd.DataFrame, root: Path, cuts=(23, 61)) -> Path:
    """`frame` as root/partition_id=K/part-0.parquet, K in PARTITIONS, cut at rows `cuts` (mid time step)."""
    for k, part in zip(PARTITIONS, np.split(np.arange(len(frame)), list(cuts))):
        (root / f"partition_id={k}").mkdir(parents=True)
        pq.write_table(_table(frame.iloc[part]), root / f"partition_id={k}" / "part-0.parquet")
    return root


def _cli(src, store):
    """`python -m jsmp.data ingest SRC --store STORE`, in this process."""
    return run_data(["ingest", str(src), "--store", str(store)])


def _one_line_error(p) -> str:
    assert p.returncode == 2 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def _features(s: Store) -> np.ndarray:
    return np.concatenate([np.asarray(sh) for sh in s.shards])


def test_hive_directory_ingests_in_partition_order_into_a_grouped_store(frame, tmp_path):
    src = _hive(frame, tmp_path / "train.parquet")
    p = _cli(src, tmp_path / "s")
    assert p.returncode == 0, p.stderr
    assert "ignoring 1 unknown column(s): partition_id" in p.stderr  # the hive key, in no layout
    s = Store(tmp_path / "s")
    assert s.n_rows == len(frame) and s.features == FEATURES and s.n_days == 4
    np.testing.assert_array_equal(_features(s), frame[FEATURES].to_numpy(np.float32))  # NaNs in the same places
    np.testing.assert_array_equal(s.side("date"), frame.date_id)  # date_id is stored as date
    for c in ["time_id", "symbol_id", "weight", *RESPONDERS]:
        np.testing.assert_array_equal(s.side(c), frame[c])
    np.testing.assert_array_equal(s.side("ts_id"), np.arange(len(frame)))
    assert s.manifest["side"] == {"date": "int32", "time_id": "int32", "symbol_id": "int32", "weight": "float32",
                                  **dict.fromkeys(RESPONDERS, "float32"), "ts_id": "int64"}
    assert s.group == "symbol_id" and s.time == ("date", "time_id")
    assert [f[0] for f in s.manifest["source"]["files"]] == [f"partition_id={k}/part-0.parquet" for k in PARTITIONS]
    np.testing.assert_array_equal(s.group_values, np.arange(6))
    for k, sym in enumerate(s.group_values):  # each instrument's rows, in time order
        rows = s.group_order[s.group_offsets[k]:s.group_offsets[k + 1]]
        np.testing.assert_array_equal(rows, np.flatnonzero(frame.symbol_id == sym))
    assert _cli(src, tmp_path / "s").stdout.startswith(f"{tmp_path / 's'} is up to date")


def test_csv_in_the_2024_layout_gives_the_same_store(frame, tmp_path):
    frame.to_csv(tmp_path / "train.csv", index=False)
    ingest(tmp_path / "train.csv", tmp_path / "csv")
    _hive(frame, tmp_path / "dir")
    ingest(tmp_path / "dir", tmp_path / "pq")
    for f in sorted((tmp_path / "pq").glob("*.npy")):
        assert f.read_bytes() == (tmp_path / "csv" / f.name).read_bytes(), f.name


def test_hive_order_sorts_integer_values_numerically():
    root = Path("/d")
    names = ["partition_id=10/part-0.parquet", "partition_id=9/part-1.parquet", "partition_id=9/part-0.parquet",
             "partition_id=-1/part-0.parquet", "partition_id=x/part-0.parquet", "extra.parquet"]
    got = sorted((root / n for n in names), key=lambda f: hive_order(f, root))
    assert [str(f.relative_to(root)) for f in got] == [
        "extra.parquet", "partition_id=-1/part-0.parquet", "partition_id=9/part-0.parquet", "partition_id=9/part-1.parquet",
        "partition_id=10/part-0.parquet", "partition_id=x/part-0.parquet"]


def test_spark_leftovers_and_hidden_files_are_left_out(frame, tmp_path):
    src = _hive(frame, tmp_path / "train.parquet")
    ingest(src, tmp_path / "clean")
    (src / "_temporary" / "0").mkdir(parents=True)  # a Spark job's unfinished attempt: other columns, a partial part
    pq.write_table(_table(frame.iloc[:5].drop(columns="weight")), src / "_temporary" / "0" / "part-9.parquet")
    (src / "partition_id=9" / ".part-1.parquet").write_bytes(b"PAR1 half-written")  # a hidden (temp) part
    (src / "partition_id=9" / ".part-0.parquet.crc").write_bytes(b"crc")
    (src / "_SUCCESS").write_bytes(b"")
    store, _ = ingest(src, tmp_path / "s")
    s = Store(store)
    assert [f[0] for f in s.manifest["source"]["files"]] == [f"partition_id={k}/part-0.parquet" for k in PARTITIONS]
    for f in sorted((tmp_path / "clean").glob("*.npy")):
        assert f.read_bytes() == (store / f.name).read_bytes(), f.name
    (tmp_path / "hidden" / "_temporary").mkdir(parents=True)
    (tmp_path / "hidden" / "_temporary" / "part-0.parquet").write_bytes((src / "partition_id=0" / "part-0.parquet").read_bytes())
    (tmp_path / "hidden" / ".part-1.parquet").write_bytes(b"PAR1")
    with pytest.raises(UserError, match=r"holds no \*\.parquet files \(names starting with _ or \. are left out\)"):
        ingest(tmp_path / "hidden", tmp_path / "t")


def test_schema_error_in_one_partition_names_that_file(frame, tmp_path):
    src = _hive(frame, tmp_path / "train.parquet")
    bad = src / "partition_id=9" / "part-0.parquet"
    pq.write_table(pq.read_table(bad).drop(["weight"]), bad)
    # as a user runs it: its own process, which run_and_exit ends once pyarrow has read the files
    line = _one_line_error(run_cli(["-m", "jsmp.data", "ingest", str(src), "--store", str(tmp_path / "s")]))
    assert line.startswith(f"error: {bad}: missing required column 'weight'; expected date_id, time_id, symbol_id, weight, "
                           "feature_NN and responder_N columns, got date_id, time_id, symbol_id, feature_00"), line
    assert not (tmp_path / "s").exists()


def _swap(frame: pd.DataFrame, i: int, j: int) -> pd.DataFrame:
    f = frame.copy()
    f.iloc[[i, j]] = f.iloc[[j, i]].to_numpy()
    return f


def _step_rows(frame: pd.DataFrame, d: int, t: int) -> np.ndarray:
    return np.flatnonzero((frame.date_id == d) & (frame.time_id == t))


@pytest.mark.parametrize("case", ["time_back", "date_back_across_files", "symbol_twice", "symbol_twice_across_files"])
def test_order_and_uniqueness_errors_name_file_row_and_column(frame, tmp_path, case):
    """One line, exit 2, no store; across partition files the state carries over (the cut at row 23 is mid-step)."""
    step = _step_rows(frame, 1, 1)  # rows 19..24: partition 9 starts at row 23
    if case == "time_back":  # the first row of date 1, time 2 swapped with the last one of time 1
        bad, i = _swap(frame, step[-1], step[-1] + 1), step[-1] + 1
        want = rf"partition_id=9/part-0\.parquet row {i - 23 + 1}, column 'time_id': \(date_id, time_id\) = \(1, 1\) after \(1, 2\); expected rows in \(date_id, time_id\) order"
    elif case == "date_back_across_files":  # partition 10 starts with a row of date 0
        bad = frame.copy()
        bad.loc[61, "date_id"] = 0
        want = r"partition_id=10/part-0\.parquet row 1, column 'date_id': \(date_id, time_id\) = \(0, \d\) after \(\d, \d\)"
    else:
        cut = 23 if case.endswith("files") else _step_rows(frame, 2, 1)[2]  # in partition 9
        first = next(r for r in _step_rows(frame, *frame.loc[cut, ["date_id", "time_id"]]) if r < cut)
        bad = frame.copy()
        bad.loc[cut, "symbol_id"] = frame.symbol_id[first]
        file, row = ("partition_id=9", 1) if case.endswith("files") else ("partition_id=9", cut - 23 + 1)
        d, t = frame.loc[cut, ["date_id", "time_id"]]
        want = (rf"{file}/part-0\.parquet row {row}, column 'symbol_id': symbol_id {frame.symbol_id[first]} appears twice at "
                rf"\(date_id, time_id\) = \({d}, {t}\); expected at most one row per symbol_id and time step")
    line = _one_line_error(_cli(_hive(bad, tmp_path / "train.parquet"), tmp_path / "s"))
    assert re.search(want, line), line
    assert not (tmp_path / "s").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet"]


def test_duplicate_symbol_across_a_batch_boundary(frame, tmp_path, monkeypatch):
    monkeypatch.setattr(parquetfile, "BATCH_ROWS", 7)
    same_step = (frame.date_id.diff() == 0) & (frame.time_id.diff() == 0)
    cut = next(r for r in range(7, len(frame), 7) if same_step[r])  # the first row of a batch, mid step
    bad = frame.copy()
    bad.loc[cut, "symbol_id"] = frame.symbol_id[cut - 1]
    pq.write_table(_table(bad), tmp_path / "b.parquet")
    with pytest.raises(UserError, match=rf"b\.parquet row {cut + 1}, column 'symbol_id': symbol_id {frame.symbol_id[cut - 1]} appears twice"):
        ingest(tmp_path / "b.parquet", tmp_path / "s")
    pq.write_table(_table(frame), tmp_path / "g.parquet")
    ingest(tmp_path / "g.parquet", tmp_path / "s")  # the same symbols a step later and a batch apart are fine
    assert Store(tmp_path / "s").n_rows == len(frame)


@pytest.mark.parametrize("column, value, want", [
    ("weight", -0.5, r"column 'weight': got -0\.5; expected weight >= 0"),
    ("responder_6", np.nan, r"column 'responder_6': got NaN; expected a number in every row"),
    ("responder_0", np.inf, r"column 'responder_0': got inf"),
    ("symbol_id", 2**31, r"column 'symbol_id': got 2147483648; expected an integer from 0 to 1048575"),
    ("symbol_id", -1, r"column 'symbol_id': got -1; expected an integer from 0 to 1048575"),
    ("symbol_id", 2**20, r"column 'symbol_id': got 1048576; expected an integer from 0 to 1048575"),
    ("feature_02", 3e38, r"column 'feature_02': got 3e\+38, beyond the feature limit ±1e\+06 \(real features are O\(1\.\.100\)"),
    ("time_id", 1.5, r"column 'time_id': got 1\.5; expected an integer"),
])
def test_bad_values_in_the_2024_columns(frame, tmp_path, column, value, want):
    vals = frame[column].to_numpy().astype(np.float64 if isinstance(value, float) else np.int64)
    vals[5] = value
    pq.write_table(_table(frame).set_column(frame.columns.get_loc(column), column, pa.array(vals, from_pandas=False)), tmp_path / "v.parquet")
    with pytest.raises(UserError, match=rf"v\.parquet row 6, {want}"):
        ingest(tmp_path / "v.parquet", tmp_path / "s")
    assert not (tmp_path / "s").exists()


def _lags(frame: pd.DataFrame) -> pd.DataFrame:
    """lags.parquet as served: each date's first time step, the previous date's responders of each symbol (0 on date 0)."""
    first = frame[frame.time_id == 0][["date_id", "time_id", "symbol_id"]].reset_index(drop=True)
    last = frame.groupby(["date_id", "symbol_id"])[RESPONDERS].last()
    prev = [last.loc[(d - 1, s)].to_numpy() if (d - 1, s) in last.index else np.zeros(9, np.float32)
            for d, s in zip(first.date_id, first.symbol_id)]
    return first.join(pd.DataFrame(np.asarray(prev, np.float32), columns=LAGS))


def test_lags_directory_without_the_hive_key_column_and_lags_file(frame, tmp_path):
    """lags.parquet/date_id=K/part-0.parquet: date_id comes from the path when the file lacks it."""
    lags = _lags(frame)
    root = tmp_path / "lags.parquet"
    for d, part in lags.groupby("date_id"):
        (root / f"date_id={d}").mkdir(parents=True)
        pq.write_table(_table(part.drop(columns=["date_id"])[["symbol_id", "time_id", *LAGS[::-1]]]), root / f"date_id={d}" / "part-0.parquet")
    p = _cli(root, tmp_path / "s")
    assert p.returncode == 0 and "ignoring" not in p.stderr, p.stderr
    pq.write_table(_table(lags), tmp_path / "lags-file.parquet")
    ingest(tmp_path / "lags-file.parquet", tmp_path / "f")
    for store in ["s", "f"]:
        s = Store(tmp_path / store)
        assert s.features == LAGS and s.group == "symbol_id" and s.time == ("date", "time_id")
        np.testing.assert_array_equal(_features(s), lags[LAGS].to_numpy())
        for c, want in [("date", lags.date_id), ("time_id", lags.time_id), ("symbol_id", lags.symbol_id), ("ts_id", np.arange(len(lags)))]:
            np.testing.assert_array_equal(s.side(c), want)
        assert sorted(s.manifest["side"]) == ["date", "symbol_id", "time_id", "ts_id"]


@pytest.mark.parametrize("columns, want", [
    (["date", "weight", "resp", "feature_0"], "2021"),
    (["date_id", "time_id", "symbol_id", "weight", "feature_00", "responder_6", "row_id", "is_scored"], "2024"),
    (["date_id", "time_id", "symbol_id", "responder_6_lag_1", "responder_0_lag_1"], "lags"),
])
def test_plan_picks_the_layout_from_the_header(columns, want):
    layout = schema.plan(columns, "f")
    got = {None: "2021", "symbol_id": "lags" if layout.features[0].endswith("_lag_1") else "2024"}[layout.group]
    assert got == want
    if want == "2024":
        assert layout.side == ["date_id", "time_id", "symbol_id", "weight", "responder_6"] and layout.ignored == ["row_id", "is_scored"]
        assert layout.rename == {"date_id": "date"} and layout.time == ["date", "time_id"]
    if want == "lags":
        assert layout.features == ["responder_0_lag_1", "responder_6_lag_1"] and layout.side == ["date_id", "time_id", "symbol_id"]


@pytest.mark.parametrize("columns, want", [
    (["a", "b"], r"^f: no known layout in the header; expected the 2021 train layout \(date, weight, resp and feature_\* columns\), "
                 r"the 2024 one \(date_id, time_id, symbol_id, weight, feature_NN and responder_N columns\) or its lags file "
                 r"\(date_id, time_id, symbol_id and responder_N_lag_1 columns\), got a, b$"),
    (["date_id", "time_id", "symbol_id", "weight", "feature_00"], r"^f: no responder_N columns in the header"),
    (["date_id", "symbol_id", "responder_1_lag_1"], r"^f: missing required column 'time_id'"),
])
def test_plan_errors(columns, want):
    with pytest.raises(UserError, match=want):
        schema.plan(columns, "f")
