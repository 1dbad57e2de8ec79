"""Fuzzing jsmp.predict: mutated test files give, row by row and with --batch, either the same
submission or the same one-line error (exit 2), never another exception or a file left behind."""

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.predict import main

# odd spellings of missing or bad values; stray bytes; all put in fields or anywhere in the file
ODD_VALUES = ["", "NaN", "nan", "-NaN", "NAN", "nAn", "NA", "N/A", "#N/A", "null", "NULL", "None", "1.#IND", "-1.#QNAN",
              "nan(1)", "inf", "-Inf", "Infinity", "1e39", "-1e400", "abc", " 1", "1 ", "0x10", "1e", "--1", "+2", "1,5",
              '"3"', '"', "2.5", "-7", "99999999999", "9223372036854775808", "\ufeff"]
STRAY = [b"\x00", b"\xff", b"\xef\xbb\xbf", b'"', b"\r", b"\r\n", b"\n", b"\n\n", b",", b" ", b"\t", b"a"]


@pytest.fixture(scope="module")
def mlp_run(runs) -> Path:
    """The session's MLP run (conftest's runs: trained once, shared with test_predict.py)."""
    return runs["mlp"]


@pytest.fixture(scope="module")
def base_lines(tmp_path_factory) -> list[str]:
    """A valid example_test.csv-layout file (2 days, ~10 rows, NaN blocks), short values, as lines."""
    path = write_csv(SynthSpec(days=2, rows_per_day=5, seed=4), tmp_path_factory.mktemp("fuzz") / "t.csv", test_layout=True)
    return pd.read_csv(path).to_csv(index=False, float_format="%.3g").splitlines(keepends=True)


LINE_MUTATIONS = ["delete field", "duplicate field", "swap columns", "swap fields", "odd value", "delete line",
                  "duplicate line", "swap lines"]
BYTE_MUTATIONS = ["stray bytes", "truncate"]


@st.composite
def mutated(draw, lines: list[str]) -> bytes:
    """`lines` with 1-3 mutations (those of fields and lines first, then those of bytes), as bytes."""
    rows = [line.rstrip("\n").split(",") for line in lines]
    kinds = draw(st.lists(st.sampled_from(LINE_MUTATIONS + BYTE_MUTATIONS), min_size=1, max_size=3))
    for kind in kinds:
        if kind in BYTE_MUTATIONS or not rows:
            continue
        i, k = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(rows) - 1))
        j, m = draw(st.integers(0, len(rows[0]) - 1)), draw(st.integers(0, len(rows[0]) - 1))
        if kind == "swap columns":  # the same two fields in every line: still a valid file
            for r in rows:
                if max(j, m) < len(r):
                    r[j], r[m] = r[m], r[j]
        elif kind == "delete line":
            del rows[i]
        elif kind == "duplicate line":
            rows.insert(i, list(rows[i]))
        elif kind == "swap lines":
            rows[i], rows[k] = rows[k], rows[i]
        elif j < len(rows[i]):
            if kind == "delete field":
                del rows[i][j]
            elif kind == "duplicate field":
                rows[i].insert(j, rows[i][j])
            elif kind == "swap fields" and m < len(rows[i]):
                rows[i][j], rows[i][m] = rows[i][m], rows[i][j]
            elif kind == "odd value":
                rows[i][j] = draw(st.sampled_from(ODD_VALUES))
    data = "".join(",".join(r) + "\n" for r in rows).encode()
    for kind in kinds:
        if kind == "stray bytes":
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.sampled_from(STRAY)) + data[at:]
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
    return data


def predict(capsys, args: list[str]) -> str | None:
    """`python -m jsmp.predict ARGS` in-process: None when it succeeds, else its one `error:` line (exit 2)."""
    capsys.readouterr()
    try:
        assert main(args) == 0
        return None
    except SystemExit as e:
        err = capsys.readouterr().err.splitlines()
        assert e.code == 2 and len(err) == 1 and err[0].startswith("error: "), (e.code, err)
        return err[0]


def check_both_modes(capsys, run: Path, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test.csv"
        test.write_bytes(data)
        online, batch = Path(tmp) / "online.csv", Path(tmp) / "batch.csv"
        errors = [predict(capsys, ["--run", str(run), "--data", str(test), "--out", str(out), *mode])
                  for out, mode in [(online, []), (batch, ["--batch"])]]
        assert errors[0] == errors[1]
        left = sorted(os.listdir(tmp))
        if errors[0] is None:
            assert left == ["batch.csv", "online.csv", "test.csv"]
            assert online.read_bytes() == batch.read_bytes()
        else:
            assert left == ["test.csv"], errors[0]  # no submission, no temp
        assert test.read_bytes() == data


FUZZ = settings(derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_the_base_file_gives_a_submission(mlp_run, base_lines, capsys, tmp_path):
    (tmp_path / "t.csv").write_text("".join(base_lines))
    assert predict(capsys, ["--run", str(mlp_run), "--data", str(tmp_path / "t.csv"), "--out", str(tmp_path / "s.csv")]) is None
    assert len((tmp_path / "s.csv").read_text().splitlines()) == len(base_lines) > 8


@pytest.mark.parametrize("examples", [pytest.param(250, id="hundreds"), pytest.param(3000, id="thousands", marks=pytest.mark.slow)])
def test_mutated_files_give_the_same_submission_or_error_in_both_modes(mlp_run, base_lines, capsys, examples):
    @settings(FUZZ, max_examples=examples)
    @given(data=mutated(base_lines))
    def fuzz(data):
        check_both_modes(capsys, mlp_run, data)

    fuzz()
