"""Checkpoints (jsmp/checkpoint.py): written whole or not at all with a `NAME.ckpt.sha256` sidecar, removed
with it, and verified wherever loaded (jsmp.evaluate, jsmp.predict, Predictor, a resume's check and
Lightning's own load): a damaged or empty file is one line naming it; a checkpoint without a sidecar
(trained before checksums) still loads."""

from __future__ import annotations

import errno
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

import jsmp.checkpoint as ck
from conftest import RUN_ARGS, RUNS, compose_cfg, train_in_process
from jsmp.checkpoint import CheckpointFiles, sidecar
from jsmp.data.synthetic import SynthSpec, write_csv
from jsmp.errors import UserError
from jsmp.evaluate import main as evaluate
from jsmp.predict import Predictor
from jsmp.predict import main as predict
from jsmp.run.rundir import check_run_dir

ARGS = [*RUN_ARGS, *RUNS["mlp"]]  # what the session's MLP run was trained with (conftest `runs`)


@pytest.fixture
def trained(runs) -> Path:
    """A 1-epoch MLP run on the tiny store (the session's; copied by tests that change it)."""
    return runs["mlp"]


@pytest.fixture
def run(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture(scope="module")
def test_csv(tmp_path_factory) -> Path:
    return write_csv(SynthSpec(days=2, rows_per_day=40, seed=9), tmp_path_factory.mktemp("test") / "test.csv", test_layout=True)


def _rows(csv: Path) -> tuple[np.ndarray, np.ndarray]:
    df = pd.read_csv(csv)
    return df["date"].to_numpy(), df[[f"feature_{i}" for i in range(130)]].to_numpy(np.float32)


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _pairs(d: Path) -> dict[str, str]:
    """checkpoint name -> its sidecar's text, for every file in `d` (asserting nothing else is there)."""
    names = sorted(p.name for p in d.iterdir())
    ckpts = [n for n in names if n.endswith(".ckpt")]
    assert names == sorted([*ckpts, *(n + ".sha256" for n in ckpts)]), names  # pairs only: no temp, no orphan
    return {n: (d / (n + ".sha256")).read_text() for n in ckpts}


def _recorded(path: Path) -> str:
    return f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"


def test_a_run_leaves_checkpoints_with_matching_sha256sum_sidecars(trained):
    pairs = _pairs(trained / "checkpoints")
    assert "last.ckpt" in pairs and len([n for n in pairs if n.startswith("best-epoch")]) == 1, pairs
    for name, text in pairs.items():
        assert text == _recorded(trained / "checkpoints" / name)


def _boring(tmp_path: Path, epochs: int, **kw) -> Trainer:
    """A Trainer with jsmp's checkpoint plugin saving one checkpoint per epoch (`e<N>.ckpt`), keeping the latest."""
    cb = ModelCheckpoint(dirpath=tmp_path / "ckpts", filename="e{epoch}", auto_insert_metric_name=False, save_top_k=1)
    return Trainer(max_epochs=epochs, limit_train_batches=2, limit_val_batches=0, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, callbacks=[cb], plugins=[CheckpointFiles()], **kw)


def test_removed_checkpoints_take_their_sidecars_and_lightning_loads_verified(tmp_path):
    _boring(tmp_path, 3).fit(BoringModel())
    d = tmp_path / "ckpts"
    assert _pairs(d) == {"e2.ckpt": _recorded(d / "e2.ckpt")}  # e0 and e1 went with their sidecars
    _boring(tmp_path / "more", 4).fit(BoringModel(), ckpt_path=d / "e2.ckpt")  # a resume reads through the plugin
    _flip_bit(d / "e2.ckpt")
    with pytest.raises(UserError, match=rf"^{d / 'e2.ckpt'}: checksum mismatch \(recorded in e2.ckpt.sha256\)"):
        _boring(tmp_path / "again", 4).fit(BoringModel(), ckpt_path=d / "e2.ckpt")


def _half_then_disk_full(path, data):
    path.write_bytes(bytes(data[: len(data) // 2]))
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_a_save_leaves_the_previous_checkpoint_whole_and_no_temp(tmp_path, monkeypatch):
    _boring(tmp_path, 1).fit(BoringModel())
    d = tmp_path / "ckpts"
    before = _tree(d)
    monkeypatch.setattr(ck, "_write_synced", _half_then_disk_full)
    with pytest.raises(UserError, match=rf"^checkpoint {d / 'e1.ckpt'}: disk full while writing it \(needs 0\.0 MB, .+ free in {d}\); "
                                        rf"free some space there and run again with ckpt_path=last .*; no partial file was left$"):
        _boring(tmp_path, 2).fit(BoringModel(), ckpt_path=d / "e0.ckpt")
    assert _tree(d) == before  # e1.ckpt absent, e0.ckpt and its sidecar as they were


@pytest.mark.parametrize("fails", ["checkpoint", "sidecar"])
def test_a_failed_write_over_a_checkpoint_never_pairs_it_with_another_checksum(tmp_path, monkeypatch, fails):
    path = tmp_path / "last.ckpt"
    ck.write(path, b"old")
    calls = []
    real = ck._write_synced

    def failing(p, data):
        calls.append(p)
        if len(calls) == (1 if fails == "checkpoint" else 2):
            raise OSError(errno.EACCES, "Permission denied")
        real(p, data)

    monkeypatch.setattr(ck, "_write_synced", failing)
    with pytest.raises(UserError, match=rf"^checkpoint {path}: cannot write it \(Permission denied\); no partial file was left$"):
        ck.write(path, b"new")
    if fails == "checkpoint":  # the old pair stands
        assert _pairs(tmp_path) == {"last.ckpt": _recorded(path)} and path.read_bytes() == b"old"
    else:  # the new checkpoint is whole, without a checksum: loaded unverified, never refused as damaged
        assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"] and path.read_bytes() == b"new"
        assert ck.read_verified(path) == b"new"


def _refused(capsys, main, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    assert e.value.code == 2
    return capsys.readouterr().err.strip()


def _mismatch(path: Path) -> str:
    return f"{path}: checksum mismatch (recorded in {path.name}.sha256): the file is damaged; retrain or restore it"


def test_a_flipped_bit_is_refused_by_eval_predict_and_predictor(run, test_csv, tmp_path, capsys):
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    _flip_bit(best)
    before = _tree(run)
    assert _refused(capsys, evaluate, "--run", run, "--out", tmp_path / "ev") == f"error: {_mismatch(best)}"
    out = tmp_path / "submission.csv"
    assert _refused(capsys, predict, "--run", run, "--data", test_csv, "--out", out) == f"error: {_mismatch(best)}"
    with pytest.raises(UserError) as e:
        Predictor(run)
    assert str(e.value) == _mismatch(best)
    assert not (tmp_path / "ev").exists() and not out.exists() and _tree(run) == before


def test_a_flipped_bit_refuses_a_resume_and_touches_nothing(run, tiny_store, tmp_path):
    last = run / "checkpoints" / "last.ckpt"
    _flip_bit(last)
    before = _tree(run)
    p = train_in_process([f"hydra.run.dir={run}", f"data.store={tiny_store}", *ARGS, "ckpt_path=last"],
                         env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert [line for line in p.stderr.splitlines() if line.startswith("error:")] == [
        f"error: ckpt_path=last: {_mismatch(last)}; or resume from another checkpoint, e.g. checkpoints/best-*.ckpt"]
    assert _tree(run) == before


def test_an_empty_checkpoint_is_one_line_everywhere(run, tiny_store, test_csv, tmp_path, capsys):
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    last = run / "checkpoints" / "last.ckpt"
    for path in (best, last):
        path.write_bytes(b"")
    empty = "empty file (0 bytes), not a checkpoint (a save or copy that did not finish); restore it or retrain"
    assert _refused(capsys, evaluate, "--run", run, "--out", tmp_path / "ev") == f"error: {best}: {empty}"
    assert _refused(capsys, predict, "--run", run, "--data", test_csv, "--out", tmp_path / "s.csv") == f"error: {best}: {empty}"
    with pytest.raises(UserError, match=rf"^{best}: empty file \(0 bytes\)"):
        Predictor(best)
    with pytest.raises(UserError) as e:
        check_run_dir(compose_cfg([f"data.store={tiny_store}", *ARGS, "ckpt_path=last"]), run)
    assert str(e.value) == f"ckpt_path=last: {last}: {empty}; or resume from another checkpoint, e.g. checkpoints/best-*.ckpt"


def test_checkpoints_without_a_sidecar_serve_with_a_warning(run, test_csv, tmp_path, capsys):
    """Runs trained before checksums were recorded load as before: unverified, said once per file."""
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    expected = Predictor(run).predict_batch(*_rows(test_csv))
    for p in (run / "checkpoints").glob("*.sha256"):
        p.unlink()
    capsys.readouterr()
    assert (Predictor(run).predict_batch(*_rows(test_csv)) == expected).all()
    Predictor(run)
    assert capsys.readouterr().err == (f"warning: {best}: no recorded checksum ({best.name}.sha256; written before jsmp "
                                       f"recorded them); loaded unverified\n")
    assert predict(["--run", str(run), "--data", str(test_csv), "--out", str(tmp_path / "s.csv")]) == 0
    # unverified, a damaged one is still caught where torch can tell
    best.write_bytes(best.read_bytes()[:3000])
    with pytest.raises(UserError, match=rf"^{best}: not a readable checkpoint \(RuntimeError: PytorchStreamReader failed "
                                        rf"reading zip archive: failed finding central directory\); it is truncated, damaged or not a checkpoint$"):
        Predictor(run)


@pytest.mark.parametrize("content, detail", [(b"hello world\n", "KeyError: 101"), (b"\x00", "UnpicklingError: Unsupported operand 0"),
                                             (b'{"state_dict": {}}', "UnpicklingError: Unsupported operand 123")])
def test_a_file_that_is_no_checkpoint_is_one_line_not_a_refused_payload(tmp_path, content, detail):
    path = tmp_path / "x.ckpt"
    path.write_bytes(content)
    sidecar(path).write_text(_recorded(path))
    with pytest.raises(UserError) as e:
        ck.load(path)
    assert str(e.value) == f"{path}: not a readable checkpoint ({detail}); it is truncated, damaged or not a checkpoint"


def test_a_damaged_sidecar_is_named(run):
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    sidecar(best).write_text("not a checksum\n")
    with pytest.raises(UserError, match=rf"^{sidecar(best)}: not a checksum line \('<64 hex digits>  {best.name}'\)"):
        Predictor(run)

