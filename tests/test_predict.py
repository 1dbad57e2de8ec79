"""jsmp.predict: row-by-row = batch actions, training's fill and windows online, the CLI, weights-only loading."""

import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import compose_cfg, run_cli
from jsmp.config import build
from jsmp.data.fill import fill_nan, fill_source
from jsmp.data.preprocess import OnlineFill, Preprocess, fill_rows
from jsmp.data.store import Store
from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.data.windows import gather_windows
from jsmp.errors import UserError
from jsmp.predict import Predictor, read_all

TEST_SPEC = SynthSpec(days=4, rows_per_day=60, seed=9)
TRAIN_ARGS = {
    "mlp": ["data.fill=ffill"],
    "lstm": ["model=lstm", "model.hidden=8", "data.window.length=8", "data.window.cross_days=false"],
}


@pytest.fixture(scope="module")
def test_csv(tmp_path_factory):
    """A test file in the example_test.csv layout: 4 days with NaN blocks (day 2 is tiny)."""
    return write_csv(TEST_SPEC, tmp_path_factory.mktemp("test") / "test.csv", test_layout=True)


@pytest.fixture(scope="module")
def runs(tiny_store, tmp_path_factory):
    """Run dirs of a 1-epoch MLP (ffill) and LSTM (W=8, windows within a day) trained by train.py."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, args in TRAIN_ARGS.items():
        p = run_cli(["train.py", f"hydra.run.dir={root / name}", f"data.store={tiny_store}", "trainer.max_epochs=1",
                     "logger=none", *args], env={"JSMP_ROOT": str(root)})
        assert p.returncode == 0, p.stderr[-3000:]
        out[name] = root / name
    return out


def _rows(csv):
    df = pd.read_csv(csv)
    return df, df["date"].to_numpy(), df[[f"feature_{i}" for i in range(130)]].to_numpy(np.float32)


def test_training_saves_its_preprocessing(runs, tiny_store):
    for name, args in TRAIN_ARGS.items():
        prep = Preprocess.load(runs[name] / "preprocess.json")
        data = build(compose_cfg([f"data.store={tiny_store}", *args]).data, "data")
        data.setup("fit")
        assert prep.features == Store(tiny_store).features and prep.fill == data.fill
        np.testing.assert_array_equal(prep.values, data.fill_value)  # exact float32 round trip
    assert Preprocess.load(runs["mlp"] / "preprocess.json").window is None
    assert Preprocess.load(runs["lstm"] / "preprocess.json").window == {"length": 8, "cross_days": False}


@pytest.mark.parametrize("fill", ["mean", "ffill", "zero"])
def test_online_and_batch_fill_equal_the_training_fill(tiny_store, fill):
    store = Store(tiny_store)
    train_days = np.arange(20)
    source, value = fill_source(store, fill, train_days)
    rows = np.arange(store.n_rows)
    expected = fill_nan(source.gather(rows), value)  # what training batches hold
    raw = store.gather(rows).copy()
    assert np.isnan(raw).any()
    prep = Preprocess(store.features, fill, value.tolist())
    np.testing.assert_array_equal(fill_rows(raw.copy(), store.day_offsets[:-1], prep), expected)
    online = OnlineFill(prep)
    new_day = np.isin(rows, store.day_offsets)
    got = np.stack([online(raw[i].copy(), new_day[i]) for i in rows])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_row_by_row_equals_batch(runs, test_csv, model):
    df, date, x = _rows(test_csv)
    assert np.isnan(x).any() and len(np.unique(date)) == 4
    p = Predictor(runs[model])
    batch = p.predict_batch(date, x.copy())
    online = []
    for i, row in enumerate(df.to_dict("records")):  # dicts, NaN for empty fields
        online.append(p.predict_row(row))
        if p.window is not None:  # the window is the training window (padding, mask, day starts)
            starts = np.flatnonzero(np.r_[True, date[1:] != date[:-1]])
            filled = fill_rows(x.copy(), starts, p.prep)
            xw, mask = gather_windows(filled.__getitem__, np.array([i]), p.window, starts[starts <= i][-1:])
            np.testing.assert_array_equal(p.win, xw[0])
            np.testing.assert_array_equal(p.mask.numpy(), mask)
    assert online == batch.tolist() and set(online) <= {0, 1}
    p.reset()  # replaying from scratch, rows as arrays in the test layout, gives the same actions again
    assert [p.predict_row(r) for r in df[p.columns].to_numpy()] == online
    p.reset()
    assert [p.predict_row(df.iloc[[i]]) for i in range(30)] == online[:30]  # 1-row DataFrames, as the Kaggle API gives
    p.reset()
    assert [p.predict_row(df.iloc[i]) for i in range(30)] == online[:30]  # Series


def test_batch_on_a_store_equals_row_by_row(runs, tiny_store):
    store = Store(tiny_store)
    p = Predictor(runs["lstm"] / "checkpoints" / "last.ckpt")
    rows = np.arange(300)
    date, x = np.asarray(store.side("date"))[rows], store.gather(rows)
    online = [p.step(d, r) for d, r in zip(date, x)]
    assert p.predict_batch(date, x.copy()).tolist() == online


def test_cli_row_by_row_equals_batch(runs, test_csv, tmp_path, model="lstm"):
    outs = []
    for mode in ([], ["--batch"]):
        out = tmp_path / f"sub{len(outs)}.csv"
        p = run_cli(["-m", "jsmp.predict", "--run", str(runs[model]), "--data", str(test_csv), "--out", str(out), *mode])
        assert p.returncode == 0, p.stderr[-3000:]
        assert ("p99" in p.stdout) != bool(mode) and "action=1 on" in p.stdout
        outs.append(pd.read_csv(out))
    online, batch = outs
    assert list(online.columns) == ["ts_id", "action"]
    assert online["ts_id"].tolist() == pd.read_csv(test_csv)["ts_id"].tolist()  # weight-0 rows included
    assert online.equals(batch) and set(online["action"]) <= {0, 1}
    assert not list(tmp_path.glob(".sub*"))  # no temp files left


def _cli_error(*args):
    p = run_cli(["-m", "jsmp.predict", *args])
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1, p.stderr
    return err[0]


def test_cli_errors(runs, test_csv, tmp_path):
    df = pd.read_csv(test_csv)
    short = tmp_path / "short.csv"
    df.drop(columns=["feature_5", "feature_77"]).to_csv(short, index=False)
    err = _cli_error("--run", str(runs["mlp"]), "--data", str(short), "--out", str(tmp_path / "s.csv"))
    assert "missing column(s)" in err and "feature_5, feature_77" in err
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(UserError, match="feature_5, feature_77"):  # batch mode: the same check
        read_all(short, Predictor(runs["mlp"]).features)

    empty = tmp_path / "run_without_ckpt"
    empty.mkdir()
    for f in ["config.yaml", "preprocess.json"]:
        shutil.copy(runs["mlp"] / f, empty / f)
    assert "no checkpoint in this run dir" in _cli_error("--run", str(empty), "--data", str(test_csv))
    assert "no such file" in _cli_error("--run", str(runs["mlp"]), "--data", str(tmp_path / "nope.csv"))
    with pytest.raises(UserError, match="no such run dir or checkpoint file"):
        Predictor(tmp_path / "nope")


class Payload:
    """Pickles as a call to os.mkdir: loading it unpickled with weights_only=False runs that call."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_checkpoints_load_weights_only(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["mlp"], run)
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    state = torch.load(ckpt, weights_only=True)  # what training writes loads weights-only
    marker = tmp_path / "code-ran"
    torch.save({**state, "extra": Payload(str(marker))}, ckpt)
    with pytest.raises(UserError, match="refused"):
        Predictor(run)
    assert not marker.exists()
    torch.load(ckpt, weights_only=False)  # the payload is real: full unpickling runs it
    assert marker.exists()


def test_predict_row_names_missing_columns(runs):
    p = Predictor(runs["mlp"])
    row = {c: 0.0 for c in p.columns if c != "feature_9"}
    with pytest.raises(UserError, match="missing column.*feature_9"):
        p.predict_row(row)
    with pytest.raises(UserError, match="expected 133 values"):
        p.predict_row(np.zeros(5))


@pytest.mark.slow
def test_serve_benchmark_prints_its_table(tmp_path):
    p = run_cli(["-m", "jsmp.bench", "serve", "--rows", "400"], env={"JSMP_BENCH_DIR": str(tmp_path)})
    assert p.returncode in (0, 1), p.stderr[-3000:]  # 1: a latency target missed (a busy machine)
    for model in ["mlp", "lstm"]:
        assert re.search(rf"^\s*{model}\s+400 \|(\s+[\d.]+){{4}}\s+<=", p.stdout, re.M), p.stdout
    assert ("MISSED" in p.stdout) == (p.returncode == 1)
