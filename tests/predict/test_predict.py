"""jsmp.predict: row-by-row = batch actions, training's fill and windows online, the CLI, weights-only
loading, both modes and predict_row checking rows alike, safe --out."""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import RUN_ARGS, RUNS, compose_cfg, run_cli, run_main, train_in_process
from jsmp.batches.fill import fill_source
from jsmp.checkpoint import sidecar
from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.errors import UserError
from jsmp.inputs.fill import fill_nan, fill_rows
from jsmp.inputs.spec import InputSpec
from jsmp.inputs.state import OnlineState
from jsmp.inputs.windows import gather_windows
from jsmp.predict import Predictor, main, read_all
from jsmp.predict.model import model_kwargs
from jsmp.run.config import build
from jsmp.store.store import Store

TEST_SPEC = SynthSpec(days=4, rows_per_day=60, seed=9)
TRAIN_ARGS = {
    "mlp": RUNS["mlp"],
    "lstm": ["model=lstm", "model.hidden=8", "data.window.length=8", "data.window.cross_days=false"],
}


@pytest.fixture(scope="module")
def test_csv(tmp_path_factory):
    """A test file in the example_test.csv layout: 4 days with NaN blocks (day 2 is tiny)."""
    return write_csv(TEST_SPEC, tmp_path_factory.mktemp("test") / "test.csv", test_layout=True)


@pytest.fixture(scope="session")
def runs(runs, tiny_store, tmp_path_factory):
    """Run dirs of a 1-epoch MLP (ffill: the session's, conftest RUNS) and LSTM (W=8, windows within a day),
    trained by train.py (in this process)."""
    root = tmp_path_factory.mktemp("predict-runs")
    p = train_in_process([f"hydra.run.dir={root / 'lstm'}", f"data.store={tiny_store}", *RUN_ARGS, *TRAIN_ARGS["lstm"]],
                         {"JSMP_ROOT": str(root)})
    assert p.returncode == 0, p.stderr[-3000:]
    return {"mlp": runs["mlp"], "lstm": root / "lstm"}


def _rows(csv):
    df = pd.read_csv(csv)
    return df, df["date"].to_numpy(), df[[f"feature_{i}" for i in range(130)]].to_numpy(np.float32)


def test_training_saves_its_preprocessing(runs, tiny_store):
    for name, args in TRAIN_ARGS.items():
        prep = InputSpec.load(runs[name] / "preprocess.json")
        data = build(compose_cfg([f"data.store={tiny_store}", *args]).data, "data")
        data.setup("fit")
        spec = data.input_spec()
        assert prep.features == spec.features == Store(tiny_store).features and prep.fill == spec.fill
        np.testing.assert_array_equal(prep.values, spec.values)  # exact float32 round trip
    assert InputSpec.load(runs["mlp"] / "preprocess.json").window is None
    assert InputSpec.load(runs["lstm"] / "preprocess.json").window == {"length": 8, "cross_days": False}


@pytest.mark.parametrize("fill", ["mean", "ffill", "zero"])
def test_online_and_batch_fill_equal_the_training_fill(tiny_store, fill):
    store = Store(tiny_store)
    train_days = np.arange(20)
    source, value = fill_source(store, fill, train_days)
    rows = np.arange(store.n_rows)
    expected = fill_nan(source.gather(rows), value)  # what training batches hold
    raw = store.gather(rows).copy()
    assert np.isnan(raw).any()
    prep = InputSpec(store.features, fill, value.tolist(), targets=["resp"], task="action",
                     ffill=store.features if fill == "ffill" else [])
    np.testing.assert_array_equal(fill_rows(raw.copy(), store.day_offsets[:-1], prep), expected)
    state, got = OnlineState(prep), raw.copy()
    new_day = np.isin(rows, store.day_offsets)
    for i in rows:
        state.row(got[i], new_day[i])
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
            np.testing.assert_array_equal(p.members[0].state.win, xw[0])
            np.testing.assert_array_equal(p.members[0].state.mask, mask[0])
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
    """Row by row as a user runs it (the command's one success in a process of its own), --batch in this process."""
    outs = []
    for mode in ([], ["--batch"]):
        out = tmp_path / f"sub{len(outs)}.csv"
        argv = ["--run", str(runs[model]), "--data", str(test_csv), "--out", str(out), *mode]
        p = run_main(main, argv) if mode else run_cli(["-m", "jsmp.predict", *argv])
        assert p.returncode == 0, p.stderr[-3000:]
        assert ("p99" in p.stdout) != bool(mode) and "action=1 on" in p.stdout
        outs.append(pd.read_csv(out))
    online, batch = outs
    assert list(online.columns) == ["ts_id", "action"]
    assert online["ts_id"].tolist() == pd.read_csv(test_csv)["ts_id"].tolist()  # weight-0 rows included
    assert online.equals(batch) and set(online["action"]) <= {0, 1}
    assert not list(tmp_path.glob(".sub*"))  # no temp files left


def _cli_error(*args, process: bool = False):
    """The one `error:` line of `python -m jsmp.predict ARGS` run in this process (run_main), or as a user runs it
    (process=True: the command's one user error in a process of its own); it must exit 2 without a traceback."""
    p = run_cli(["-m", "jsmp.predict", *args]) if process else run_main(main, list(args))
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
    sidecar(ckpt).write_text(f"{hashlib.sha256(ckpt.read_bytes()).hexdigest()}  {ckpt.name}\n")  # a matching checksum is no licence
    with pytest.raises(UserError, match="refused"):
        Predictor(run)
    assert not marker.exists()
    torch.load(ckpt, weights_only=False)  # the payload is real: full unpickling runs it
    assert marker.exists()


def test_checkpoints_from_before_and_after_a_constructor_change_serve(runs, test_csv, tmp_path):
    """load_model passes only the hyper-parameters the model class takes: the optimizer settings
    older checkpoints hold and a key of some later version are left out; a missing one is an error."""
    run = tmp_path / "run"
    shutil.copytree(runs["mlp"], run)
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    expected = Predictor(run).predict_batch(*_rows(test_csv)[1:])
    state = torch.load(ckpt, weights_only=True)
    old = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0}  # before the optimizer became a config node
    torch.save({**state, "hyper_parameters": {**state["hyper_parameters"], **old, "future_knob": 3}}, ckpt)
    sidecar(ckpt).unlink()  # such checkpoints predate the recorded checksums
    np.testing.assert_array_equal(Predictor(run).predict_batch(*_rows(test_csv)[1:]), expected)
    torch.save({**state, "hyper_parameters": {k: v for k, v in state["hyper_parameters"].items() if k != "n_features"}}, ckpt)
    with pytest.raises(UserError, match=r"^.*best-.*\.ckpt: its hyper_parameters do not build jsmp\.models\.mlp\.MLP \(missing a required argument: 'n_features'\)"):
        Predictor(run)


class _Base:
    def __init__(self, n_days, optimizer=None):
        pass


class _Sub(_Base):
    def __init__(self, n_features, hidden=8, **optim):
        super().__init__(**optim)


class _Fixed(_Base):
    def __init__(self, n_features, *, hidden=8):
        super().__init__(1)


class _Open(_Sub):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)


def test_model_kwargs_follows_kwargs_to_the_base_class():
    hp = {"n_features": 4, "n_days": 3, "hidden": 2, "optimizer": "adam", "lr": 0.1, "future_knob": 1}
    assert model_kwargs(_Fixed, hp) == {"n_features": 4, "hidden": 2}
    assert model_kwargs(_Sub, hp) == {"n_features": 4, "n_days": 3, "hidden": 2, "optimizer": "adam"}
    assert model_kwargs(_Open, hp) == model_kwargs(_Sub, hp)
    assert model_kwargs(type("Loose", (), {"__init__": lambda self, **kw: None}), hp) == hp  # **kwargs all the way


def test_a_parquet_test_file_gives_the_csv_submission(runs, test_csv, tmp_path):
    pd.read_csv(test_csv, float_precision="round_trip").to_parquet(tmp_path / "test.parquet")
    for mode in ([], ["--batch"]):
        subs = []
        for data in [test_csv, tmp_path / "test.parquet"]:
            out = tmp_path / f"{data.suffix[1:]}{len(mode)}.csv"
            assert main(["--run", str(runs["mlp"]), "--data", str(data), "--out", str(out), *mode]) == 0
            subs.append(out.read_bytes())
        assert subs[0] == subs[1] and subs[0].count(b"\n") == len(pd.read_csv(test_csv)) + 1


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
        assert re.search(rf"^\s*{model}\s+400 \|(\s+[\d.]+){{4}}\s+<=", p.stdout, re.MULTILINE), p.stdout
    assert "row API p99" in p.stdout and ("MISSED" in p.stdout) == (p.returncode == 1)


# -- every row checked alike: --batch, row by row, predict_row -------------------------------
def _lines(csv):
    return csv.read_text().splitlines(keepends=True)


def _set(line: str, header: list[str], **values) -> str:
    """`line` (a CSV row) with the named fields replaced."""
    fields = line.rstrip("\n").split(",")
    for c, v in values.items():
        fields[header.index(c)] = str(v)
    return ",".join(fields) + "\n"


def _field(line: str, header: list[str], c: str) -> str:
    return line.rstrip("\n").split(",")[header.index(c)]


# each: (a change to one of test.csv's lines L (1-based; line 1 is the header) given the header h,
# the column the error names, the rest of its message)
BAD_ROWS = {
    "duplicate ts_id": (lambda L, h: {6: _set(L[6], h, ts_id=_field(L[5], h, "ts_id"))}, "ts_id", "ts_id 3 repeats; expected strictly increasing ts_id"),
    "decreasing ts_id": (lambda L, h: {6: _set(L[6], h, ts_id=1)}, "ts_id", "ts_id 1 is below the previous 3; expected strictly increasing ts_id"),
    "date backwards": (lambda L, h: {len(L) - 1: _set(L[-1], h, date=0)}, "date", "date 0 after date 3; expected non-decreasing dates"),
    "extra field": (lambda L, h: {7: L[7].rstrip("\n") + ",1\n"}, None, "too many fields: expected 133 (as in the header), got 134"),
    "Inf in a feature": (lambda L, h: {8: _set(L[8], h, feature_5="inf")}, "feature_5", "got inf (±Inf, or beyond float32 range)"),
    "Inf in weight": (lambda L, h: {8: _set(L[8], h, weight="-inf")}, "weight", "got -inf (±Inf, or beyond float32 range); expected a finite number"),
    "feature beyond the limit": (lambda L, h: {8: _set(L[8], h, feature_5="3e38")}, "feature_5",
                                 "got 3e+38, beyond the feature limit ±1e+06 (real features are O(1..100)"),
    "Inf in date": (lambda L, h: {8: _set(L[8], h, date="inf")}, "date", "got 'inf', expected an integer"),
    "text in date": (lambda L, h: {5: _set(L[5], h, date="abc")}, "date", "got 'abc', expected an integer"),
}


def _bad_csv(test_csv, tmp_path, case) -> tuple[Path, str]:
    """A copy of test.csv with `case` applied, and the error's location prefix."""
    lines = _lines(test_csv)
    header = lines[0].rstrip("\n").split(",")
    change, column, _ = BAD_ROWS[case]
    ((line, text),) = change([None, *lines], header).items()  # 1-based
    lines[line - 1] = text
    bad = tmp_path / "data" / "bad.csv"
    bad.parent.mkdir()
    bad.write_text("".join(lines))
    return bad, f"{bad} line {line}" + (f", column {column!r}" if column else "")


def _main_error(capsys, *args) -> str:
    """Run `python -m jsmp.predict ARGS` in-process: it must exit 2 with exactly one `error:` line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    err = capsys.readouterr().err.splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("case", BAD_ROWS)
def test_both_modes_reject_a_bad_row_alike(runs, test_csv, tmp_path, capsys, case):
    bad, where = _bad_csv(test_csv, tmp_path, case)
    (err,) = {_main_error(capsys, "--run", runs["mlp"], "--data", bad, "--out", tmp_path / "data" / "sub.csv", *mode)
              for mode in ([], ["--batch"])}  # one error line, the same in both modes
    assert err.startswith(f"error: {where}: {BAD_ROWS[case][2]}")
    assert os.listdir(tmp_path / "data") == ["bad.csv"]  # no submission, no temp


def test_cli_row_by_row_rejects_duplicate_ts_id(runs, test_csv, tmp_path):
    bad, where = _bad_csv(test_csv, tmp_path, "duplicate ts_id")
    err = _cli_error("--run", str(runs["mlp"]), "--data", str(bad), "--out", str(tmp_path / "data" / "sub.csv"))
    assert err.startswith(f"error: {where}: ts_id 3 repeats")
    assert os.listdir(tmp_path / "data") == ["bad.csv"]


def _row_error(p: Predictor, rows) -> str:
    """predict_row over `rows` from a reset: the UserError's message at the first bad one."""
    p.reset()
    with pytest.raises(UserError) as e:
        for row in rows:
            p.predict_row(row)
    return str(e.value)


@pytest.mark.parametrize("case", ["duplicate ts_id", "decreasing ts_id", "date backwards", "Inf in a feature", "Inf in weight", "text in date",
                                  "feature beyond the limit"])
def test_predict_row_rejects_what_batch_rejects_in_the_same_words(runs, test_csv, tmp_path, case):
    p = Predictor(runs["mlp"])
    bad, where = _bad_csv(test_csv, tmp_path, case)
    rows = pd.read_csv(bad, dtype={"date": object}).to_dict("records")  # date as read: "abc" stays text
    line = int(where.split(" line ")[1].split(",")[0])
    column = BAD_ROWS[case][1]
    with pytest.raises(UserError) as e:
        read_all(bad, p.features)
    assert _row_error(p, rows) == str(e.value).replace(where, f"row {line - 1}, column {column!r}")
    assert p.rows == line - 2  # the bad row changed nothing: the next good row goes on
    assert p.predict_row(rows[line - 3] | {"ts_id": 10**9, "date": 3}) in (0, 1)


def test_predict_row_checks_each_form_and_reset_clears_the_order(runs, test_csv):
    p = Predictor(runs["mlp"])
    rows = pd.read_csv(test_csv)
    first = rows.iloc[0].to_dict()
    for form in [first, rows.iloc[0], rows.iloc[[0]], rows.loc[0, p.columns].to_numpy()]:
        p.reset()
        p.predict_row(form)
        with pytest.raises(UserError, match=r"^row 2, column 'ts_id': ts_id 0 repeats"):
            p.predict_row(form)
    p.reset()  # the order starts afresh
    assert p.predict_row(first) in (0, 1)
    assert p.predict_row({**first, "ts_id": 1, "resp": 0.5, "note": "ignored"}) in (0, 1)  # extra keys are ignored
    for value, message in [(float("nan"), "missing value"), (None, "missing value"), (float("inf"), "got inf"),
                           (2.5, "got 2.5; expected an integer"), ("abc", "got 'abc', expected an integer")]:
        with pytest.raises(UserError, match=rf"^row 3, column 'date': {message}"):
            p.predict_row({**first, "ts_id": 2, "date": value})
    with pytest.raises(UserError, match=r"^row 3, column 'weight': missing value"):
        p.predict_row({**first, "ts_id": 2, "weight": float("nan")})
    with pytest.raises(UserError, match=r"^row 3, column 'ts_id': got inf"):
        p.predict_row({**first, "ts_id": float("inf")})
    with pytest.raises(UserError, match=r"^row 3, column 'feature_7': got -inf"):
        p.predict_row({**first, "ts_id": 2, "feature_7": -1e39})  # beyond float32 range
    with pytest.raises(UserError, match=r"^row: expected a 1-row DataFrame, got 2 rows"):
        p.predict_row(rows.iloc[:2])
    assert p.predict_row({**first, "ts_id": 2, "feature_7": float("nan")}) in (0, 1)  # NaN features are filled


# -- --out ------------------------------------------------------------------------------------
def test_cli_refuses_to_overwrite_its_input(runs, test_csv, tmp_path):
    data = tmp_path / "test.csv"
    shutil.copy(test_csv, data)
    err = _cli_error("--run", str(runs["mlp"]), "--data", str(data), "--out", str(data), process=True)
    assert err == f"error: --out {data}: is the input {data}; writing there would destroy it. Choose another --out"
    assert data.read_bytes() == test_csv.read_bytes() and os.listdir(tmp_path) == ["test.csv"]


def test_out_is_replaced_only_when_a_submission(runs, test_csv, tiny_store, tmp_path, capsys):
    other = tmp_path / "notes.csv"
    other.write_text("ts_id,action,comment\n1,1,keep me\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    nope = tmp_path / "no-such-run"  # the model is loaded only after --out is found fine
    for out, message in [(other, "an existing file that is not a submission"), (folder, "a directory that is not a submission"),
                         (tiny_store / "sub.csv", f"is inside the input store {tiny_store}"),
                         (tiny_store.parent, f"contains the input {tiny_store}")]:
        assert message in _main_error(capsys, "--run", nope, "--data", tiny_store, "--out", out, "--batch")
    assert other.read_text() == "ts_id,action,comment\n1,1,keep me\n" and not any(folder.iterdir())
    assert not (tiny_store / "sub.csv").exists()

    out = tmp_path / "sub.csv"
    out.write_text("ts_id,action\n7,1\n")  # an earlier submission
    stale = tmp_path / ".sub.csv.tmp-4194999-0123abcd"  # the temp of a killed run (no such pid)
    stale.write_text("ts_id,action\n")
    assert main(["--run", str(runs["mlp"]), "--data", str(test_csv), "--out", str(out)]) == 0
    assert pd.read_csv(out)["ts_id"].tolist() == pd.read_csv(test_csv)["ts_id"].tolist()
    assert sorted(os.listdir(tmp_path)) == ["folder", "notes.csv", "sub.csv"]  # the stale temp removed


def test_the_feature_limit_comes_from_the_run_and_predict_batch_applies_it(runs, test_csv, tmp_path):
    df, date, x = _rows(test_csv)
    p = Predictor(runs["mlp"])
    assert p.feature_limit == 1e6  # the store's, through preprocess.json
    x[4, 7] = -2e6
    with pytest.raises(UserError, match=r"^row 5, column 'feature_7': got -2e\+06, beyond the feature limit ±1e\+06 \("):
        p.predict_batch(date, x)
    run = tmp_path / "run"
    shutil.copytree(runs["mlp"], run)
    prep = json.loads((run / "preprocess.json").read_text())
    del prep["feature_limit"]  # a run trained before the limit: the default
    (run / "preprocess.json").write_text(json.dumps(prep))
    assert Predictor(run).feature_limit == 1e6
    (run / "preprocess.json").write_text(json.dumps({**prep, "feature_limit": 1e7}))  # a store ingested with --feature-limit 1e7
    assert Predictor(run).predict_batch(date, x).shape == (len(x),)
    (run / "preprocess.json").write_text(json.dumps({**prep, "feature_limit": "1e7"}))
    with pytest.raises(UserError, match=r"preprocess.json: not a valid preprocess.json: feature_limit must be a number > 0, got '1e7'"):
        Predictor(run)


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_a_run_with_a_version_1_preprocess_json_serves_identically(runs, test_csv, tmp_path, model):
    """A run trained before preprocess.json had a version (no targets, task, lag_features, ffill) still serves."""
    new = InputSpec.load(runs[model] / "preprocess.json")
    old = shutil.copytree(runs[model], tmp_path / "old")
    (old / "preprocess.json").write_text(json.dumps({"features": new.features, "fill": new.fill, "fill_value": new.fill_value,
                                                     "window": new.window}, indent=1) + "\n")
    by_new, by_old = Predictor(runs[model]), Predictor(old)
    assert by_old.prep == by_new.prep and by_old.prep.ffill == (new.features if new.fill == "ffill" else [])
    _, date, x = _rows(test_csv)
    np.testing.assert_array_equal(by_old.predict_proba_batch(date, x.copy()), by_new.predict_proba_batch(date, x.copy()))
    assert [by_old.step(d, r) for d, r in zip(date[:50], x[:50])] == [by_new.step(d, r) for d, r in zip(date[:50], x[:50])]


def test_predictor_is_a_row_predictor_for_a_2021_run_and_refuses_the_2024_calls(runs):
    from jsmp.predict import RowPredictor, StepPredictor

    run = runs["mlp"]
    p = Predictor(run)
    assert type(p) is RowPredictor and isinstance(p, Predictor) and type(RowPredictor(run)) is RowPredictor
    assert p.prep.targets == ["resp"] and p.prep.task == "action"
    with pytest.raises(UserError) as e:
        StepPredictor(run)
    assert str(e.value) == (f"{run}: trained on the 2021 layout (one global row order), trade decisions; StepPredictor serves "
                            f"the 2024 layout (per instrument), regression")
    for call in (lambda: p.predict_batch(pd.DataFrame({"row_id": [0]})), lambda: p.predict_time_step(pd.DataFrame())):
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value) == (f"{run}: trained on the 2021 layout (one global row order); predict_batch(test_df, lags_df) "
                                f"serves other runs: call predict_row(row) per row, or predict_batch(date, x) for consecutive rows")
