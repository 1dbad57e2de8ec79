"""The 2024 replay (jsmp.predict.replay, `python -m jsmp.predict` on a grouped run): one predict_batch call
per time_id with the API's columns, lags at each date's start (from a lags file or the source's responders),
an atomic row_id,<the run's target> submission, r2 over scored rows; bad input -> one line, exit 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_main, train_in_process
from jsmp.data.synthetic_rtmdf import FEATURES, RtmdfSpec, write_parquet, write_store
from jsmp.errors import UserError
from jsmp.metrics import r2_score
from jsmp.predict.cli import main
from jsmp.predict.replay import LagsFile, read_days, replay

SPEC = RtmdfSpec(days=4, times=8, symbols=6, seed=5)
API = ["row_id", "date_id", "time_id", "symbol_id", "weight", "is_scored", *FEATURES]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """SPEC in the real layout: train.parquet/ (hive), lags.parquet, and the train rows as one pandas frame."""
    d = write_parquet(SPEC, tmp_path_factory.mktemp("replay") / "synth", partitions=2)
    return d, pd.read_parquet(d / "train.parquet").drop(columns="partition_id", errors="ignore")


class Echo:
    """A stand-in predictor of `target`: predicts 0.1 * feature_00 (NaN -> 0) and records what it was handed."""

    def __init__(self, fail_at_date: int | None = None, target: str = "responder_6"):
        self.calls, self.fail_at_date, self.target = [], fail_at_date, target

    def predict_batch(self, test_df, lags_df=None):
        if self.fail_at_date is not None and test_df.date_id.iloc[0] == self.fail_at_date:
            raise UserError("planted failure")
        self.calls.append((test_df.copy(), None if lags_df is None else lags_df.copy()))
        return pd.DataFrame({"row_id": test_df.row_id.to_numpy(), self.target: 0.1 * np.nan_to_num(test_df.feature_00.to_numpy())})


def read_submission(path) -> pd.DataFrame:
    assert path.read_text().startswith("row_id,responder_6\n")
    return pd.read_csv(path)


def test_replay_hands_one_time_id_per_call_and_the_previous_dates_responders_at_its_start(synth, tmp_path):
    d, train = synth
    echo, out = Echo(), tmp_path / "submission.csv"
    done = replay(echo, read_days(d / "train.parquet", FEATURES), out, FEATURES)
    steps = train.groupby(["date_id", "time_id"], sort=False).size()
    assert len(echo.calls) == len(steps) == len(done.latency) and done.rows == len(train) and done.dates == SPEC.days
    for (df, lags), ((date, time), n) in zip(echo.calls, steps.items()):
        assert list(df.columns) == API and len(df) == n and set(df.date_id) == {date} and set(df.time_id) == {time}
        assert df.is_scored.all()
        first = time == train.time_id[train.date_id == date].min()
        if not first or date == 0:
            assert lags is None
            continue
        prev = train[train.date_id == date - 1]  # the previous date's responders, relabelled to this date
        assert list(lags.columns) == ["date_id", "time_id", "symbol_id", *(f"responder_{k}_lag_1" for k in range(9))]
        assert (lags.date_id == date).all() and np.array_equal(lags.symbol_id, prev.symbol_id)
        assert np.array_equal(lags.responder_6_lag_1, prev.responder_6)
    got = pd.concat([df for df, _ in echo.calls], ignore_index=True)
    np.testing.assert_array_equal(got[FEATURES].to_numpy(), train[FEATURES].to_numpy())
    sub = read_submission(out)
    assert list(sub.row_id) == list(range(len(train)))  # no row_id column: the row number
    pred = (0.1 * np.nan_to_num(train.feature_00.to_numpy(np.float32))).astype(np.float64)  # as Echo: float32
    np.testing.assert_array_equal(sub.responder_6, pred)  # written exactly (float64 round trip)
    assert done.r2 == pytest.approx(r2_score(train.responder_6, pred, train.weight), abs=1e-12) and done.scored == len(train)
    assert "r2 " in done.summary() and "p99" in done.summary()


def test_the_submission_and_its_r2_are_of_the_predictors_target(synth, tmp_path):
    d, train = synth
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    six = replay(Echo(), read_days(d / "train.parquet", FEATURES), a, FEATURES)
    three = replay(Echo(target="responder_3"), read_days(d / "train.parquet", FEATURES), b, FEATURES)
    head, rest = b.read_bytes().split(b"\n", 1)
    assert head == b"row_id,responder_3" and a.read_bytes() == b"row_id,responder_6\n" + rest  # only the header differs
    pred = pd.read_csv(b).responder_3
    assert three.r2 == pytest.approx(r2_score(train.responder_3, pred, train.weight), abs=1e-12)
    assert six.r2 == pytest.approx(r2_score(train.responder_6, pred, train.weight), abs=1e-12) and three.r2 != six.r2
    unlabelled = replay(Echo(target="responder_9"), read_days(d / "train.parquet", FEATURES), b, FEATURES)
    assert unlabelled.r2 is None and unlabelled.summary().endswith("; no responder_9 in the source: no r2")


def test_out_replaces_a_submission_of_any_responder_and_nothing_else(tmp_path):
    from jsmp.predict.submission import is_submission

    for first, ours in (("ts_id,action", True), ("row_id,responder_6", True), ("row_id,responder_17\r", True),
                        ("row_id,responder_x", False), ("row_id,resp", False), ("row_id,responder_6,extra", False),
                        ("id,responder_6", False)):
        (tmp_path / "f.csv").write_text(f"{first}\n0,1\n")
        assert is_submission(tmp_path / "f.csv") == ours, first


def test_a_lags_file_and_lags_derived_from_the_source_are_the_same(synth, tmp_path):
    d, _ = synth
    derived, given = Echo(), Echo()
    replay(derived, read_days(d / "train.parquet", FEATURES), tmp_path / "a.csv", FEATURES)
    replay(given, read_days(d / "train.parquet", FEATURES), tmp_path / "b.csv", FEATURES, LagsFile(d / "lags.parquet"))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    handed = [(i, lags) for i, (_, lags) in enumerate(derived.calls) if lags is not None]
    assert len(handed) == SPEC.days - 1
    for i, lags in handed:
        pd.testing.assert_frame_equal(given.calls[i][1], lags)
    assert [i for i, (_, lags) in enumerate(given.calls) if lags is not None] == [i for i, _ in handed]


def test_a_store_replays_as_its_parquet_files(synth, tmp_path):
    d, _ = synth
    from_files, from_store = Echo(), Echo()
    replay(from_files, read_days(d / "train.parquet", FEATURES), tmp_path / "a.csv", FEATURES)
    replay(from_store, read_days(write_store(SPEC, tmp_path / "store"), FEATURES), tmp_path / "b.csv", FEATURES)
    assert len(from_files.calls) == len(from_store.calls)
    for (a, la), (b, lb) in zip(from_files.calls, from_store.calls):
        pd.testing.assert_frame_equal(a, b)
        assert (la is None) == (lb is None) and (la is None or la.equals(lb))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_row_id_and_is_scored_columns_are_used(synth, tmp_path):
    d, train = synth
    test = train.assign(row_id=np.arange(len(train), dtype=np.int64) + 2**40, is_scored=train.symbol_id != 2)
    pq.write_table(pa.Table.from_pandas(test, preserve_index=False), tmp_path / "test.parquet", row_group_size=100)
    echo, out = Echo(), tmp_path / "submission.csv"
    done = replay(echo, read_days(tmp_path / "test.parquet", FEATURES), out, FEATURES)
    sub = read_submission(out)
    assert list(sub.row_id) == list(test.row_id)  # beyond float32's exact integers: read as int64
    assert list(pd.concat([df.is_scored for df, _ in echo.calls])) == list(test.is_scored)
    s = test.is_scored.to_numpy()
    assert done.scored == s.sum() and done.r2 == pytest.approx(r2_score(test.responder_6[s], sub.responder_6[s], test.weight[s]), abs=1e-12)


def write(df: pd.DataFrame, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    return path


def labelled(train: pd.DataFrame, **columns) -> pd.DataFrame:
    """The train rows with row_id (100, 101, ...) and is_scored (True) columns, `columns` replacing them."""
    return train.assign(**{"row_id": np.arange(len(train), dtype=np.int64) + 100, "is_scored": True, **columns})


def two_parts(root, a: pd.DataFrame, b: pd.DataFrame):
    write(a, root / "part-0.parquet")
    write(b, root / "part-1.parquet")
    return root


def test_row_ids_in_any_order_and_integer_type_are_used(synth, tmp_path):
    _, train = synth
    ids = (np.arange(len(train))[::-1] * 7).astype(np.uint32)  # decreasing, unique
    test = labelled(train, row_id=ids, is_scored=train.symbol_id != 1)
    half = len(test) // 2
    echo, out = Echo(), tmp_path / "submission.csv"
    replay(echo, read_days(two_parts(tmp_path / "test", test[:half], test[half:]), FEATURES), out, FEATURES)
    assert list(read_submission(out).row_id) == ids.tolist()
    assert list(pd.concat([df.is_scored for df, _ in echo.calls])) == list(test.is_scored)


def bad_row_columns(train: pd.DataFrame, root):
    """(source, the one-line error) per kind of bad row_id / is_scored column."""
    t, n, half = labelled(train), len(train), len(train) // 2
    a, b = root / "a" / "part-0.parquet", root / "a" / "part-1.parquet"
    yield two_parts(root / "a", t[:half], t[half:].drop(columns="row_id")), (
        f"{b}: no 'row_id' column, but {a} has one; expected row_id in every part file or in none")
    a, b = root / "b" / "part-0.parquet", root / "b" / "part-1.parquet"
    yield two_parts(root / "b", t[:half].drop(columns="is_scored"), t[half:]), (
        f"{a}: no 'is_scored' column, but {b} has one; expected is_scored in every part file or in none")
    f = write(t.assign(row_id=pd.array([*range(n - 1), None], dtype="Int64")), root / "null.parquet")
    yield f, f"{f} row {n}, column 'row_id': empty (null); expected integers (int8 ... int64) in every row"
    ids = t.row_id.to_numpy().copy()
    ids[half + 2] = ids[1]  # part-1's row 3 repeats part-0's row 2
    a, b = root / "c" / "part-0.parquet", root / "c" / "part-1.parquet"
    yield two_parts(root / "c", t[:half], t[half:].assign(row_id=ids[half:])), (
        f"{b} row 3, column 'row_id': {ids[1]} appears again (first at {a} row 2); expected a unique row_id in every row of the source")
    f = write(t.assign(row_id=t.row_id + 0.5), root / "float.parquet")
    yield f, f"{f}, column 'row_id': has type double; expected integers (int8 ... int64)"
    f = write(t.assign(row_id=[f"r{i}" for i in range(n)]), root / "string.parquet")
    yield f, f"{f}, column 'row_id': has type {pq.read_schema(f).field('row_id').type}; expected integers (int8 ... int64)"
    f = write(t.assign(row_id=np.arange(n, dtype=np.uint64) + np.uint64(2**63 - 10)), root / "big.parquet")
    yield f, f"{f} row 11, column 'row_id': {2**63} is beyond int64 range; expected integers (int8 ... int64)"
    f = write(t.assign(is_scored=np.where(train.symbol_id == 2, "False", "True")), root / "scored.parquet")
    yield f, f"{f}, column 'is_scored': has type {pq.read_schema(f).field('is_scored').type}; expected booleans (true/false)"
    f = write(t.assign(is_scored=pd.array([True, None, *[False] * (n - 2)], dtype="boolean")), root / "scored-null.parquet")
    yield f, f"{f} row 2, column 'is_scored': empty (null); expected booleans (true/false) in every row"


def test_bad_row_id_or_is_scored_columns_are_refused_before_any_row_is_served(synth, tmp_path):
    messages = []
    for source, message in bad_row_columns(synth[1], tmp_path):
        messages.append(message)
        with pytest.raises(UserError) as e:
            read_days(source, FEATURES)  # (the CLI builds the Predictor after this)
        assert str(e.value) == message
    assert "has type string" in messages[5] or "has type large_string" in messages[5]  # (pandas >= 3 writes large_string)


def test_hidden_files_and_spark_leftovers_in_the_source_are_left_out(synth, tmp_path):
    import shutil

    d, _ = synth
    src = shutil.copytree(d / "train.parquet", tmp_path / "test")
    (src / "_temporary" / "0").mkdir(parents=True)
    shutil.copy(next(src.glob("*/*.parquet")), src / "_temporary" / "0" / "part-0.parquet")  # would repeat rows
    (src / "partition_id=0" / ".part-1.parquet").write_bytes(b"PAR1 half-written")
    (src / "_SUCCESS").write_bytes(b"")
    replay(Echo(), read_days(d / "train.parquet", FEATURES), tmp_path / "a.csv", FEATURES)
    replay(Echo(), read_days(src, FEATURES), tmp_path / "b.csv", FEATURES)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def lags_of(train: pd.DataFrame, shift: int) -> pd.DataFrame:
    """A lags file's rows: each date's responders, labelled date_id + `shift` (1: right; 0: the leak)."""
    r = [f"responder_{k}" for k in range(9)]
    lags = train[["date_id", "time_id", "symbol_id", *r]].rename(columns={c: f"{c}_lag_1" for c in r})
    return lags.assign(date_id=lags.date_id + shift)


def test_lags_that_are_not_the_previous_dates_responders_are_refused(synth, tmp_path):
    _, train = synth
    source = synth[0] / "train.parquet"
    rule = "lags holding a date's own responders would leak its answers"
    leak = write(lags_of(train, 0), tmp_path / "leak.parquet")
    with pytest.raises(UserError) as e:
        replay(Echo(), read_days(source, FEATURES), tmp_path / "submission.csv", FEATURES, LagsFile(leak))
    both = train[train.date_id == 1].merge(train[train.date_id == 0], on=["time_id", "symbol_id"], suffixes=("", "_0"))
    first = both.sort_values(["time_id", "symbol_id"]).iloc[0]  # the first row in key order: its date-1 value differs
    assert first.responder_0 != first.responder_0_0
    assert str(e.value) == (
        f"--lags {leak}: date_id 1, column 'responder_0_lag_1': {np.float32(first.responder_0)!s} at (time_id, symbol_id) = "
        f"({first.time_id:.0f}, {first.symbol_id:.0f}), but --data's responder_0 there on date_id 0 is {np.float32(first.responder_0_0)!s}; "
        f"expected the responders of the date before (date_id 0 of --data), labelled date_id 1; {rule}")
    right = lags_of(train, 1)
    for name, lags, what in [
        ("value", right.assign(responder_6_lag_1=np.where(np.arange(len(right)) == 50, 1.5, right.responder_6_lag_1)), None),
        ("row", right.drop(index=right.index[right.date_id == 2][3]), "is missing"),
    ]:
        f = write(lags, tmp_path / f"{name}.parquet")
        with pytest.raises(UserError) as e:
            replay(Echo(), read_days(source, FEATURES), tmp_path / "submission.csv", FEATURES, LagsFile(f))
        assert str(e.value).startswith(f"--lags {f}: date_id {lags.date_id.iloc[50] if what is None else 2}") and rule in str(e.value)
    assert list(tmp_path.glob("submission*")) == [] and list(tmp_path.glob(".submission*")) == []


def test_no_partial_submission_on_an_error(synth, tmp_path):
    d, _ = synth
    out = tmp_path / "submission.csv"
    with pytest.raises(UserError, match="planted failure"):
        replay(Echo(fail_at_date=2), read_days(d / "train.parquet", FEATURES), out, FEATURES)
    assert list(tmp_path.iterdir()) == []


def test_a_source_missing_a_feature_is_refused_before_any_call(synth, tmp_path):
    _, train = synth
    pq.write_table(pa.Table.from_pandas(train.drop(columns="feature_05"), preserve_index=False), tmp_path / "t.parquet")
    with pytest.raises(UserError) as e:
        read_days(tmp_path / "t.parquet", FEATURES)
    assert str(e.value) == (f"{tmp_path / 't.parquet'}: missing column(s) the model needs: feature_05; expected the 2024 test layout "
                            f"(date_id, time_id, symbol_id, weight and the features the run was trained on)")


# -- the CLI, in this process (a run trained on the 2024 layout; the Predictor serves it)

@pytest.fixture(scope="module")
def rtmdf_run(tiny_rtmdf_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("rtmdf-run")
    p = train_in_process([f"hydra.run.dir={root}/run", "data=rtmdf", f"data.store={tiny_rtmdf_store}", "model=mlp",
                          "trainer.max_epochs=1", "logger=none"], {"JSMP_ROOT": str(root)})
    assert p.returncode == 0, p.stderr[-3000:]
    return root / "run"


def predict(run, *args):
    """`python -m jsmp.predict --run RUN ARGS` in this process (run_main): exit code, stdout, stderr."""
    return run_main(main, ["--run", str(run), *map(str, args)])


def last_line(p) -> str:
    return p.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def replayed(rtmdf_run, synth, tmp_path_factory):
    """`python -m jsmp.predict` on the run, lags derived from the source: (process, submission path)."""
    out = tmp_path_factory.mktemp("replayed") / "submission.csv"
    return predict(rtmdf_run, "--data", synth[0] / "train.parquet", "--out", out), out


def check_replay(p, out, train, online: bool) -> pd.DataFrame:
    assert p.returncode == 0, p.stderr[-3000:]
    sub = read_submission(out)
    assert list(sub.row_id) == list(range(len(train))) and np.isfinite(sub.responder_6).all()
    line = p.stdout.strip().splitlines()[-1]
    r2 = float(line.split("; r2 ")[1].split()[0])
    assert r2 == pytest.approx(r2_score(train.responder_6, sub.responder_6, train.weight), abs=1e-4)
    assert f"{len(train):,} rows in " in line and "p99" in line and ("online learning" in line) == online
    return sub


def test_cli_replays_a_2024_run_into_a_submission_with_r2(replayed, synth):
    check_replay(*replayed, synth[1], online=False)


def test_cli_replays_with_online_learning(rtmdf_run, synth, tmp_path):
    d, train = synth
    out = tmp_path / "submission.csv"
    p = predict(rtmdf_run, "--data", d / "train.parquet", "--lags", d / "lags.parquet", "--out", out,
                "--online-learning", "--online-steps", "2", "--online-lr", "1e-3")
    check_replay(p, out, train, online=True)


def test_cli_replay_with_a_lags_file_equals_the_api_called_per_time_id(replayed, rtmdf_run, synth, tmp_path, capsys):
    from jsmp.predict import Predictor

    d, train = synth
    out = tmp_path / "submission.csv"
    assert main(["--run", str(rtmdf_run), "--data", str(d / "train.parquet"), "--lags", str(d / "lags.parquet"), "--out", str(out)]) == 0
    assert out.read_bytes() == replayed[1].read_bytes()  # a lags file, or lags derived from the source: the same
    lags = pd.read_parquet(d / "lags.parquet")
    predictor, preds = Predictor(rtmdf_run), []
    test = train.assign(row_id=np.arange(len(train)), is_scored=True)[API]
    for (date, _), df in test.groupby(["date_id", "time_id"], sort=False):
        first = df.time_id.iloc[0] == test.time_id[test.date_id == date].min()
        day_lags = lags[lags.date_id == date] if first and date > 0 else None
        preds.append(predictor.predict_batch(df.reset_index(drop=True), day_lags))
    mine = pd.concat(preds, ignore_index=True)
    sub = read_submission(out)
    assert list(mine.row_id) == list(sub.row_id)
    np.testing.assert_allclose(sub.responder_6, mine.responder_6, rtol=1e-6, atol=1e-7)


def test_cli_a_source_missing_a_feature_is_one_line_and_exit_2(rtmdf_run, synth, tmp_path):
    pq.write_table(pa.Table.from_pandas(synth[1].drop(columns="feature_05"), preserve_index=False), tmp_path / "t.parquet")
    p = predict(rtmdf_run, "--data", tmp_path / "t.parquet", "--out", tmp_path / "submission.csv")
    assert p.returncode == 2 and last_line(p).startswith(f"error: {tmp_path / 't.parquet'}: missing column(s) the model needs: feature_05;")
    assert not (tmp_path / "submission.csv").exists()


def refused(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    assert e.value.code == 2
    return capsys.readouterr().err.strip()


def test_bad_options_are_one_line_and_exit_2(rtmdf_run, synth, tmp_path, capsys):
    d, out = synth[0] / "train.parquet", tmp_path / "submission.csv"
    assert refused(capsys, "--run", rtmdf_run, "--data", d, "--lags", tmp_path / "nope.parquet", "--out", out) == (
        f"error: --lags {tmp_path / 'nope.parquet'}: no such file or directory; "
        f"expected a lags.parquet (date_id, time_id, symbol_id, responder_N_lag_1)")
    assert refused(capsys, "--run", rtmdf_run, "--data", d, "--online-steps", "3", "--out", out) == "error: --online-steps: needs --online-learning"
    assert refused(capsys, "--run", rtmdf_run, "--data", d, "--batch", "--out", out) == (
        f"error: --batch: {rtmdf_run} was trained on the 2024 layout, which is replayed per time_id; drop --batch")
    unlabelled = tmp_path / "test.parquet"  # no responders and no --lags: nothing to learn from
    pq.write_table(pa.Table.from_pandas(synth[1].filter(regex="^(?!responder)"), preserve_index=False), unlabelled)
    assert refused(capsys, "--run", rtmdf_run, "--data", unlabelled, "--online-learning", "--out", out) == (
        "error: --online-learning: no answers for date 0 before date 1: give --lags, or a source with responder columns")
    assert not out.exists()


def test_cli_refuses_a_string_row_id_and_an_out_inside_the_lags(rtmdf_run, synth, tmp_path, capsys):
    d, train = synth
    out = tmp_path / "submission.csv"
    bad = write(labelled(train, row_id=[f"r{i}" for i in range(len(train))]), tmp_path / "test.parquet")
    assert refused(capsys, "--run", rtmdf_run, "--data", bad, "--out", out) == (
        f"error: {bad}, column 'row_id': has type {pq.read_schema(bad).field('row_id').type}; expected integers (int8 ... int64)")
    lags = tmp_path / "lags"  # a hive directory, date_id=K/part-0.parquet
    for date, g in pd.read_parquet(d / "lags.parquet").groupby("date_id"):
        write(g.drop(columns="date_id"), lags / f"date_id={date}" / "part-0.parquet")
    files = sorted(lags.rglob("*"))
    inside = lags / "date_id=1" / "submission.parquet"
    assert refused(capsys, "--run", rtmdf_run, "--data", d / "train.parquet", "--lags", lags, "--out", inside) == (
        f"error: --out {inside}: is inside the input directory {lags}; writing there would change it. Choose another --out")
    assert refused(capsys, "--run", rtmdf_run, "--data", d / "train.parquet", "--lags", d / "lags.parquet", "--out",
                   d / "lags.parquet") == (
        f"error: --out {d / 'lags.parquet'}: is the input {d / 'lags.parquet'}; writing there would destroy it. Choose another --out")
    assert sorted(lags.rglob("*")) == files and not out.exists()
    assert main(["--run", str(rtmdf_run), "--data", str(d / "train.parquet"), "--lags", str(lags), "--out", str(out)]) == 0
    assert len(read_submission(out)) == len(train)


def test_online_learning_on_a_2021_run_is_refused(tmp_path, capsys):
    from jsmp.inputs.spec import InputSpec

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    InputSpec(["feature_0"], "mean", [0.0], targets=["resp"], task="action", ffill=[]).save(run / "preprocess.json")
    assert refused(capsys, "--run", run, "--data", tmp_path / "test.csv", "--online-learning") == (
        f"error: --online-learning: {run} was trained on the 2021 layout (one global row order); --online-learning is for 2024-layout runs")


def test_the_replay_reads_the_source_within_the_runs_feature_limit(rtmdf_run, synth, tmp_path, capsys):
    import json
    import shutil

    train = synth[1].copy()
    train.loc[7, "feature_03"] = 2e6  # beyond the default limit, within a run's 1e7
    src, out = write(labelled(train), tmp_path / "test.parquet"), tmp_path / "submission.csv"
    assert refused(capsys, "--run", rtmdf_run, "--data", src, "--out", out).startswith(
        f"error: {src} row 8, column 'feature_03': got 2e+06, beyond the feature limit ±1e+06 (")
    assert not out.exists()
    run = tmp_path / "run"  # a run trained on a store ingested with --feature-limit 1e7
    shutil.copytree(rtmdf_run, run)
    prep = json.loads((run / "preprocess.json").read_text())
    (run / "preprocess.json").write_text(json.dumps({**prep, "feature_limit": 1e7}))
    assert main(["--run", str(run), "--data", str(src), "--out", str(out)]) == 0
    assert len(read_submission(out)) == len(train)
