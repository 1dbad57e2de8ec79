"""Fuzzing `jsmp.data ingest` (its CSV half): seeded mutations of small valid Kaggle-layout CSVs.

The oracle: each mutated file either ingests equal to `pandas.read_csv(...).astype('float32')`
(features bit for bit with NaN in the same places; side columns equal) or fails with a
UserError of one line; never another exception. pandas accepts some files ingest rejects
(NaN in `weight`, a short row it pads with NaN, a blank line it skips): an error is always
allowed, a different result never. `make test` runs EXAMPLES cases (fixed seed: CI sees the
same ones every run); the slow test runs JSMP_FUZZ_EXAMPLES (default 5000) other ones.
"""

import os
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jsmp.data.csvfile as csvfile
from conftest import run_data
from fuzzing import mutate, mutations
from jsmp.data import schema
from jsmp.data.ingest import ingest
from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.errors import UserError
from jsmp.store.store import Store

EXAMPLES = 500
FUZZ = {"derandomize": True, "deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, bytes]:
    """Valid CSVs to mutate: the full 130-feature layout (3 days x ~10 rows), 4 features reordered, and 4 without ts_id."""
    d = tmp_path_factory.mktemp("fuzz-base")
    full = write_csv(SynthSpec(days=3, rows_per_day=10, seed=11), d / "full.csv")
    frame = pd.read_csv(full)
    few = ["ts_id", "date", "feature_2", "weight", "feature_0", "resp", "feature_1", "resp_1", "feature_17"]
    return _Bases(full=full.read_bytes(), few=frame[few].to_csv(index=False).encode(), few_no_ts=frame[few[1:]].to_csv(index=False).encode())


class _Bases(dict):
    def __repr__(self) -> str:  # hypothesis prints a failing case's arguments
        return "bases"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _pandas(path: Path) -> pd.DataFrame | None:
    """The oracle's reading of `path`, None when pandas cannot read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.read_csv(path, encoding_errors="replace", low_memory=False)
    except Exception:  # noqa: BLE001 - whatever pandas fails on, ingest must reject
        return None


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def check_case(data: bytes, work: Path, piece_bytes: int) -> str:
    """Ingest `data` and hold the result against pandas; returns 'error' or 'ingested'."""
    src, store = work / "case.csv", work / "store"
    src.write_bytes(data)
    try:
        with mock.patch.object(csvfile, "PIECE_BYTES", piece_bytes):
            ingest(src, store, force=True)
    except UserError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
        return "error"
    frame = _pandas(src)
    assert frame is not None, "ingested a file pandas cannot read"
    s = Store(store)
    assert s.features == schema.sorted_features(list(frame.columns))
    ours = np.concatenate([np.asarray(sh) for sh in s.shards])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = frame[s.features].astype(np.float32).to_numpy()
    np.testing.assert_array_equal(ours, theirs)  # shape, values and NaN positions
    finite = ~np.isnan(theirs)
    assert (_bits(ours)[finite] == _bits(theirs)[finite]).all()  # bit for bit (-0.0 too)
    assert not np.isinf(ours).any() and (s.side("weight") >= 0).all()  # what pandas lets in, the store must not
    for c in ["weight", "resp", "resp_1"]:
        assert not s.has(c) or np.isfinite(s.side(c)).all(), c
    for c in s.manifest["side"]:
        if c in ("date", "ts_id") and c in frame:
            np.testing.assert_array_equal(s.side(c), frame[c].to_numpy())
        elif c == "ts_id":
            np.testing.assert_array_equal(s.side(c), np.arange(len(frame)))
        else:
            assert (_bits(s.side(c)) == _bits(frame[c].astype(np.float32).to_numpy())).all(), c
    return "ingested"


CASE = {"base": st.sampled_from(["full", "few", "few_no_ts"]), "ops": mutations(), "piece_bytes": st.sampled_from([4096, csvfile.PIECE_BYTES])}


def mutated_case(bases, work, base, ops, piece_bytes):
    """Apply the mutations `ops` to the base file `base` and check the result."""
    data = bases[base]
    for m in ops:
        data = mutate(data, m)
    check_case(data, work, piece_bytes)


@settings(max_examples=EXAMPLES, **FUZZ)
@given(**CASE)
def test_fuzz_ingest_equals_pandas_or_one_line_error(bases, work, base, ops, piece_bytes):
    mutated_case(bases, work, base, ops, piece_bytes)


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("JSMP_FUZZ_EXAMPLES", "5000")), **FUZZ)
@given(**CASE)
def test_fuzz_ingest_many(bases, work, base, ops, piece_bytes):
    mutated_case(bases, work, base, ops, piece_bytes)


@pytest.mark.parametrize("ops", [
    [("replace_field", 5, 9, b"1\xff5")],
    [("replace_field", 6, 2, b"0.\x005")],
    [("truncate", 5000, 0, b"")],
    [("replace_field", 3, 1, b"-NAN")],
    [("cr_only", 0, 0, b"")],
    [("blank_line", 4, 0, b"")],
], ids=["non_utf8", "nul", "truncated", "nan_weight", "cr_only", "blank_line"])
def test_cli_one_line_exit_2(bases, tmp_path, ops):
    data = bases["full"]
    for m in ops:
        data = mutate(data, m)
    (tmp_path / "bad.csv").write_bytes(data)
    p = run_data(["ingest", str(tmp_path / "bad.csv"), "--store", str(tmp_path / "s")])
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.strip()] == [p.stderr.splitlines()[-1]] and p.stderr.startswith("error: "), p.stderr
    assert not (tmp_path / "s").exists()
