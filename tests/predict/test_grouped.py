"""Serving a 2024-layout run per time step (jsmp.predict.grouped): the inputs equal training's, per instrument."""

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from conftest import train_in_process
from jsmp.data.schema import responders
from jsmp.errors import UserError
from jsmp.inputs.spec import InputSpec
from jsmp.inputs.state import OnlineState
from jsmp.predict.predictor import Predictor
from jsmp.store.store import Store

TRAIN_ARGS = {
    "mlp": ["model=mlp", "data.targets=[responder_6,responder_7,responder_8]"],
    "mlp-nolags": ["model=mlp", "data.lags=false"],
    "gru": ["model=gru", "data.window.length=4"],
    "gru-day": ["model=gru", "data.window.length=4", "data.window.cross_days=false"],
    "mlp-r7": ["model=mlp", "data.targets=[responder_7,responder_6]"],  # predicts responder_7 (its first target)
}


class RtmdfRuns(dict):
    """Run dirs of 1-epoch runs on the tiny 2024 store (TRAIN_ARGS), trained by train.py (in this process) on first use."""

    def __init__(self, root: Path, store: Path):
        super().__init__()
        self.root, self.store = root, store

    def __missing__(self, name: str) -> Path:
        run = self.root / name
        if not (run / "checkpoints").is_dir():
            p = train_in_process([f"hydra.run.dir={run}", "data=rtmdf", f"data.store={self.store}", "trainer.max_epochs=1",
                                  "logger=none", "data.batch_size=256", *TRAIN_ARGS[name]], {"JSMP_ROOT": str(self.root)})
            assert p.returncode == 0, p.stderr[-3000:]
        self[name] = run
        return run


@pytest.fixture(scope="session")
def rtmdf_runs(tiny_rtmdf_store, tmp_path_factory):
    return RtmdfRuns(tmp_path_factory.getbasetemp() / "rtmdf-runs", tiny_rtmdf_store)


def time_steps(store_path: Path):
    """(test_df, lags_df or None) per (date, time_id) of a store, as the 2024 API hands them over: lags_df at a
    date's first time step, the previous date's responders (None when that date is not in the store)."""
    s = Store(store_path)
    side = {c: np.asarray(s.side(c)) for c in ["date", "time_id", "symbol_id", "weight", *responders(s.side_names)]}
    x = np.concatenate([np.asarray(sh) for sh in s.shards])
    test = pd.DataFrame({"row_id": np.arange(s.n_rows), "date_id": side["date"], "time_id": side["time_id"],
                         "symbol_id": side["symbol_id"], "weight": side["weight"], "is_scored": True})
    test = pd.concat([test, pd.DataFrame(x, columns=s.features)], axis=1)
    lags = pd.DataFrame({"date_id": side["date"] + 1, "time_id": side["time_id"], "symbol_id": side["symbol_id"],
                         **{f"{c}_lag_1": side[c] for c in responders(s.side_names)}})
    dates = set(side["date"].tolist())
    for date, day in test.groupby("date_id", sort=True):
        first = True
        for _, step in day.groupby("time_id", sort=True):
            yield step, (lags[lags.date_id == date] if first and date - 1 in dates else None)
            first = False


def validation_outputs(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(store rows, model outputs) of the run's validation rows, from the training DataModule's batches."""
    cfg = OmegaConf.load(run / "config.yaml")
    dm = instantiate(cfg.data)
    dm.connect(get_class(cfg.model._target_))
    dm.setup()
    p = Predictor(run)
    batch = dm.val_set[np.arange(len(dm.val_set))]
    with torch.inference_mode():
        return dm.val_set.rows, p.model.predict_output(batch).numpy()


@pytest.mark.parametrize("name", list(TRAIN_ARGS))
def test_serving_per_time_step_equals_the_validation_batches(name, rtmdf_runs, tiny_rtmdf_store):
    run = rtmdf_runs[name]
    rows, expected = validation_outputs(run)
    p = Predictor(run)
    target = "responder_7" if name == "mlp-r7" else "responder_6"  # the output column: the run's first target
    served = pd.concat([p.predict_batch(t, lags) for t, lags in time_steps(tiny_rtmdf_store)])
    assert p.target == target and list(served.columns) == ["row_id", target] and len(served) == Store(tiny_rtmdf_store).n_rows
    got = served.set_index("row_id")[target].to_numpy()[rows]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.std(expected) > 0  # the comparison is not vacuous


def test_an_instrument_joining_gets_a_padded_window():
    spec = InputSpec(["a", "b"], "ffill", [10.0, 20.0], {"length": 3, "cross_days": False}, group="symbol_id",
                     targets=["responder_6"], task="regression", ffill=["a", "b"])
    state = OnlineState(spec)
    nan = np.nan
    b = state.inputs(0, np.array([7]), np.array([[1.0, nan]], np.float32))
    np.testing.assert_array_equal(b["x"][0], [[0, 0], [0, 0], [1, 20]])  # NaN with nothing earlier -> fill value
    np.testing.assert_array_equal(b["mask"][0], [False, False, True])
    b = state.inputs(0, np.array([7, 9]), np.array([[nan, 2.0], [3.0, nan]], np.float32))  # 9 joins
    np.testing.assert_array_equal(b["x"][0], [[0, 0], [1, 20], [1, 2]])  # 7's a forward-filled from its own row
    np.testing.assert_array_equal(b["x"][1], [[0, 0], [0, 0], [3, 20]])  # 9's b not from 7's rows
    np.testing.assert_array_equal(b["mask"], [[False, True, True], [False, False, True]])
    b = state.inputs(0, np.array([9]), np.array([[nan, 4.0]], np.float32))  # 7 vanishes
    np.testing.assert_array_equal(b["x"][0], [[0, 0], [3, 20], [3, 4]])
    b = state.inputs(1, np.array([7, 9]), np.array([[5.0, 6.0], [nan, nan]], np.float32))  # a new date: no ffill, no window
    np.testing.assert_array_equal(b["x"], [[[0, 0], [0, 0], [5, 6]], [[0, 0], [0, 0], [10, 20]]])
    np.testing.assert_array_equal(b["mask"], [[False, False, True]] * 2)
    b = state.inputs(1, np.array([7]), np.array([[nan, 1.0]], np.float32))
    np.testing.assert_array_equal(b["x"][0], [[0, 0], [5, 6], [5, 1]])


def first_steps(store: Path, n: int = 2):
    steps = time_steps(store)
    return [next(steps) for _ in range(n)]


def test_a_missing_feature_is_one_line(rtmdf_runs, tiny_rtmdf_store):
    p = Predictor(rtmdf_runs["mlp"])
    (test, _), = first_steps(tiny_rtmdf_store, 1)
    with pytest.raises(UserError) as e:
        p.predict_batch(test.drop(columns=["feature_05", "symbol_id"]))
    assert str(e.value) == "test_df: missing column(s) the model needs: symbol_id, feature_05"
    with pytest.raises(UserError, match=r"^lags_df: missing column\(s\) the model needs: responder_3_lag_1$"):
        p.predict_batch(test, pd.DataFrame({"time_id": [0], "symbol_id": [0],
                                            **{f"responder_{k}_lag_1": [0.0] for k in range(9) if k != 3}}))
    with pytest.raises(UserError, match="expected the rows of one date_id and time_id"):
        p.predict_batch(pd.concat([s for s, _ in first_steps(tiny_rtmdf_store)]))


def test_pandas_in_pandas_out_and_polars_in_polars_out(rtmdf_runs, tiny_rtmdf_store):
    (test, _), = first_steps(tiny_rtmdf_store, 1)
    out = Predictor(rtmdf_runs["mlp"]).predict_batch(test)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["row_id", "responder_6"]
    assert out.row_id.tolist() == test.row_id.tolist() and out.responder_6.dtype == np.float32
    got = Predictor(rtmdf_runs["mlp"]).predict_batch(pl.from_pandas(test))
    assert isinstance(got, pl.DataFrame) and got.columns == ["row_id", "responder_6"]
    np.testing.assert_array_equal(got["responder_6"].to_numpy(), out.responder_6.to_numpy())


def test_an_ensemble_of_runs_predicting_different_targets_is_refused(rtmdf_runs):
    with pytest.raises(UserError) as e:
        Predictor([rtmdf_runs["mlp"], rtmdf_runs["mlp-r7"]])
    assert str(e.value) == ("Predictor: the ensemble's runs predict different targets (responder_6, responder_7: their "
                            "data.targets[0]); averaging them would mean nothing: ensemble runs of one target")


def test_the_replay_of_a_run_of_another_target_writes_and_scores_that_column(rtmdf_runs, tiny_rtmdf_store, tmp_path, capsys):
    from jsmp.metrics import r2_score
    from jsmp.predict.cli import main

    out = tmp_path / "submission.csv"
    out.write_text("row_id,responder_6\n0,0.5\n")  # an earlier submission (of another target): replaced
    assert main(["--run", str(rtmdf_runs["mlp-r7"]), "--data", str(tiny_rtmdf_store), "--out", str(out)]) == 0
    sub = pd.read_csv(out)
    s = Store(tiny_rtmdf_store)
    truth = pd.DataFrame({c: np.asarray(s.side(c)) for c in ("ts_id", "responder_7", "weight")})
    assert list(sub.columns) == ["row_id", "responder_7"] and sub.row_id.tolist() == truth.ts_id.tolist()
    r2 = float(capsys.readouterr().out.split("; r2 ")[1].split()[0])
    assert r2 == pytest.approx(r2_score(truth.responder_7, sub.responder_7, truth.weight), abs=5.1e-5)


def test_the_2021_calls_are_refused_for_a_2024_run(rtmdf_runs):
    p = Predictor(rtmdf_runs["mlp"])
    with pytest.raises(UserError, match=r"trained per instrument \(symbol_id\) on the 2024 layout; predict_row serves"):
        p.predict_row({})


@pytest.mark.parametrize("name", ["mlp", "mlp-nolags"])
def test_polars_frames_are_served_as_pandas_frames(name, rtmdf_runs, tiny_rtmdf_store):
    """As Kaggle's 2024 gateway hands them over; a run trained with data.lags=false too (lags_df then unused)."""
    by_pandas, by_polars = Predictor(rtmdf_runs[name]), Predictor(rtmdf_runs[name])
    assert len(by_pandas.lag_features) == (9 if name == "mlp" else 0)
    for test, lags in time_steps(tiny_rtmdf_store):
        want = by_pandas.predict_batch(test, lags)
        got = by_polars.predict_batch(pl.from_pandas(test), None if lags is None else pl.from_pandas(lags))
        assert isinstance(got, pl.DataFrame)
        np.testing.assert_array_equal(got["row_id"].to_numpy(), want.row_id.to_numpy())
        np.testing.assert_array_equal(got["responder_6"].to_numpy(), want.responder_6.to_numpy())


def test_bad_row_ids_and_lags_of_another_date_are_refused_and_change_nothing(rtmdf_runs, tiny_rtmdf_store):
    steps = first_steps(tiny_rtmdf_store, 20)
    k = next(i for i, (_, lags) in enumerate(steps) if lags is not None)  # date 1's first step, with its lags
    p, fresh = Predictor(rtmdf_runs["mlp"]), Predictor(rtmdf_runs["mlp"])
    for t, lags in steps[:k]:
        p.predict_batch(t, lags)
        fresh.predict_batch(t, lags)
    test, lags = steps[k]
    date = int(test.date_id.iloc[0])
    n = len(test)
    cases = [
        (test.assign(row_id=test.row_id + 0.5), lags, "test_df, column 'row_id': dtype float64; expected integers (int8 ... int64) in every row"),
        (test.assign(row_id=pd.array([None, *range(n - 1)], dtype="Int64")), lags, "test_df, column 'row_id': 1 null(s); expected"),
        (pl.from_pandas(test).with_columns(pl.Series("row_id", [None, *range(n - 1)], pl.Int64)), pl.from_pandas(lags),
         "test_df, column 'row_id': 1 null(s); expected"),
        (test.assign(row_id=[f"r{i}" for i in range(n)]), lags, "test_df, column 'row_id': dtype "),
        (test, lags.assign(date_id=date - 1),
         f"lags_df: date_id {date - 1} handed with test_df's date_id {date}; expected the lags of date_id {date} (the previous "
         f"date's responders, labelled with the date served)"),
    ]
    for bad_test, bad_lags, message in cases:
        with pytest.raises(UserError) as e:
            p.predict_batch(bad_test, bad_lags)
        assert str(e.value).startswith(message), str(e.value)
    pd.testing.assert_frame_equal(p.predict_batch(test, lags), fresh.predict_batch(test, lags))  # no state changed


def test_symbols_out_of_range_and_features_beyond_the_limit_are_refused_and_change_nothing(rtmdf_runs, tiny_rtmdf_store):
    steps = first_steps(tiny_rtmdf_store, 20)
    k = next(i for i, (_, lags) in enumerate(steps) if lags is not None)
    p, fresh = Predictor(rtmdf_runs["mlp"]), Predictor(rtmdf_runs["mlp"])
    assert p.feature_limit == 1e6  # the store's, through preprocess.json
    for t, lags in steps[:k]:
        p.predict_batch(t, lags)
        fresh.predict_batch(t, lags)
    test, lags = steps[k]
    far = test.copy()
    far.loc[far.index[1], "feature_03"] = 3e38
    row_id = int(test.row_id.iloc[1])
    cases = [
        (test.assign(symbol_id=test.symbol_id.where(test.row_id != row_id, -1)), lags,
         f"test_df row_id {row_id}, column 'symbol_id': got -1; expected an integer from 0 to 1048575"),
        (test, lags.assign(symbol_id=lags.symbol_id - 1),
         f"lags_df row {int(np.argmax(lags.symbol_id.to_numpy() == 0))}, column 'symbol_id': got -1; expected an integer from 0 to 1048575"),
        (far, lags, f"test_df row_id {row_id}, column 'feature_03': got 3e+38, beyond the feature limit ±1e+06 ("),
        (pl.from_pandas(far), pl.from_pandas(lags), f"test_df row_id {row_id}, column 'feature_03': got 3e+38, beyond"),
    ]
    for bad_test, bad_lags, message in cases:
        with pytest.raises(UserError) as e:
            p.predict_batch(bad_test, bad_lags)
        assert str(e.value).startswith(message), str(e.value)
    pd.testing.assert_frame_equal(p.predict_batch(test, lags), fresh.predict_batch(test, lags))  # no state changed


@pytest.mark.parametrize("name", ["gru", "mlp-r7"])
def test_a_run_with_a_version_1_preprocess_json_serves_identically(name, rtmdf_runs, tiny_rtmdf_store, tmp_path):
    """A 2024 run trained before preprocess.json had a version still serves: lags by name, ffill by the fill rule,
    its targets from config.yaml (mlp-r7: responder_7 first) and its task from the checkpoint."""
    import json
    import shutil

    new = InputSpec.load(rtmdf_runs[name] / "preprocess.json")
    old = shutil.copytree(rtmdf_runs[name], tmp_path / "old")
    (old / "preprocess.json").write_text(json.dumps({k: getattr(new, k) for k in
                                                     ("features", "fill", "fill_value", "window", "group", "feature_limit")}))
    by_new, by_old = Predictor(rtmdf_runs[name]), Predictor(old)
    assert by_old.prep == by_new.prep and by_old.target == by_new.target == new.targets[0]
    assert len(new.lag_features) == 9 and new.ffill == new.features[:-9] and new.task == "regression"
    for test, lags in first_steps(tiny_rtmdf_store, 60):
        pd.testing.assert_frame_equal(by_old.predict_batch(test, lags), by_new.predict_batch(test, lags))
    from jsmp.predict.cli import main  # the command line's replay reads the old file too

    outs = [tmp_path / "new.csv", tmp_path / "old.csv"]
    for run, out in zip((rtmdf_runs[name], old), outs):
        assert main(["--run", str(run), "--data", str(tiny_rtmdf_store), "--out", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_predictor_is_a_step_predictor_for_a_2024_run_and_refuses_the_2021_calls(rtmdf_runs):
    from jsmp.predict import RowPredictor, StepPredictor

    run = rtmdf_runs["mlp"]
    p = Predictor(run)
    assert type(p) is StepPredictor and isinstance(p, Predictor) and type(StepPredictor(run)) is StepPredictor
    with pytest.raises(UserError) as e:
        RowPredictor(run)
    assert str(e.value) == (f"{run}: trained on the 2024 layout (per instrument), regression; RowPredictor serves the 2021 "
                            f"layout (one global row order), trade decisions")
    x = np.zeros((2, len(p.features)), np.float32)
    for call, name in [(lambda: p.predict_batch(np.zeros(2), x), "predict_batch(date, x)"), (lambda: p.step(0, x[0]), "step(date, x)"),
                       (lambda: p.predict_proba_batch(np.zeros(2), x), "predict_proba_batch(date, x)")]:
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value) == (f"{run}: trained per instrument (symbol_id) on the 2024 layout; {name} serves other runs: "
                                f"call predict_batch(test_df, lags_df) once per time_id")
