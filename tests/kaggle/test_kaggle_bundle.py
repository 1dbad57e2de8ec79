"""`jsmp kaggle bundle` and the bundle's submission.py (jsmp.kaggle): the folder's layout and checksums, the
script run end to end against the stand-in scoring APIs (jsmp.kaggle.standin) for a 2024 and a 2021 run,
answering as `jsmp predict` does on the same data, and bad input -> one line, exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile

import numpy as np
import pandas as pd
import polars as pl
import pytest

from conftest import run_main
from jsmp import checkpoint
from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.data.synthetic_rtmdf import RtmdfSpec, write_parquet
from jsmp.errors import UserError
from jsmp.kaggle import wheels
from jsmp.kaggle.cli import main
from jsmp.kaggle.standin import dry_run
from jsmp.kaggle.standin.files import write_2024
from jsmp.kaggle.standin.gateway import GatewayError, serve_2024
from jsmp.predict.cli import main as predict_main

NO_DEPS = ["--wheels"]  # jsmp's wheel only: the dependencies' are tried by test_kaggle_install.py


def kaggle(*argv) -> subprocess.CompletedProcess:
    return run_main(main, [str(a) for a in argv])


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert (
        p.returncode == 2 and p.stdout == "" and len(p.stderr.splitlines()) == 1 and p.stderr.startswith("error: ")
    ), p.stderr
    return p.stderr.strip()


@pytest.fixture(scope="module")
def comp_2024(tmp_path_factory):
    """A 2024 competition folder: dates 26..29 of the tiny 2024 store's data, renumbered 0..3."""
    tmp = tmp_path_factory.mktemp("comp-2024")
    synth = write_parquet(RtmdfSpec(days=30, times=8, symbols=6, seed=3), tmp / "synth", partitions=2)
    return write_2024(synth / "train.parquet", tmp / "comp", 26, 29)


@pytest.fixture(scope="module")
def comp_2021(tmp_path_factory):
    """A 2021 competition folder: example_test.csv of 2 days of about 40 rows."""
    comp = tmp_path_factory.mktemp("comp-2021")
    write_csv(SynthSpec(days=2, rows_per_day=40, seed=4), comp / "example_test.csv", test_layout=True)
    return comp


@pytest.fixture(scope="module")
def gru_bundle(rtmdf_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "gru"
    p = kaggle("bundle", "--run", rtmdf_runs["gru"], "--out", out, *NO_DEPS)
    assert p.returncode == 0, p.stderr
    return out


def test_the_bundle_holds_the_runs_verified_files_a_wheel_and_the_script(gru_bundle, rtmdf_runs):
    manifest = json.loads((gru_bundle / "kaggle.json").read_text())
    (ckpt,) = manifest["runs"]
    source = rtmdf_runs["gru"] / "checkpoints" / ckpt.rsplit("/", 1)[1]
    assert ckpt.startswith("runs/0-gru/checkpoints/best-") and manifest["sources"] == [str(source)]
    assert (manifest["competition"], manifest["target"], manifest["online"], manifest["threads"]) == (
        "2024",
        "responder_6",
        None,
        1,
    )
    (whl,) = manifest["wheels"]
    assert (
        whl.startswith("jsmp-0.1.0-py3-none-any")
        and "jsmp/kaggle/standin/api/janestreet.py" in zipfile.ZipFile(gru_bundle / "wheels" / whl).namelist()
    )
    files = sorted(p.relative_to(gru_bundle).as_posix() for p in gru_bundle.rglob("*") if p.is_file())
    assert files == sorted(
        [
            "kaggle.json",
            "submission.py",
            "SHA256SUMS",
            f"wheels/{whl}",
            ckpt,
            f"{ckpt}.sha256",
            "runs/0-gru/config.yaml",
            "runs/0-gru/preprocess.json",
        ]
    )
    assert (gru_bundle / ckpt).read_bytes() == source.read_bytes() and checkpoint.read_verified(gru_bundle / ckpt)
    assert (gru_bundle / "runs/0-gru/preprocess.json").read_bytes() == (
        rtmdf_runs["gru"] / "preprocess.json"
    ).read_bytes()
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=gru_bundle, capture_output=True, text=True)
    assert sums.returncode == 0 and sums.stdout.count(": OK") == len(files) - 1, sums.stdout
    assert "from jsmp.kaggle.serve import main" in (gru_bundle / "submission.py").read_text()


def test_a_bundle_is_replaced_whole_and_nothing_else_is(gru_bundle, rtmdf_runs, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(gru_bundle, again)
    (again / "stale.txt").write_text("from before")
    assert kaggle("bundle", "--run", rtmdf_runs["gru"], "--out", again, *NO_DEPS).returncode == 0
    assert not (again / "stale.txt").exists() and (again / "kaggle.json").is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    err = one_line_error(kaggle("bundle", "--run", rtmdf_runs["gru"], "--out", tmp_path / "mine", *NO_DEPS))
    assert "not a kaggle bundle" in err and (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_a_failure_while_writing_leaves_no_bundle_and_an_earlier_one_whole(
    gru_bundle, rtmdf_runs, tmp_path, monkeypatch
):
    def broken_pip(args, what):
        raise UserError(f"{what}: pip could not build it (planted)")

    monkeypatch.setattr(wheels, "pip", broken_pip)
    earlier = tmp_path / "earlier"
    shutil.copytree(gru_bundle, earlier)
    for out in (tmp_path / "new", earlier):
        err = one_line_error(kaggle("bundle", "--run", rtmdf_runs["gru"], "--out", out, *NO_DEPS))
        assert err == "error: jsmp's wheel: pip could not build it (planted)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier"]
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=earlier).returncode == 0


def predicted_2024(run, comp, out, *flags) -> pd.DataFrame:
    p = run_main(
        predict_main,
        [
            "--run",
            str(run),
            "--data",
            str(comp / "test.parquet"),
            "--lags",
            str(comp / "lags.parquet"),
            "--out",
            str(out),
            *flags,
        ],
    )
    assert p.returncode == 0, p.stderr
    return pd.read_csv(out)


def test_the_2024_script_serves_the_gateway_as_jsmp_predict_replays(
    gru_bundle, rtmdf_runs, comp_2024, tmp_path, capsys
):
    sub = dry_run(gru_bundle, comp_2024, tmp_path / "work")
    assert sub == tmp_path / "work" / "submission.parquet" and "stand-in gateway: local run" in capsys.readouterr().out
    got = pl.read_parquet(sub)
    want = predicted_2024(rtmdf_runs["gru"], comp_2024, tmp_path / "predict.csv")
    assert got.columns == ["row_id", "responder_6"] and len(got) == pl.read_parquet(comp_2024 / "test.parquet").height
    np.testing.assert_array_equal(got["row_id"].to_numpy(), want.row_id.to_numpy())
    np.testing.assert_array_equal(got["responder_6"].to_numpy().astype(np.float64), want.responder_6.to_numpy())


def test_the_scoring_rerun_serves_and_online_learning_answers_as_jsmp_predict(
    rtmdf_runs, comp_2024, tmp_path, capsys, monkeypatch
):
    online = ["--online-learning", "--online-steps", "3", "--online-lr", "1e-3"]
    p = kaggle("bundle", "--run", rtmdf_runs["gru"], "--out", tmp_path / "b", *NO_DEPS, *online)
    assert p.returncode == 0 and "online learning" in p.stdout, p.stderr
    assert json.loads((tmp_path / "b" / "kaggle.json").read_text())["online"]["steps"] == 3
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    sub = dry_run(tmp_path / "b", comp_2024, tmp_path / "work")
    assert "stand-in gateway: scoring rerun" in capsys.readouterr().out
    want = predicted_2024(rtmdf_runs["gru"], comp_2024, tmp_path / "predict.csv", *online)
    frozen = predicted_2024(rtmdf_runs["gru"], comp_2024, tmp_path / "frozen.csv")
    got = pl.read_parquet(sub)["responder_6"].to_numpy().astype(np.float64)
    np.testing.assert_array_equal(got, want.responder_6.to_numpy())
    assert not np.array_equal(got, frozen.responder_6.to_numpy())  # it did learn


def test_the_2021_script_answers_each_row_as_jsmp_predict(runs, comp_2021, tmp_path):
    out = tmp_path / "b"
    p = kaggle("bundle", "--run", runs["mlp"], "--run", runs["lstm"], "--out", out, *NO_DEPS)
    assert p.returncode == 0 and "the 2021 competition, 2 run(s)" in p.stdout, p.stderr
    assert json.loads((out / "kaggle.json").read_text())["runs"][1].startswith("runs/1-lstm/checkpoints/")
    sub = dry_run(out, comp_2021, tmp_path / "work")
    p = run_main(
        predict_main,
        [
            "--run",
            str(runs["mlp"]),
            "--run",
            str(runs["lstm"]),
            "--data",
            str(comp_2021 / "example_test.csv"),
            "--out",
            str(tmp_path / "predict.csv"),
        ],
    )
    assert p.returncode == 0, p.stderr
    assert sub.name == "submission.csv" and sub.read_text() == (tmp_path / "predict.csv").read_text()
    assert len(sub.read_text().splitlines()) == 1 + len(pd.read_csv(comp_2021 / "example_test.csv"))


def test_dryrun_from_the_command_line(gru_bundle, comp_2024, comp_2021, tmp_path):
    p = kaggle("dryrun", "--bundle", gru_bundle, "--data", comp_2024, "--work", tmp_path)
    assert p.returncode == 0 and p.stdout.splitlines()[-1].startswith(
        f"{tmp_path / 'submission.parquet'}: written by"
    ), p.stderr
    p = kaggle(
        "dryrun", "--bundle", gru_bundle, "--data", comp_2021, "--work", tmp_path
    )  # a 2024 bundle, a 2021 folder
    assert p.returncode == 2 and p.stderr == (
        f"error: stand-in gateway: {comp_2021 / 'test.parquet'}: no such directory; "
        f"expected the test.parquet / lags.parquet layout\n"
    )
    assert one_line_error(kaggle("dryrun", "--bundle", tmp_path, "--data", comp_2024)).startswith(
        f"error: --bundle {tmp_path}: not a bundle"
    )


def test_bad_runs_and_options_are_one_line_and_write_nothing(runs, rtmdf_runs, tmp_path):
    out = tmp_path / "out"
    empty = tmp_path / "empty-run"
    empty.mkdir()
    (empty / "config.yaml").write_text("model: {}\n")
    damaged = tmp_path / "damaged"
    shutil.copytree(runs["mlp"], damaged)
    (ckpt,) = (damaged / "checkpoints").glob("best-*.ckpt")
    ckpt.write_bytes(ckpt.read_bytes()[:-1] + b"x")
    cases = {
        (f"--run={empty}",): "no checkpoint in this run dir",
        (f"--run={damaged}",): "checksum mismatch",
        (
            f"--run={runs['mlp']}",
            f"--run={rtmdf_runs['gru']}",
        ): "mixes 2024-layout (per instrument) and 2021-layout runs",
        (f"--run={rtmdf_runs['gru']}", f"--run={rtmdf_runs['mlp-r7']}"): "predict different targets",
        (f"--run={runs['mlp']}", "--online-learning"): "online learning is for runs trained on the 2024 layout",
        (f"--run={rtmdf_runs['gru']}", "--online-steps", "3"): "--online-steps: needs --online-learning",
        (f"--run={rtmdf_runs['gru']}", "--online-learning", "--online-lr", "-1e-3"): "--online-lr -1e-3",
        (f"--run={rtmdf_runs['gru']}", "--threads", "0"): "--threads 0: expected an integer >= 1",
        (
            f"--run={rtmdf_runs['gru']}",
            "--wheels",
            "no-such-dist",
        ): "--wheels no-such-dist: not installed in this environment",
        (f"--run={rtmdf_runs['gru']}", f"--out={rtmdf_runs['gru'].parent}"): "contains the input",
    }
    for args, message in cases.items():
        extra = [] if any(a.startswith("--out") for a in args) else [f"--out={out}"]
        err = one_line_error(kaggle("bundle", *args, *extra, *([] if "--wheels" in args else NO_DEPS)))
        assert message in err, (args, err)
        assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_stand_in_gateway_checks_each_answer(comp_2024, tmp_path):
    def predict(test, lags):
        return test.select("row_id", pl.lit(0.0).alias("responder_6"))

    calls = []

    def recording(test, lags):
        calls.append((test["date_id"][0], test["time_id"].unique().to_list(), lags is not None))
        return predict(test, lags)

    out = serve_2024(recording, comp_2024 / "test.parquet", comp_2024 / "lags.parquet", tmp_path / "s.parquet")
    assert [c[0] for c in calls] == sorted(c[0] for c in calls) and all(len(c[1]) == 1 for c in calls)
    assert [c[2] for c in calls] == [t == [0] for _, t, _ in calls] and len(calls) == 4 * 8
    assert pl.read_parquet(out)["row_id"].to_list() == pl.read_parquet(comp_2024 / "test.parquet")["row_id"].to_list()
    wrong = [
        (lambda t, lg: predict(t, lg).head(1), "predict returned 1 rows for a batch of"),
        (lambda t, lg: predict(t, lg).reverse(), "not the batch's row_id in order"),
        (lambda t, lg: [0.0] * len(t), "predict returned list"),
    ]
    for fn, message in wrong:
        with pytest.raises(GatewayError, match=message):
            serve_2024(fn, comp_2024 / "test.parquet", comp_2024 / "lags.parquet", tmp_path / "x.parquet")
    later = tmp_path / "later"
    shutil.copytree(comp_2024 / "test.parquet" / "date_id=1", later / "date_id=1")
    with pytest.raises(GatewayError, match="numbered from 0"):
        serve_2024(predict, later, comp_2024 / "lags.parquet", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_a_damaged_copy_of_the_bundle_stops_the_script_in_one_line(gru_bundle, comp_2024, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(gru_bundle, copy)
    (ckpt,) = (copy / "runs" / "0-gru" / "checkpoints").glob("*.ckpt")
    ckpt.write_bytes(ckpt.read_bytes()[:-1] + b"x")
    (copy / "kaggle.json").rename(tmp_path / "kaggle.json")

    def fails(message: str) -> None:
        with pytest.raises(SystemExit) as e:
            dry_run(copy, comp_2024, tmp_path / "work")
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1 and message in err, err

    fails("kaggle.json: cannot read it")
    (tmp_path / "kaggle.json").rename(copy / "kaggle.json")
    fails(f"{ckpt}: checksum mismatch")
    assert list((tmp_path / "work").iterdir()) == []
