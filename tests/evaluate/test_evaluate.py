"""jsmp.evaluate and ensembles: a run's eval equals its logged val/utility, the CSV and PNG agree with
the score, an ensemble is the mean probability of its members (online = batch), a CV multirun dir
stands for its folds, refusals are one line with exit 2. Runs are trained once a session and the
commands run in this process (conftest train_in_process, run_main); `python -m jsmp.evaluate` once as a
user runs it, for output and for a refusal."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from conftest import RTMDF_RUNS, run_cli, run_main
from jsmp.batches.splits import choose
from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.errors import UserError
from jsmp.evaluate.cli import main as evaluate_main
from jsmp.metrics import utility_from_daily, utility_score
from jsmp.predict import Predictor
from jsmp.predict.model import member_runs
from jsmp.store.store import Store


def evaluate(*args: str) -> tuple[str, dict]:
    """`python -m jsmp.evaluate ARGS` (with --out) in this process; its stdout and eval.json."""
    p = run_main(evaluate_main, args)
    assert p.returncode == 0, p.stderr[-3000:]
    out = Path(args[args.index("--out") + 1])
    return p.stdout, json.loads((out / "eval.json").read_text())


def cli_error(*args: str, user: bool = False) -> str:
    """The one `error: ` line of `python -m jsmp.evaluate ARGS`: in this process, or (user) as a user runs it."""
    p = run_cli(["-m", "jsmp.evaluate", *args]) if user else run_main(evaluate_main, args)
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
    for n in (1, 2):  # the first as a user runs it, the second in this process
        argv = ["--run", str(run)]
        p = run_cli(["-m", "jsmp.evaluate", *argv]) if n == 1 else run_main(evaluate_main, argv)
        assert p.returncode == 0 and f"wrote {run}/eval-{n}/" in p.stdout, p.stderr[-2000:]
    assert sorted(f.name for f in (run / "eval-1").iterdir()) == ["cumulative_pnl.png", "daily_pnl.csv", "eval.json"]


def test_a_relative_store_is_found_from_any_directory(tiny_store, tmp_path, monkeypatch):
    """`jsmp train data.store=tiny` in one directory, `jsmp eval --run RUN` in another (both in this process):
    the store is taken from where the run trained (its .hydra/hydra.yaml), not from the working directory."""
    from jsmp.cli import main

    trained_in, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    trained_in.mkdir()
    elsewhere.mkdir()
    (trained_in / "tiny").symlink_to(tiny_store)
    run = tmp_path / "run"
    monkeypatch.chdir(trained_in)
    monkeypatch.setenv("JSMP_ROOT", str(trained_in))
    p = run_main(main, ["train", "data.store=tiny", f"hydra.run.dir={run}", "trainer.max_epochs=1", "logger=none"])
    assert p.returncode == 0, p.stderr[-3000:]
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("JSMP_ROOT")
    p = run_main(main, ["eval", "--run", str(run), "--out", str(tmp_path / "ev")])
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
    from jsmp.predict.cli import main

    test = write_csv(SynthSpec(days=2, rows_per_day=40, seed=5), tmp_path / "test.csv", test_layout=True)
    subs = []
    for mode in ([], ["--batch"]):
        out = tmp_path / f"sub{len(subs)}.csv"
        p = run_main(main, ["--run", str(runs["mlp"]), "--run", str(runs["cv"]), "--data", str(test),
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
    assert "no such run dir or checkpoint file" in cli_error("--run", str(tmp_path / "nope"), user=True)  # as a user runs it
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


# -- 2024-layout runs: R² on the validation days, per date

def validation_r2_by_date(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dates, R² per date, rows per date) of the run's best checkpoint on its validation rows: the outputs of
    the DataModule training builds (Hydra's instantiate), the labels and weights read from the store."""
    from hydra.utils import get_class, instantiate
    from omegaconf import OmegaConf

    from jsmp.metrics import r2_score

    cfg = OmegaConf.load(run / "config.yaml")
    dm = instantiate(cfg.data)
    dm.connect(get_class(cfg.model._target_))
    dm.setup()
    with torch.inference_mode():
        pred = Predictor(run).model.predict_output(dm.val_set[np.arange(len(dm.val_set))]).numpy()
    s, rows = dm.store, dm.val_set.rows
    date, y, w = (np.asarray(s.side(c))[rows] for c in ("date", cfg.data.targets[0], "weight"))
    dates, counts = np.unique(date, return_counts=True)
    return dates, np.array([r2_score(y[date == d], pred[date == d], w[date == d]) for d in dates]), counts


@pytest.mark.parametrize("name", list(RTMDF_RUNS))
def test_a_2024_run_is_scored_by_r2_equal_to_its_logged_val_r2_with_a_per_date_report(rtmdf_runs, tmp_path, capsys, name):
    from jsmp.evaluate.cli import main

    run, out = rtmdf_runs[name], tmp_path / "eval"
    assert main(["--run", str(run), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    metrics = json.loads((run / "metrics.json").read_text())
    logged = metrics["best/val/r2"]
    summary = json.loads((out / "eval.json").read_text())
    target = "responder_7" if name == "mlp-r7" else "responder_6"
    assert summary["target"] == target and summary["logged_val_r2"] == {"value": logged, "epoch": metrics["best_epoch"],
                                                                         "key": "best/val/r2"}
    assert summary["r2"] == pytest.approx(logged, abs=1e-6)  # training logged it in float32
    r2_line = next(line for line in lines if line.startswith("r2 "))  # printed to 4 decimals
    assert f"  (weighted zero-mean R² of {target}; per date: median " in r2_line
    assert float(r2_line.split()[1]) == pytest.approx(logged, abs=5.1e-5)
    assert lines[-2].startswith(f"logged by training at epoch {metrics['best_epoch']} (metrics.json best/val/r2): ")
    assert lines[-1].endswith("eval.json, daily_r2.csv, daily_r2.png")
    daily = pd.read_csv(out / "daily_r2.csv")
    dates, r2, rows = validation_r2_by_date(run)
    assert list(daily.columns) == ["date", "r2", "rows", "weight"] and daily.date.tolist() == dates.tolist()
    np.testing.assert_allclose(daily.r2, r2, rtol=1e-9, atol=1e-12)
    assert daily.rows.tolist() == rows.tolist() and summary["rows"] == rows.sum() and summary["days"] == len(dates) == 6
    assert np.ptp(daily.r2) > 0  # the dates differ: not one number repeated
    assert imread(out / "daily_r2.png").shape[:2] == (450, 900)


def test_a_2024_run_on_a_changed_store_is_refused(rtmdf_runs, tmp_path, capsys):
    """(--fold, --data and ensembles of 2024 runs: tests/evaluate/test_eval_2024.py.)"""
    import shutil

    from jsmp.evaluate.cli import main

    def refused(*argv) -> str:
        with pytest.raises(SystemExit) as e:
            main([*map(str, argv), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and len(err.splitlines()) == 1 and not (tmp_path / "out").exists(), err
        return err

    run = rtmdf_runs["gru"]
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    prep = json.loads((copy / "preprocess.json").read_text())
    prep["fill_value"][0] += 1.0  # as if the store's training days had other means now
    (copy / "preprocess.json").write_text(json.dumps(prep))
    err = refused("--run", copy)
    assert err.startswith("error: store ") and err.endswith(f"its rows no longer make the inputs this run was trained on "
                                                            f"(its features, fill values or window differ from "
                                                            f"{copy / 'preprocess.json'}): the store changed since training")
