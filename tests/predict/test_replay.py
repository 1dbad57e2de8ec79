"""The 2024 replay (jsmp.predict.replay, `python -m jsmp.predict` on a grouped run): one predict_batch call
per time_id with the API's columns, lags at each date's start (from a lags file or the source's responders),
an atomic row_id,responder_6 submission, r2 over scored rows; bad input -> one line, exit 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
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
    """A stand-in predictor: predicts 0.1 * feature_00 (NaN -> 0) and records what it was handed."""

    def __init__(self, fail_at_date: int | None = None):
        self.calls, self.fail_at_date = [], fail_at_date

    def predict_batch(self, test_df, lags_df=None):
        if self.fail_at_date is not None and test_df.date_id.iloc[0] == self.fail_at_date:
            raise UserError("planted failure")
        self.calls.append((test_df.copy(), None if lags_df is None else lags_df.copy()))
        return pd.DataFrame({"row_id": test_df.row_id.to_numpy(), "responder_6": 0.1 * np.nan_to_num(test_df.feature_00.to_numpy())})


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


# -- the CLI, as a user runs it (a run trained on the 2024 layout; the Predictor serves it)

@pytest.fixture(scope="module")
def rtmdf_run(tiny_rtmdf_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("rtmdf-run")
    p = run_cli(["train.py", f"hydra.run.dir={root}/run", "data=rtmdf", f"data.store={tiny_rtmdf_store}", "model=mlp",
                 "trainer.max_epochs=1", "logger=none"], env={"JSMP_ROOT": str(root)})
    assert p.returncode == 0, p.stderr[-3000:]
    return root / "run"


def predict(run, *args):
    return run_cli(["-m", "jsmp.predict", "--run", str(run), *map(str, args)])


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


def test_online_learning_on_a_2021_run_is_refused(tmp_path, capsys):
    from jsmp.batches.inputs import InputSpec

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    InputSpec(["feature_0"], "mean", [0.0]).save(run / "preprocess.json")
    assert refused(capsys, "--run", run, "--data", tmp_path / "test.csv", "--online-learning") == (
        f"error: --online-learning: {run} was trained on the 2021 layout (one global row order); --online-learning is for 2024-layout runs")
