"""Sequence models through train.py (in-process: conftest train_app): the LSTM on windows and the sine->cosine
toy. PyTorch reads the huge-page variable once per process: a run that turns it off is a subprocess."""

import json

import pytest

from jsmp.allocator import ENV, kernel_offers_huge_pages


@pytest.mark.parametrize("cross_days,huge_pages", [("true", None), ("false", "0")])
def test_lstm_fast_dev_run(tiny_store, tmp_path, cross_days, huge_pages, train_app, train_cli):
    train = train_cli if huge_pages else train_app
    p = train("model=lstm", f"data.store={tiny_store}", "trainer.fast_dev_run=true", "data.window.length=8",
             f"data.window.cross_days={cross_days}", "model.hidden=8", env={ENV: huge_pages} if huge_pages else None)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "completed" and {"val/utility", "val/auc", "val/loss", "train/loss"} <= set(m)
    out = p.stderr + p.stdout
    assert "training LSTM" in out
    # jsmp turns PyTorch's huge pages on unless the environment says otherwise
    expected = "off" if huge_pages == "0" or not kernel_offers_huge_pages() else "on"
    assert f"huge pages for CPU tensors >= 2 MB: {expected} ({ENV}={huge_pages or 1}" in out


def _sincos(train_app, tmp_path, *overrides):
    p = train_app("experiment=sincos", *overrides)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_sincos_logs_mse_and_saves_the_figure(tmp_path, train_app):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    m = _sincos(train_app, tmp_path, "trainer.max_epochs=3")
    assert m["epoch"] == 3 and {"train/mse", "test/mse"} <= set(m) and m["status"] == "completed"
    run = tmp_path / "run"
    assert (run / "sincos.png").read_bytes()[:4] == b"\x89PNG"
    tags = {"scalars": set(), "images": set()}
    for ev in (run / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev))
        acc.Reload()
        for k in tags:
            tags[k] |= set(acc.Tags()[k])
    assert {"train/mse", "test/mse"} <= tags["scalars"] and "sincos" in tags["images"]


@pytest.mark.slow
def test_sincos_reaches_its_loss_threshold(tmp_path, train_app):
    m = _sincos(train_app, tmp_path)
    assert m["train/mse"] < 1e-4 and m["epoch"] < 10_000
    assert m["test/mse"] < 1e-2  # it generalises to the unseen second half


def test_the_toy_model_alone_on_the_jsmp_data_is_refused(tiny_store, tmp_path, train_app):
    p = train_app("model=sincos", f"data.store={tiny_store}")
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2 and len(err) == 1, p.stderr[-3000:]
    assert err[0].startswith("error: model=sincos got n_days, n_features, n_targets, task: ") and "use experiment=sincos" in err[0]
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_window_longer_than_the_data_is_one_line_before_any_batch(tiny_store, tmp_path, train_app):
    p = train_app("model=lstm", f"data.store={tiny_store}", "data.window.length=100000", "trainer.max_epochs=1")
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"error: data.window.length=100000 is longer than any series in store {tiny_store}: the longest (the whole store, "
        "with data.window.cross_days=true) has 2456 rows, and the rest of every window would be padding; choose at most 2456"]
    assert not (tmp_path / "run" / "metrics.json").exists()
