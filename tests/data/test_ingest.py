"""`python -m jsmp.data ingest/info`: schema rules, every bad input, CSV vs Parquet vs pandas."""

import gzip
import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jsmp.data.csvfile as csvfile
import jsmp.data.sources as sources
from conftest import run_cli, run_data
from jsmp.data.ingest import ingest
from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.errors import UserError
from jsmp.store.store import Store

SPEC = SynthSpec(days=4, rows_per_day=25, seed=5)


@pytest.fixture(scope="module")
def kaggle_csv(tmp_path_factory) -> Path:
    """A 130-feature Kaggle-layout CSV (4 days, ~100 rows)."""
    return write_csv(SPEC, tmp_path_factory.mktemp("csv") / "train.csv")


@pytest.fixture(scope="module")
def frame(kaggle_csv) -> pd.DataFrame:
    return pd.read_csv(kaggle_csv)


def _ingest_cli(src, store, *extra):
    """`python -m jsmp.data ingest SRC --store STORE EXTRA...`, in this process."""
    return run_data(["ingest", str(src), "--store", str(store), *extra])


def _features(store) -> np.ndarray:
    s = Store(store)
    return np.concatenate([np.asarray(sh) for sh in s.shards])


def test_csv_round_trips_float32_exactly_against_pandas(kaggle_csv, frame, tmp_path):
    # as a user runs it: its own process, which run_and_exit ends once pyarrow's CSV reader has run
    p = run_cli(["-m", "jsmp.data", "ingest", str(kaggle_csv), "--store", str(tmp_path / "s")])
    assert p.returncode == 0, p.stderr
    s = Store(tmp_path / "s")
    feats = [f"feature_{i}" for i in range(130)]
    assert s.features == feats and s.n_rows == len(frame) and s.n_days == 4
    expected = frame[feats].astype(np.float32).to_numpy()
    np.testing.assert_array_equal(_features(tmp_path / "s"), expected)  # NaNs in the same places too
    for c in ["weight", "resp", "resp_1", "resp_4"]:
        np.testing.assert_array_equal(s.side(c), frame[c].astype(np.float32).to_numpy())
    np.testing.assert_array_equal(s.side("date"), frame["date"]) and np.testing.assert_array_equal(s.side("ts_id"), frame["ts_id"])
    src = s.manifest["source"]
    assert src["kind"] == "csv" and src["checksum"].startswith("sha1:") and src["bytes"] == kaggle_csv.stat().st_size


def test_null_spellings_read_as_empty_fields_in_small_pieces(kaggle_csv, frame, tmp_path, monkeypatch):
    """Pieces without an "a" or "A" take pyarrow's faster parse with "" as the only null; NA,
    NULL, -nan, 1.#IND ... still read as NaN, bit for bit like empty fields and like pandas."""
    spellings, count = itertools.cycle(["NA", "NULL", "-nan", "NaN", "1.#IND", "null", "#N/A"]), itertools.count()
    def fill(_):  # about one spelling a piece
        return next(spellings) if next(count) % 50 == 0 else ""

    text = re.sub(r"(?<=,)(?=,)", fill, kaggle_csv.read_text())  # into empty fields
    assert "-nan" in text and "NULL" in text
    (tmp_path / "n.csv").write_text(text)
    monkeypatch.setattr(csvfile, "PIECE_BYTES", 4096)  # ~3 rows a piece
    ingest(tmp_path / "n.csv", tmp_path / "n")
    ingest(kaggle_csv, tmp_path / "e")
    feats = [f"feature_{i}" for i in range(130)]
    np.testing.assert_array_equal(_features(tmp_path / "n"), pd.read_csv(tmp_path / "n.csv")[feats].astype(np.float32).to_numpy())
    assert _features(tmp_path / "n").tobytes() == _features(tmp_path / "e").tobytes()


def test_parquet_file_and_directory_give_byte_identical_shards(kaggle_csv, frame, tmp_path):
    assert _ingest_cli(kaggle_csv, tmp_path / "csv").returncode == 0
    frame.to_parquet(tmp_path / "train.parquet")
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, day in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[day].to_parquet(parts / f"part-{i}.parquet")
    for src, name in [(tmp_path / "train.parquet", "pq"), (parts, "dir")]:
        p = _ingest_cli(src, tmp_path / name)
        assert p.returncode == 0, p.stderr
        for a, b in zip(sorted((tmp_path / "csv").glob("*.npy")), sorted((tmp_path / name).glob("*.npy"))):
            assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name
        assert Store(tmp_path / name).manifest["source"]["kind"] == "parquet"


def test_gzip_csv(kaggle_csv, tmp_path):
    gz = tmp_path / "train.csv.gz"
    gz.write_bytes(gzip.compress(kaggle_csv.read_bytes()))
    ingest(gz, tmp_path / "gz")
    ingest(kaggle_csv, tmp_path / "plain")
    np.testing.assert_array_equal(_features(tmp_path / "gz"), _features(tmp_path / "plain"))


def test_column_permutation_and_feature_subset(frame, tmp_path):
    cols = ["ts_id", "resp", "feature_5", "feature_2", "date", "extra", "feature_0", "weight", "feature_1", "feature_4", "feature_3"]
    sub = frame.copy().assign(extra="text")[cols]
    sub.to_csv(tmp_path / "perm.csv", index=False)
    p = _ingest_cli(tmp_path / "perm.csv", tmp_path / "s")
    assert p.returncode == 0, p.stderr
    assert "ignoring 1 unknown column(s): extra" in p.stderr
    s = Store(tmp_path / "s")
    assert s.features == [f"feature_{i}" for i in range(6)]
    assert sorted(s.manifest["side"]) == ["date", "resp", "ts_id", "weight"]
    np.testing.assert_array_equal(_features(tmp_path / "s"), frame[s.features].astype(np.float32).to_numpy())


def test_ts_id_made_from_row_order(frame, tmp_path):
    frame.drop(columns=["ts_id"]).to_csv(tmp_path / "no_ts.csv", index=False)
    ingest(tmp_path / "no_ts.csv", tmp_path / "s", shard_rows=30)
    np.testing.assert_array_equal(Store(tmp_path / "s").side("ts_id"), np.arange(len(frame)))


def test_unchanged_source_is_a_no_op_unless_forced(kaggle_csv, tmp_path):
    src = tmp_path / "train.csv"
    src.write_bytes(kaggle_csv.read_bytes())
    assert _ingest_cli(src, tmp_path / "s").returncode == 0
    stamp = (tmp_path / "s" / "manifest.json").stat().st_mtime_ns
    p = _ingest_cli(src, tmp_path / "s")
    assert p.returncode == 0 and "up to date" in p.stdout
    src.touch()  # new mtime, same bytes: the checksum decides
    assert not ingest(src, tmp_path / "s")[1]
    assert (tmp_path / "s" / "manifest.json").stat().st_mtime_ns == stamp
    assert _ingest_cli(src, tmp_path / "s", "--force").returncode == 0
    assert (tmp_path / "s" / "manifest.json").stat().st_mtime_ns != stamp
    src.write_bytes(src.read_bytes().replace(b"\n", b"\r\n", 1))  # changed bytes (same data): re-ingested
    assert ingest(src, tmp_path / "s")[1]


def test_info(kaggle_csv, frame, tmp_path):
    ingest(kaggle_csv, tmp_path / "s")
    p = run_data(["info", str(tmp_path / "s")])
    assert p.returncode == 0, p.stderr
    per_day = frame.groupby("date").size()
    assert f"rows      {len(frame):,}" in p.stdout and "days      4" in p.stdout and "features  130" in p.stdout
    assert f"min {per_day.min()}" in p.stdout and f"max {per_day.max()}" in p.stdout
    assert f"weight 0  {(frame.weight == 0).mean():.1%}" in p.stdout
    top = frame.filter(like="feature_").isna().mean().sort_values(ascending=False, kind="stable")
    assert f"{top.index[0]:<12} {top.iloc[0]:.2%}" in p.stdout
    assert "checksum  sha1:" in p.stdout and str(kaggle_csv) in p.stdout


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _set(line: str, header: list[str], col: str, value: str) -> str:
    fields = line.rstrip("\n").split(",")
    fields[header.index(col)] = value
    return ",".join(fields) + "\n"


def _bad_csv(kind: str, src: Path, dst: Path) -> Path:
    """Write a broken copy of `src` as `dst` (or a broken directory); returns the path to ingest."""
    lines = _lines(src)
    header = lines[0].rstrip("\n").split(",")
    edits = {
        "empty": lambda: [],
        "header_only": lambda: lines[:1],
        "missing_column": lambda: [",".join(f for i, f in enumerate(ln.rstrip("\n").split(",")) if i != header.index("resp")) + "\n" for ln in lines],
        "duplicated_column": lambda: [lines[0].replace("feature_5,", "feature_3,"), *lines[1:]],
        "non_numeric": lambda: [*lines[:6], _set(lines[6], header, "weight", "abc"), *lines[7:]],
        "non_numeric_feature": lambda: [*lines[:9], _set(lines[9], header, "feature_17", "1.2.3"), *lines[10:]],
        "too_few": lambda: [*lines[:4], lines[4].rsplit(",", 2)[0] + "\n", *lines[5:]],
        "too_many": lambda: [*lines[:4], lines[4].rstrip("\n") + ",7\n", *lines[5:]],
        "truncated": lambda: [*lines[:-1], lines[-1][: len(lines[-1]) // 2]],
        "date_decreasing": lambda: [*lines[:60], _set(lines[60], header, "date", "0"), *lines[61:]],
        "ts_duplicated": lambda: [*lines[:8], _set(lines[8], header, "ts_id", "6"), *lines[9:]],
        "ts_decreasing": lambda: [*lines[:8], _set(lines[8], header, "ts_id", "2"), *lines[9:]],
        "inf": lambda: [*lines[:11], _set(lines[11], header, "feature_9", "-inf"), *lines[12:]],
        "missing_weight": lambda: [*lines[:3], _set(lines[3], header, "weight", ""), *lines[4:]],
        "nan_weight": lambda: [*lines[:3], _set(lines[3], header, "weight", "-NAN"), *lines[4:]],
        "negative_weight": lambda: [*lines[:3], _set(lines[3], header, "weight", "-0.5"), *lines[4:]],
        "date_beyond_int32": lambda: [*lines[:-1], _set(lines[-1], header, "date", "3000000000")],
        "ts_id_beyond_int64": lambda: [*lines[:-1], _set(lines[-1], header, "ts_id", "9223372036854775808")],
        "blank_line": lambda: [*lines[:5], "\n", *lines[5:]],
        "stray_cr": lambda: [*lines[:5], lines[5][:40] + "\r" + lines[5][40:], *lines[6:]],
        "cr_only": lambda: [ln.replace("\n", "\r") for ln in lines],
    }
    dst.write_bytes("".join(edits[kind]()).encode())
    return dst


BAD = {
    "missing_file": r"nope\.csv: no such file or directory",
    "empty": r"bad\.csv: file is empty; expected a header line",
    "header_only": r"bad\.csv: header only, no data rows",
    "missing_column": r"bad\.csv: missing required column 'resp'",
    "duplicated_column": r"bad\.csv: column 'feature_3' appears twice in the header \(columns 11 and 13\)",
    "non_numeric": r"bad\.csv line 7, column 'weight': got 'abc', expected a number",
    "non_numeric_feature": r"bad\.csv line 10, column 'feature_17': got '1\.2\.3', expected a number",
    "too_few": r"bad\.csv line 5: too few fields: expected 138 \(as in the header\), got 136",
    "too_many": r"bad\.csv line 5: too many fields: expected 138 \(as in the header\), got 139",
    "truncated": r"bad\.csv line \d+: truncated last line \(\d+ of 138 fields, no newline at the end\)",
    "date_decreasing": r"bad\.csv line 61, column 'date': date 0 after date \d; expected non-decreasing dates",
    "ts_duplicated": r"bad\.csv line 9, column 'ts_id': ts_id 6 repeats; expected strictly increasing ts_id",
    "ts_decreasing": r"bad\.csv line 9, column 'ts_id': ts_id 2 is below the previous 6",
    "inf": r"bad\.csv line 12, column 'feature_9': got -inf \(±Inf, or beyond float32 range\); expected a finite number",
    "missing_weight": r"bad\.csv line 4, column 'weight': missing value",
    "nan_weight": r"bad\.csv line 4, column 'weight': missing value \(an empty field, NaN, NA, null, \.\.\.\); expected a number in every row",
    "negative_weight": r"bad\.csv line 4, column 'weight': got -0\.5; expected weight >= 0",
    "date_beyond_int32": r"bad\.csv line 61, column 'date': got 3000000000; expected an integer from -2147483648 to 2147483647",
    "ts_id_beyond_int64": r"bad\.csv line 61, column 'ts_id': got '9223372036854775808', expected an integer in int64 range",
    "blank_line": r"bad\.csv line 6 is blank; expected 138 fields \(as in the header\)",
    "stray_cr": r"bad\.csv line 6: a CR \(\\r\) that ends no line; expected lines ending in LF or CRLF",
    "cr_only": r"bad\.csv: lines end in CR only \(old Mac format\); expected LF or CRLF line ends",
    "zip": r"train\.zip: is a zip archive \(unzip it first\)",
    "no_parquet": r"parts: directory holds no \*\.parquet files",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_one_line_exit_2_nothing_written(kind, kaggle_csv, tmp_path):
    store = tmp_path / "store"
    good = ingest(kaggle_csv, store)[0]  # a good store already there must survive
    before = (good / "manifest.json").read_text()
    if kind == "missing_file":
        src = tmp_path / "nope.csv"
    elif kind == "zip":
        src = tmp_path / "train.zip"
        src.write_bytes(b"PK\x03\x04" + kaggle_csv.read_bytes())
    elif kind == "no_parquet":
        src = tmp_path / "parts"
        src.mkdir()
        (src / "readme.txt").write_text("x")
    else:
        src = _bad_csv(kind, kaggle_csv, tmp_path / "bad.csv")
    p = _ingest_cli(src, store)
    assert p.returncode == 2, (p.returncode, p.stderr)
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "Traceback" not in p.stderr, p.stderr
    assert __import__("re").search(BAD[kind], err[0]), err[0]
    assert (store / "manifest.json").read_text() == before
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".")) == []  # no temp dir left


def test_bad_input_leaves_no_store(kaggle_csv, tmp_path):
    with pytest.raises(UserError, match="line 5: too few fields"):
        ingest(_bad_csv("too_few", kaggle_csv, tmp_path / "bad.csv"), tmp_path / "store")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.csv"]


def test_parquet_bad_values_name_file_row_and_column(frame, tmp_path):
    bad = frame.copy()
    bad.loc[7, "date"] = 0
    bad.loc[40:, "date"] = 0
    bad.to_parquet(tmp_path / "b.parquet")
    with pytest.raises(UserError, match=r"b\.parquet row \d+, column 'date': date 0 after date [1-9]"):
        ingest(tmp_path / "b.parquet", tmp_path / "s")
    frame.assign(weight=frame.weight.astype(str)).to_parquet(tmp_path / "s.parquet")
    with pytest.raises(UserError, match=r"s\.parquet, column 'weight': has type \w*string; expected numbers"):
        ingest(tmp_path / "s.parquet", tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_cut_gzip_and_broken_parquet(kaggle_csv, tmp_path):
    gz = tmp_path / "cut.csv.gz"
    gz.write_bytes(gzip.compress(kaggle_csv.read_bytes())[:20000])
    with pytest.raises(UserError, match=r"cut\.csv\.gz: cannot read \(Compressed file ended"):
        ingest(gz, tmp_path / "s")
    (tmp_path / "b.parquet").write_bytes(b"garbage!" * 4)
    with pytest.raises(UserError, match=r"b\.parquet: not a readable Parquet file"):
        ingest(tmp_path / "b.parquet", tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_info_streams_nan_counts_for_a_synthetic_store(tiny_store):
    from jsmp.store.info import describe, nan_counts

    s = Store(tiny_store)
    full = np.concatenate([np.asarray(sh) for sh in s.shards])
    np.testing.assert_array_equal(nan_counts(s), np.isnan(full).sum(0))
    text = describe(s)
    assert f"rows      {s.n_rows:,}" in text and "checksum  synthetic:" in text


# -- every NaN spelling, ±Inf and out-of-range value, from CSV and Parquet --------------------
NAN_SPELLINGS = ["", "NaN", "nan", "NAN", "nAn", "+nan", "-nan", "-NAN", "NA", "NULL", "null", "None", "<NA>", "#N/A", "#NA",
                 "N/A", "n/a", "1.#IND", "-1.#IND", "1.#QNAN", "-1.#QNAN", "#N/A N/A"]
INF_SPELLINGS = ["inf", "-inf", "INF", "+Inf", "Infinity", "-INFINITY", "1e39", "-1e309"]
SIDE = ["date", "weight", "resp", "resp_3", "ts_id"]


def _with_value(src: Path, dst: Path, column: str, value: str, line: int = 4) -> Path:
    lines = _lines(src)
    header = lines[0].rstrip("\n").split(",")
    dst.write_text("".join([*lines[: line - 1], _set(lines[line - 1], header, column, value), *lines[line:]]))
    return dst


@pytest.mark.parametrize("spelling", [*NAN_SPELLINGS, "NaN(1)", "nan(x)", *INF_SPELLINGS])
@pytest.mark.parametrize("column", SIDE)
def test_csv_nan_or_inf_outside_features_is_an_error(kaggle_csv, tmp_path, column, spelling):
    src = _with_value(kaggle_csv, tmp_path / "v.csv", column, spelling)
    with pytest.raises(UserError, match=rf"v\.csv line 4, column '{column}': (missing value|got)") as e:
        ingest(src, tmp_path / "s")
    assert "\n" not in str(e.value) and not (tmp_path / "s").exists()


@pytest.mark.parametrize("spelling", NAN_SPELLINGS)
def test_csv_every_nan_spelling_pandas_reads_is_nan_in_features(kaggle_csv, tmp_path, spelling):
    src = _with_value(kaggle_csv, tmp_path / "v.csv", "feature_9", spelling)
    ingest(src, tmp_path / "s")
    expected = pd.read_csv(src).filter(like="feature_").astype(np.float32).to_numpy()
    got = _features(tmp_path / "s")
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[2, 9]) and got.tobytes() == _features(ingest(_with_value(kaggle_csv, tmp_path / "e.csv", "feature_9", ""), tmp_path / "e")[0]).tobytes()


@pytest.mark.parametrize("spelling", [*INF_SPELLINGS, "NaN(1)"])
def test_csv_inf_or_a_nan_pandas_cannot_read_in_a_feature_is_an_error(kaggle_csv, tmp_path, spelling):
    src = _with_value(kaggle_csv, tmp_path / "v.csv", "feature_9", spelling)
    with pytest.raises(UserError, match=r"v\.csv line 4, column 'feature_9': got .*; expected a (finite )?number"):
        ingest(src, tmp_path / "s")


def _arrow_table(frame: pd.DataFrame, **columns):
    """`frame` as a pyarrow table, NaN kept as NaN (pandas' to_parquet would write nulls), `columns` replaced."""
    import pyarrow as pa

    return pa.table({c: columns.get(c, pa.array(frame[c].to_numpy(), from_pandas=False)) for c in frame.columns})


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e39])
@pytest.mark.parametrize("column", ["weight", "resp", "resp_1", "feature_9"])
def test_parquet_float_nan_inf_in_float_columns(frame, tmp_path, column, value):
    import pyarrow as pa
    import pyarrow.parquet as pq

    vals = frame[column].to_numpy(np.float64).copy()
    vals[6] = value
    pq.write_table(_arrow_table(frame, **{column: pa.array(vals, from_pandas=False)}), tmp_path / "v.parquet")
    if column == "feature_9" and np.isnan(value):  # NaN is NaN in a feature
        ingest(tmp_path / "v.parquet", tmp_path / "s")
        assert np.isnan(_features(tmp_path / "s")[6, 9])
        return
    with pytest.raises(UserError, match=rf"v\.parquet row 7, column '{column}': got (NaN|-?inf)"):
        ingest(tmp_path / "v.parquet", tmp_path / "s")


@pytest.mark.parametrize("column, values, got", [
    ("date", np.float64, "nan"), ("date", np.float64, "inf"), ("date", np.float64, "0.5"), ("date", np.float64, "3000000000.0"),
    ("date", np.int64, str(2**40)), ("ts_id", np.float64, "nan"), ("ts_id", np.float64, "1e+19"),
    ("ts_id", np.uint64, str(2**63 + 5)),
])
def test_parquet_integer_columns_out_of_range_or_not_integers(frame, tmp_path, column, values, got):
    import pyarrow as pa
    import pyarrow.parquet as pq

    vals = frame[column].to_numpy().astype(values)
    vals[-1] = float(got) if values is np.float64 else int(got)
    pq.write_table(_arrow_table(frame, **{column: pa.array(vals)}), tmp_path / "v.parquet")
    lo, hi = (-(2**31), 2**31 - 1) if column == "date" else (-(2**63), 2**63 - 1)
    with pytest.raises(UserError, match=rf"v\.parquet row {len(frame)}, column '{column}': got {re.escape(got)}; expected an integer from {lo} to {hi}"):
        ingest(tmp_path / "v.parquet", tmp_path / "s")


def test_weight_zero_and_minus_zero_are_fine_negative_is_an_error(kaggle_csv, tmp_path):
    ingest(_with_value(kaggle_csv, tmp_path / "z.csv", "weight", "-0.0"), tmp_path / "s")
    assert Store(tmp_path / "s").side("weight")[2] == 0
    with pytest.raises(UserError, match=r"n\.csv line 4, column 'weight': got -1e-05; expected weight >= 0"):
        ingest(_with_value(kaggle_csv, tmp_path / "n.csv", "weight", "-1e-5"), tmp_path / "t")


# -- file formats and encodings -----------------------------------------------------------
def _shards(store: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(store.glob("*.npy"))}


def test_utf8_bom_ingests_like_the_file_without(kaggle_csv, tmp_path, monkeypatch):
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + kaggle_csv.read_bytes())
    ingest(kaggle_csv, tmp_path / "plain")
    monkeypatch.setattr(csvfile, "PIECE_BYTES", 4096)  # the first piece, parsed by pyarrow, starts with the BOM
    ingest(tmp_path / "bom.csv", tmp_path / "bom")
    assert _shards(tmp_path / "bom") == _shards(tmp_path / "plain") and Store(tmp_path / "bom").features == Store(tmp_path / "plain").features
    bad = _with_value(kaggle_csv, tmp_path / "b.csv", "weight", "x", line=2)
    bad.write_bytes(b"\xef\xbb\xbf" + bad.read_bytes())  # errors found by the re-read name the right line too
    with pytest.raises(UserError, match=r"b\.csv line 2, column 'weight': got 'x', expected a number"):
        ingest(bad, tmp_path / "s")


def test_crlf_ingests_like_lf(kaggle_csv, tmp_path):
    (tmp_path / "crlf.csv").write_bytes(kaggle_csv.read_bytes().replace(b"\n", b"\r\n"))
    ingest(kaggle_csv, tmp_path / "lf")
    ingest(tmp_path / "crlf.csv", tmp_path / "crlf")
    assert _shards(tmp_path / "crlf") == _shards(tmp_path / "lf")


def test_format_told_by_content_not_name(kaggle_csv, frame, tmp_path):
    """A Parquet file named .csv ingests as Parquet, a gzip file without .gz as CSV.gz."""
    frame.to_parquet(tmp_path / "train.parquet")
    (tmp_path / "parquet.csv").write_bytes((tmp_path / "train.parquet").read_bytes())
    (tmp_path / "gzip.csv").write_bytes(gzip.compress(kaggle_csv.read_bytes()))
    ingest(kaggle_csv, tmp_path / "ref")
    for name in ["parquet.csv", "gzip.csv"]:
        p = _ingest_cli(tmp_path / name, tmp_path / name.replace(".", "_"))
        assert p.returncode == 0, p.stderr
        assert _shards(tmp_path / name.replace(".", "_")) == _shards(tmp_path / "ref")
    assert Store(tmp_path / "parquet_csv").manifest["source"]["kind"] == "parquet"
    assert Store(tmp_path / "gzip_csv").manifest["source"]["kind"] == "csv.gz"


# -- file system errors ---------------------------------------------------------------------
def _refuse(path: Path, err: OSError):
    """An `open` that raises `err` for `path` (root reads files whatever their mode)."""
    real = open

    def fake(file, *args, **kwargs):
        if Path(file) == path:
            raise err
        return real(file, *args, **kwargs)

    return fake


@pytest.mark.parametrize("err, why", [
    (PermissionError(13, "Permission denied"), "permission denied"),
    (OSError(5, "Input/output error"), "Input/output error"),
])
def test_unreadable_source_file(kaggle_csv, frame, tmp_path, monkeypatch, err, why):
    frame.to_parquet(tmp_path / "t.parquet")
    for src in [kaggle_csv, tmp_path / "t.parquet"]:
        err.filename = str(src)
        monkeypatch.setattr(sources, "open", _refuse(src, err), raising=False)
        with pytest.raises(UserError, match=rf"^{re.escape(str(src))}: cannot read \({why}\)$"):
            ingest(src, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_unlistable_directory(frame, tmp_path, monkeypatch):
    (tmp_path / "parts" / "sub").mkdir(parents=True)
    frame.to_parquet(tmp_path / "parts" / "a.parquet")
    real = __import__("os").scandir

    def scandir(path="."):
        if Path(path).name == "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr("os.scandir", scandir)
    with pytest.raises(UserError, match=r"^cannot list directory .*parts/sub \(permission denied\); expected a readable directory"):
        ingest(tmp_path / "parts", tmp_path / "s")


def _as_unprivileged(args: list[str]):
    """Run the CLI as a user whom chmod stops: ourselves, or `nobody` when we are root; None when nobody cannot run it."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    user = 65534 if os.geteuid() == 0 else None
    try:
        return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, user=user, check=False)
    except PermissionError:
        return None


def test_unreadable_file_and_directory_through_the_cli(kaggle_csv, tmp_path_factory):
    import os
    import tempfile

    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        d = Path(d)
        os.chmod(d, 0o777)
        (d / "train.csv").write_bytes(kaggle_csv.read_bytes())
        (d / "parts").mkdir()
        os.chmod(d / "train.csv", 0o000)
        os.chmod(d / "parts", 0o000)
        try:
            runs = [_as_unprivileged(["-m", "jsmp.data", "ingest", str(d / src), "--store", str(d / "s")]) for src in ["train.csv", "parts"]]
        finally:
            os.chmod(d / "parts", 0o755)
        if runs[0] is None or "No module named" in runs[0].stderr or runs[0].returncode == 126:
            pytest.skip("the unprivileged user cannot run this interpreter")
        assert [p.returncode for p in runs] == [2, 2], [p.stderr for p in runs]
        assert runs[0].stderr == f"error: {d / 'train.csv'}: cannot read (permission denied)\n"
        assert runs[1].stderr.startswith(f"error: cannot list directory {d / 'parts'} (permission denied)") and runs[1].stderr.count("\n") == 1


# -- the store ------------------------------------------------------------------------------
def _truncate(path):
    path.write_bytes(path.read_bytes()[:-10])


def _flip_bit(path):
    data = bytearray(path.read_bytes())
    data[-5] ^= 1  # past the .npy header: same size, other bytes
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, name", [(_truncate, "features-00000.npy"), (_flip_bit, "features-00000.npy"),
                                          (_flip_bit, "weight.npy")])
def test_damaged_store_is_rebuilt_not_up_to_date(kaggle_csv, tmp_path, damage, name):
    """A truncated file, and a flipped bit that keeps every size (found by the checksums)."""
    src = tmp_path / "train.csv"
    src.write_bytes(kaggle_csv.read_bytes())
    ingest(src, tmp_path / "s")
    whole = _shards(tmp_path / "s")
    damage(tmp_path / "s" / name)
    p = _ingest_cli(src, tmp_path / "s")
    assert p.returncode == 0 and "up to date" not in p.stdout and "wrote" in p.stdout, p.stdout
    assert re.search(rf"warning: store .*s is damaged \(.*{re.escape(name)}.*\); re-ingesting", p.stderr), p.stderr
    assert _shards(tmp_path / "s") == whole and Store(tmp_path / "s").damage() is None
    assert "up to date" in _ingest_cli(src, tmp_path / "s").stdout


def test_store_never_holds_the_source_even_when_up_to_date(kaggle_csv, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    src = data / "train.csv"
    src.write_bytes(kaggle_csv.read_bytes())
    for store in [data, src]:
        p = _ingest_cli(src, store)
        assert p.returncode == 2 and p.stderr.startswith("error: --store ") and p.stderr.count("\n") == 1, p.stderr
    assert src.read_bytes() == kaggle_csv.read_bytes()
    ingest(src, tmp_path / "s")  # a store up to date with the source, then the source moved into it
    src.rename(tmp_path / "s" / "train.csv")
    p = _ingest_cli(tmp_path / "s" / "train.csv", tmp_path / "s")
    assert p.returncode == 2 and "up to date" not in p.stdout and (tmp_path / "s" / "train.csv").read_bytes() == kaggle_csv.read_bytes()


# -- the feature limit ------------------------------------------------------------------------------
@pytest.mark.parametrize("value, got", [("3e38", "3e+38"), ("-1000001", "-1.000001e+06"), ("1e7", "1e+07")])
def test_a_feature_beyond_the_limit_is_an_error(kaggle_csv, tmp_path, value, got):
    src = _with_value(kaggle_csv, tmp_path / "v.csv", "feature_9", value)
    with pytest.raises(UserError) as e:
        ingest(src, tmp_path / "s")
    assert str(e.value) == (f"{src} line 4, column 'feature_9': got {got}, beyond the feature limit ±1e+06 (real features are "
                            f"O(1..100), and one such value can turn a model into a constant); if such values are real, ingest "
                            f"with a larger --feature-limit (a model serves rows within the limit of the store it was trained on)")
    assert not (tmp_path / "s").exists()


def test_feature_limit_option_is_recorded_and_a_new_limit_re_ingests(kaggle_csv, tmp_path, capsys):
    from jsmp.data.__main__ import main

    src = _with_value(kaggle_csv, tmp_path / "v.csv", "feature_9", "1e7")
    main(["ingest", str(src), "--store", str(tmp_path / "s"), "--feature-limit", "1e8"])
    store = Store(tmp_path / "s")
    assert store.feature_limit == 1e8 and _features(tmp_path / "s")[2, 9] == 1e7
    assert ingest(src, tmp_path / "s", feature_limit=1e8)[1] is False  # unchanged source and limit: a no-op
    with pytest.raises(UserError, match="beyond the feature limit ±1e\\+06"):
        ingest(src, tmp_path / "s")  # another limit: ingested again, and refused
    assert Store(tmp_path / "s").feature_limit == 1e8  # the store already there is left as it was
    for bad in ("0", "-1", "inf", "nan", "x"):
        with pytest.raises(SystemExit) as e:
            main(["ingest", str(src), "--store", str(tmp_path / "t"), "--feature-limit", bad])
        assert e.value.code == 2
        assert f"argument --feature-limit: expected a finite number > 0, got {bad}" in capsys.readouterr().err


def test_a_full_disk_while_ingesting_says_so_and_leaves_nothing(kaggle_csv, tmp_path, monkeypatch):
    import errno

    import jsmp.store.store as store_module

    def full(path, parts, shape):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store_module, "_save_rows", full)
    with pytest.raises(UserError, match=rf"^--store {tmp_path / 's'}: disk full while writing the store \(needs [\d.]+ MB, "
                                        rf"[\d.]+ [MG]B free in {tmp_path}\); free some space there and run again$"):
        ingest(kaggle_csv, tmp_path / "s")
    assert list(tmp_path.iterdir()) == []
