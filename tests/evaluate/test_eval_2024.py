"""`jsmp eval` on 2024-layout runs beyond one run's own validation days: an ensemble is its members' mean
prediction, `--fold K` scores CV fold K's validation dates with each run's own preprocess.json, `--data`
serves a labelled source per time step (jsmp.predict.replay) and scores it per date; refusals are one line,
exit 2, nothing written. Runs are trained once (conftest rtmdf_runs, and here), commands run in this process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from conftest import train_in_process
from jsmp.batches.datamodule import batches
from jsmp.batches.splits import choose
from jsmp.data.synthetic_rtmdf import RtmdfSpec, write_parquet
from jsmp.evaluate.cli import main
from jsmp.inputs.spec import InputSpec
from jsmp.metrics import r2_score
from jsmp.predict import Predictor
from jsmp.predict.predictor import mean_proba
from jsmp.store.store import Store

TRAIN = ["data=rtmdf", "trainer.max_epochs=2", "logger=none", "data.batch_size=256"]


@pytest.fixture(scope="module")
def more_runs(tiny_rtmdf_store, tmp_path_factory) -> dict[str, Path]:
    """An MLP of responder_6 on the holdout split (an ensemble partner of conftest's GRU), and a 2-fold CV
    multirun of MLPs (10-date blocks, 2-date gap: fold 0 trains on dates 0-7 and validates on 10-19, fold 1
    on 0-17 and 20-29)."""
    root = tmp_path_factory.mktemp("eval-2024")
    for argv in ([f"hydra.run.dir={root / 'mlp6'}", "model=mlp", "seed=7"],
                 ["-m", f"hydra.sweep.dir={root / 'cv'}", "hydra.sweep.subdir=${hydra.job.num}", "model=mlp", "data.fold=0,1", "data.cv.folds=2", "data.cv.gap_days=2"]):
        p = train_in_process([*argv[:2], f"data.store={tiny_rtmdf_store}", *TRAIN, *argv[2:]], {"JSMP_ROOT": str(root)})
        assert p.returncode == 0, p.stderr[-3000:]
    return {"mlp6": root / "mlp6", "cv": root / "cv"}


def evaluate(capsys, *argv) -> tuple[list[str], dict, pd.DataFrame]:
    """main(ARGV) (ending with --out DIR): its stdout lines, eval.json and daily_r2.csv."""
    assert main(list(map(str, argv))) == 0
    out = Path(argv[-1])
    return (capsys.readouterr().out.splitlines(), json.loads((out / "eval.json").read_text()),
            pd.read_csv(out / "daily_r2.csv"))


def refused(capsys, out: Path, *argv) -> str:
    """The one error line of main(ARGV --out OUT), after checking exit 2 and that OUT was not written."""
    with pytest.raises(SystemExit) as e:
        main([*map(str, argv), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and not out.exists(), err
    return err


def val_predictions(run: Path, rows_of: Path | None = None):
    """(date, y, weight, pred) (n,) of `run`'s best checkpoint on the validation rows of the DataModule that
    `rows_of`'s config.yaml (default: the run's) builds, inputs made with the run's own preprocess.json."""
    from hydra.utils import get_class, instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load((rows_of or run) / "config.yaml")
    dm = instantiate(cfg.data)
    dm.connect(get_class(OmegaConf.load(run / "config.yaml").model._target_))
    dm.setup()
    val = batches(dm.val_set.store, dm.val_set.rows, InputSpec.load(run / "preprocess.json"), dm.labels,
                  lags=dm.val_set.lags)
    with torch.inference_mode():
        pred = Predictor(run).model.predict_output(val[np.arange(len(val))]).numpy()
    s, rows = dm.store, val.rows
    return (np.asarray(s.side("date"))[rows], *(np.asarray(s.side(c))[rows] for c in (cfg.data.targets[0], "weight")), pred)


def test_an_ensemble_is_scored_by_its_members_mean_prediction_each_member_by_its_logged_val_r2(
        rtmdf_runs, more_runs, tmp_path, capsys):
    runs = [rtmdf_runs["gru"], more_runs["mlp6"]]
    lines, got, daily = evaluate(capsys, "--run", runs[0], "--run", runs[1], "--out", tmp_path / "ens")
    parts = [val_predictions(r) for r in runs]
    date, y, w, _ = parts[0]
    assert all(np.array_equal(p[0], date) and np.array_equal(p[1], y) for p in parts)  # the same rows
    ensemble = mean_proba([p[3] for p in parts])
    assert got["r2"] == pytest.approx(r2_score(y, ensemble, w), abs=1e-6)
    assert got["logged_val_r2"] is None and got["target"] == "responder_6" and got["rows"] == len(y) and got["notes"] == []
    for k, (run, m) in enumerate(zip(runs, got["members"])):
        metrics = json.loads((run / "metrics.json").read_text())
        assert m["run"] == str(run) and m["r2"] == pytest.approx(metrics["best/val/r2"], abs=1e-6)
        assert m["logged_val_r2"] == {"value": metrics["best/val/r2"], "epoch": metrics["best_epoch"], "key": "best/val/r2"}
        assert f"  member {k}: r2 {m['r2']:.4f}  (logged at epoch {metrics['best_epoch']}: " in "\n".join(lines)
    assert lines[0] == "scored ensemble of 2 models averaged: GRU gru, MLP mlp6"
    assert not any(line.startswith("logged by training") for line in lines)
    dates = np.unique(date)
    assert list(daily.columns) == ["date", "r2", "rows", "weight", "member_0", "member_1"]
    assert daily.date.tolist() == dates.tolist() and daily.rows.tolist() == [int((date == d).sum()) for d in dates]
    np.testing.assert_allclose(daily.r2, [r2_score(y[date == d], ensemble[date == d], w[date == d]) for d in dates], atol=1e-6)
    np.testing.assert_allclose(daily.member_1, [r2_score(y[date == d], parts[1][3][date == d], w[date == d]) for d in dates],
                               atol=1e-6)


def test_fold_k_scores_that_folds_validation_dates_with_each_runs_own_fill_values(more_runs, tiny_rtmdf_store, tmp_path, capsys):
    cv = more_runs["cv"]
    fold_days = choose(Store(tiny_rtmdf_store).days, 1.0, "end", {}, {"folds": 2, "gap_days": 2}, 1).val
    lines, got, daily = evaluate(capsys, "--run", cv, "--fold", 1, "--out", tmp_path / "f1")
    assert daily.date.tolist() == Store(tiny_rtmdf_store).days[fold_days].tolist() == list(range(20, 30))
    assert got["days"] == 10 and "fold 1 validation days (10 days, dates 20..29)" in got["data"]
    # member 1 validated on fold 1 in training: its logged val/r2; member 0's inputs use its own fill values
    m1 = json.loads((cv / "1" / "metrics.json").read_text())
    assert got["members"][1]["r2"] == pytest.approx(m1["best/val/r2"], abs=1e-6) and got["members"][1]["logged_val_r2"] is None
    parts = [val_predictions(cv / k, rows_of=cv / "1") for k in ("0", "1")]
    _, y, w, _ = parts[0]
    assert got["members"][0]["r2"] == pytest.approx(r2_score(y, parts[0][3], w), abs=1e-6)
    assert got["r2"] == pytest.approx(r2_score(y, mean_proba([p[3] for p in parts]), w), abs=1e-6)
    spec0, spec1 = (InputSpec.load(cv / k / "preprocess.json") for k in ("0", "1"))
    assert spec0.fill_value != spec1.fill_value  # so the fill values used are member 0's own
    assert got["notes"] == [] and not any(line.startswith("note:") for line in lines)
    # fold 0's dates 10..19: fold 1 trained on 10..17, so its score there is in-sample
    _, got0, _ = evaluate(capsys, "--run", cv, "--fold", 0, "--out", tmp_path / "f0")
    assert got0["notes"] == ["note: member 1 (1) trained on 8 of these days (in-sample for it)"]
    # the folds' own validation dates differ: an ensemble is scored on rows every member scores
    assert refused(capsys, tmp_path / "x", "--run", cv) == (
        "error: --run: member 1 (1) validates on dates 20..29, member 0 (0) on 10..19 (date 10 is member 0's only); "
        "an ensemble is scored on rows every member scores: pass --fold K (a CV fold's validation days) or --data SOURCE")
    assert "data.fold must be an integer in [0, 1]" in refused(capsys, tmp_path / "x", "--run", cv, "--fold", 2)


@pytest.fixture(scope="module")
def parquet_source(tmp_path_factory) -> Path:
    """The tiny 2024 store's data (conftest tiny_rtmdf_store's spec) in train.parquet's layout."""
    return write_parquet(RtmdfSpec(days=30, times=8, symbols=6, seed=3), tmp_path_factory.mktemp("src") / "synth",
                         partitions=2) / "train.parquet"


def test_data_is_served_per_time_step_and_scored_per_date_as_the_validation_scores_its_dates(
        rtmdf_runs, more_runs, tiny_rtmdf_store, parquet_source, tmp_path, capsys):
    gru = rtmdf_runs["gru"]
    _, own, own_daily = evaluate(capsys, "--run", gru, "--out", tmp_path / "own")
    lines, got, daily = evaluate(capsys, "--run", gru, "--data", tiny_rtmdf_store, "--out", tmp_path / "store")
    store = Store(tiny_rtmdf_store)
    assert daily.date.tolist() == store.days.tolist() and got["rows"] == store.n_rows == daily.rows.sum()
    assert got["data"] == f"{tiny_rtmdf_store}, all dates (30 days, dates 0..29), served per time step"
    assert got["logged_val_r2"] is None and not any(line.startswith("logged by training") for line in lines)
    # the validation dates, served after every earlier date (the same lags, fills and windows): the same R²s
    val = daily[daily.date.isin(own_daily.date)].reset_index(drop=True)
    np.testing.assert_allclose(val.r2, own_daily.r2, atol=1e-6)
    assert val.rows.tolist() == own_daily.rows.tolist() and val.weight.tolist() == own_daily.weight.tolist()
    # the same rows in train.parquet's layout: the same scores
    _, pq_got, pq_daily = evaluate(capsys, "--run", gru, "--data", parquet_source, "--out", tmp_path / "pq")
    assert pq_got["r2"] == got["r2"] and pq_daily.r2.tolist() == daily.r2.tolist()
    # --fold with --data (a CV's folds as an ensemble): that fold's dates of the source, each served as with all dates
    cv = more_runs["cv"]
    _, _, all_daily = evaluate(capsys, "--run", cv, "--data", tiny_rtmdf_store, "--out", tmp_path / "cv")
    _, f_got, f_daily = evaluate(capsys, "--run", cv, "--data", tiny_rtmdf_store, "--fold", 1, "--out", tmp_path / "f")
    assert f_daily.date.tolist() == list(range(20, 30)) and "fold 1 validation days (10 days, dates 20..29)" in f_got["data"]
    assert f_daily.r2.tolist() == all_daily.r2[all_daily.date >= 20].tolist()
    # an ensemble on --data: each member scored as alone, the R² of their mean prediction
    _, mlp, _ = evaluate(capsys, "--run", more_runs["mlp6"], "--data", tiny_rtmdf_store, "--out", tmp_path / "m")
    _, ens, ens_daily = evaluate(capsys, "--run", gru, "--run", more_runs["mlp6"], "--data", tiny_rtmdf_store,
                                 "--out", tmp_path / "e")
    assert [m["r2"] for m in ens["members"]] == [got["r2"], mlp["r2"]] and ens_daily.member_0.tolist() == daily.r2.tolist()
    assert ens["r2"] not in (got["r2"], mlp["r2"])


def test_bad_data_is_one_line_and_nothing_written(rtmdf_runs, parquet_source, tmp_path, capsys):
    run = rtmdf_runs["mlp-r7"]  # predicts responder_7
    unlabelled = tmp_path / "unlabelled.parquet"
    frame = pd.read_parquet(parquet_source).drop(columns=["responder_7", "partition_id"], errors="ignore")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), unlabelled)
    assert refused(capsys, tmp_path / "out", "--run", run, "--data", unlabelled) == (
        f"error: --data {unlabelled}: no responder_7 column, so no labels to score against; expected a labelled 2024 "
        f"source (a grouped store, or train.parquet's layout); for test files use python -m jsmp.predict")
    assert refused(capsys, tmp_path / "out", "--run", run, "--data", tmp_path / "nope") == (
        f"error: --data {tmp_path / 'nope'}: no such file or store")
    assert refused(capsys, tmp_path / "out", "--run", run, "--run", rtmdf_runs["gru"]).startswith(
        "error: Predictor: the ensemble's runs predict different targets (responder_6, responder_7")
