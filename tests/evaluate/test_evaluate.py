"""jsmp.evaluate and ensembles: a run's eval equals its logged val/utility, the CSV and PNG agree with
the score, an ensemble is the mean probability of its members (online = batch), a CV multirun dir
stands for its folds, refusals are one line with exit 2."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from conftest import run_cli
from jsmp.batches.splits import choose
from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.errors import UserError
from jsmp.metrics import utility_from_daily, utility_score
from jsmp.predict import Predictor
from jsmp.predict.model import member_runs
from jsmp.store.store import Store

# 1-epoch runs on the tiny store (30 days) that differ in model, fill and window (the LSTM's windows
# cross days, so its first validation rows look back on earlier days), and a 2-fold CV multirun
# (10-day blocks, 2-day gap: fold 0 trains on days 0-7 and validates on 10-19, fold 1 on 0-17 and 20-29)
TRAIN = {
    "mlp": ["data.fill=ffill"],
    "lstm": ["model=lstm", "model.hidden=8", "data.window.length=8"],
    "cv": ["-m", "data.fold=0,1", "data.cv.folds=2", "data.cv.gap_days=2"],
}


@pytest.fixture(scope="session")
def runs(tiny_store, tmp_path_factory) -> dict[str, Path]:
    """Run dirs mlp, lstm and the multirun dir cv (jobs 0/ and 1/), trained by train.py once a session."""
    root = tmp_path_factory.getbasetemp() / "evaluate-runs"
    for name, args in TRAIN.items():
        run = root / name
        if not any(run.glob("**/checkpoints/*.ckpt")):
            where = [args[0], f"hydra.sweep.dir={run}"] if args[0] == "-m" else [f"hydra.run.dir={run}"]
            p = run_cli(["train.py", *where, f"data.store={tiny_store}", "trainer.max_epochs=1", "logger=none", *args[len(where) - 1:]],
                        env={"JSMP_ROOT": str(root)})
            assert p.returncode == 0, p.stderr[-3000:]
    return {name: root / name for name in TRAIN}


def evaluate(*args: str) -> tuple[str, dict]:
    """`python -m jsmp.evaluate ARGS` (with --out); its stdout and eval.json."""
    p = run_cli(["-m", "jsmp.evaluate", *args])
    assert p.returncode == 0, p.stderr[-3000:]
    out = Path(args[args.index("--out") + 1])
    return p.stdout, json.loads((out / "eval.json").read_text())


def cli_error(*args: str) -> str:
    p = run_cli(["-m", "jsmp.evaluate", *args])
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def store_rows(store: Path, day_index: np.ndarray) -> tuple[Store, np.ndarray]:
    s = Store(store)
    return s, s.day_rows(day_index)


@pytest.mark.parametrize("name", ["mlp", "lstm"])
def test_eval_equals_the_logged_val_utility_and_writes_a_sane_report(runs, tiny_store, tmp_path, name):
    metrics = json.loads((runs[name] / "metrics.json").read_text())
    stdout, got = evaluate("--run", str(runs[name]), "--out", str(tmp_path / "ev"))
    assert got["utility"] == pytest.approx(metrics["best/val/utility"], rel=1e-5, abs=1e-5)  # logged as float32
    assert got["auc"] == pytest.approx(metrics["best/val/auc"], abs=1e-5)
    assert got["accuracy"] == pytest.approx(metrics["best/val/acc"], abs=1e-6)
    assert got["oracle"] == pytest.approx(metrics["best/val/utility_oracle"], rel=1e-5)
    assert got["logged_val_utility"]["value"] == metrics["best/val/utility"] and got["logged_val_utility"]["epoch"] == 0
    assert f"utility {got['utility']:.4f}" in stdout and "logged by training at epoch 0" in stdout
    s, rows = store_rows(tiny_store, choose(Store(tiny_store).days, 1.0, "end", {"val_frac": 0.2, "gap_days": 5}, {}, None).val)
    assert got["rows"] == len(rows) and got["days"] == 6 and got["data"].endswith("validation days (6 days, dates 24..29)")

    csv = pd.read_csv(tmp_path / "ev" / "daily_pnl.csv")
    assert list(csv.columns) == ["date", "pnl", "cumulative", "oracle", "oracle_cumulative"]
    assert csv["date"].tolist() == np.unique(s.side("date")[rows]).tolist()
    assert utility_from_daily(csv["pnl"].to_numpy()) == pytest.approx(got["utility"], rel=1e-9)  # the utility's p_i
    assert utility_from_daily(csv["oracle"].to_numpy()) == pytest.approx(got["oracle"], rel=1e-9)
    np.testing.assert_allclose(csv["cumulative"], np.cumsum(csv["pnl"]))
    oracle = utility_score(s.side("date")[rows], s.side("weight")[rows], s.side("resp")[rows], s.side("resp")[rows] > 0)
    assert got["oracle"] == pytest.approx(oracle, rel=1e-9)
    assert imread(tmp_path / "ev" / "cumulative_pnl.png").shape[:2] == (700, 900)


def test_default_out_is_a_new_eval_dir_each_time(runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["mlp"], run)
    for n in (1, 2):
        p = run_cli(["-m", "jsmp.evaluate", "--run", str(run)])
        assert p.returncode == 0 and f"wrote {run}/eval-{n}/" in p.stdout, p.stderr[-2000:]
    assert sorted(f.name for f in (run / "eval-1").iterdir()) == ["cumulative_pnl.png", "daily_pnl.csv", "eval.json"]


def test_a_relative_store_is_found_from_any_directory(tiny_store, tmp_path):
    """`jsmp train data.store=tiny` in one directory, `jsmp eval --run RUN` in another: the store is
    taken from where the run trained (its .hydra/hydra.yaml), not from the working directory."""
    trained_in, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    trained_in.mkdir()
    elsewhere.mkdir()
    (trained_in / "tiny").symlink_to(tiny_store)
    run = tmp_path / "run"
    p = run_cli(["-m", "jsmp", "train", "data.store=tiny", f"hydra.run.dir={run}", "trainer.max_epochs=1", "logger=none"],
                cwd=trained_in, env={"JSMP_ROOT": str(trained_in)})
    assert p.returncode == 0, p.stderr[-3000:]
    p = run_cli(["-m", "jsmp", "eval", "--run", str(run), "--out", str(tmp_path / "ev")], cwd=elsewhere)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert got["utility"] == pytest.approx(json.loads((run / "metrics.json").read_text())["best/val/utility"], rel=1e-5, abs=1e-5)
    assert str(trained_in / "tiny") in got["data"]


def test_ensemble_is_the_mean_probability_and_online_equals_batch(runs, tiny_store, tmp_path):
    s = Store(tiny_store)
    date, x = np.asarray(s.side("date")), s.gather(np.arange(s.n_rows))
    one = [Predictor(runs[n]).predict_proba_batch(date, x.copy()) for n in ("mlp", "lstm")]
    ens = Predictor([runs["mlp"], runs["lstm"]])
    assert [m.prep.fill for m in ens.members] == ["ffill", "mean"] and ens.members[1].window is not None
    proba = ens.predict_proba_batch(date, x.copy())
    np.testing.assert_array_equal(proba, (one[0] + one[1]) / np.float32(2))  # by hand
    batch = ens.predict_batch(date, x.copy())
    assert [ens.step(d, r) for d, r in zip(date, x)] == batch.tolist() and 0 < batch.mean() < 1

    # the CLI's ensemble score on the validation rows: the hand-made mean's utility
    _, got = evaluate("--run", str(runs["mlp"]), "--run", str(runs["lstm"]), "--out", str(tmp_path / "ev"))
    val = s.day_rows(np.arange(24, 30))
    w, r = s.side("weight")[val], s.side("resp")[val]
    assert got["utility"] == pytest.approx(utility_score(date[val], w, r, proba[val] > 0.5), rel=1e-6)
    for member, p in zip(got["members"], one):
        assert member["utility"] == pytest.approx(utility_score(date[val], w, r, p[val] > 0.5), rel=1e-6)
    csv = pd.read_csv(tmp_path / "ev" / "daily_pnl.csv")
    assert list(csv.columns)[-2:] == ["member_0", "member_1"]
    assert [m["run"] for m in got["members"]] == [str(runs["mlp"]), str(runs["lstm"])]


def test_predict_cli_serves_an_ensemble_row_by_row_as_in_batch(runs, tmp_path):
    test = write_csv(SynthSpec(days=2, rows_per_day=40, seed=5), tmp_path / "test.csv", test_layout=True)
    subs = []
    for mode in ([], ["--batch"]):
        out = tmp_path / f"sub{len(subs)}.csv"
        p = run_cli(["-m", "jsmp.predict", "--run", str(runs["mlp"]), "--run", str(runs["cv"]), "--data", str(test),
                     "--out", str(out), *mode])
        assert p.returncode == 0, p.stderr[-2000:]
        assert re.search(r"ensemble of 3 models averaged in probability: MLP mlp, MLP 0\S*, MLP 1\S*\)$", p.stdout.strip())
        assert ("latency of the 3-model ensemble per row p50" in p.stdout) != bool(mode)
        subs.append(out.read_text())
    assert subs[0] == subs[1]


def test_a_cv_multirun_dir_stands_for_its_folds(runs, tiny_store, tmp_path):
    assert [d.name.split("_")[0] for d in member_runs(runs["cv"])] == ["0", "1"]  # job dirs 0[_overrides], 1[...]
    assert member_runs(runs["mlp"]) == [runs["mlp"]]
    stdout, got = evaluate("--run", str(runs["cv"]), "--out", str(tmp_path / "ev"))
    assert "validation days no member trained on (10 days, dates 20..29)" in stdout and "note:" not in stdout
    assert got["days"] == 10 and [m["run"] for m in got["members"]] == [str(d) for d in member_runs(runs["cv"])]
    fold1 = json.loads((member_runs(runs["cv"])[1] / "metrics.json").read_text())  # fold 1 alone on its own rows
    assert got["members"][1]["utility"] == pytest.approx(fold1["best/val/utility"], rel=1e-5, abs=1e-5)
    stdout, got = evaluate("--run", str(runs["cv"]), "--fold", "0", "--out", str(tmp_path / "ev0"))
    assert "fold 0 validation days (10 days, dates 10..19)" in stdout
    assert re.search(r"note: member 1 \(1\S*\) trained on 8 of these days \(in-sample for it\)", stdout)
    assert "note: member 0" not in stdout


def test_data_scores_every_row_of_a_labelled_file_or_store(runs, tiny_store, tmp_path):
    spec = SynthSpec(days=3, rows_per_day=50, seed=11)
    labelled = write_csv(spec, tmp_path / "train.csv")
    _, from_csv = evaluate("--run", str(runs["lstm"]), "--data", str(labelled), "--out", str(tmp_path / "a"))
    df = pd.read_csv(labelled)
    p = Predictor(runs["lstm"])
    proba = p.predict_proba_batch(df["date"].to_numpy(), df[p.features].to_numpy(np.float32))
    assert from_csv["rows"] == len(df) and from_csv["days"] == 3
    assert from_csv["utility"] == pytest.approx(utility_score(df["date"], df["weight"], df["resp"], proba > 0.5), rel=1e-6)
    _, from_store = evaluate("--run", str(runs["lstm"]), "--data", str(tiny_store), "--out", str(tmp_path / "b"))
    assert from_store["rows"] == Store(tiny_store).n_rows


def test_refusals_are_one_line(runs, tiny_store, tmp_path):
    assert "no such run dir or checkpoint file" in cli_error("--run", str(tmp_path / "nope"))
    test = write_csv(SynthSpec(days=2, rows_per_day=20, seed=5), tmp_path / "test.csv", test_layout=True)
    err = cli_error("--run", str(runs["mlp"]), "--data", str(test), "--out", str(tmp_path / "x"))
    assert "no resp column, so no labels to score against" in err and not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    err = cli_error("--run", str(runs["mlp"]), "--out", str(tmp_path / "full"))
    assert "--out" in err and "not empty" in err and (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert "data.fold must be an integer in [0, 4]" in cli_error("--run", str(runs["mlp"]), "--fold", "7", "--out", str(tmp_path / "y"))
    with pytest.raises(UserError, match="no run given"):
        Predictor([])
