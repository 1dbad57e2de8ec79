"""Experiment presets compose and run (`train.py experiment=NAME trainer.fast_dev_run=true`)."""

import json

import pytest

from conftest import CONF, compose_cfg

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TOYS = {"sincos"}  # presets with their own data (no store)
# Tiny-store overrides: 30 days cannot hold date > 85 or five folds with 31-day gaps.
TINY = {"first_place": ["data.min_date=3", "data.cv.gap_days=1", "data.batch_size=256"],
        "lstm_baseline": ["data.window.length=4"]}


def test_the_issue_presets_exist():
    assert {"seed_mlp", "seed_mlp_best", "first_place", "lstm_baseline", "sincos"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg([f"experiment={name}"])
    assert cfg.model._target_ and cfg.data._target_ and cfg.model.optimizer._partial_


def test_seed_presets_say_what_the_seed_did(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    seed = compose_cfg(["experiment=seed_mlp"])
    assert list(seed.model.hidden) == [118, 142] and list(seed.model.activations) == ["relu", "sigmoid"]
    assert seed.model.optimizer._target_ == "torch.optim.Adam" and seed.model.optimizer.lr == pytest.approx(6.78e-4)
    assert seed.trainer.max_epochs == 110 and seed.callbacks.early_stopping is None
    best = compose_cfg(["experiment=seed_mlp_best"])
    assert list(best.model.hidden) == [192, 10] and best.model.optimizer == seed.model.optimizer
    # the command line still chooses another optimizer for a preset
    sgd = compose_cfg(["experiment=seed_mlp", "model/optimizer=sgd"]).model.optimizer
    assert sgd._target_ == "torch.optim.SGD" and sgd.lr == pytest.approx(6.78e-4)


def test_first_place_preset_values(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg(["experiment=first_place"])
    assert cfg.model._target_.endswith("AEMLP") and list(cfg.model.hidden) == [896, 448, 448, 256]
    assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer.lr == 1e-3
    assert list(cfg.data.targets) == ["resp", "resp_1", "resp_2", "resp_3", "resp_4"]
    assert cfg.data.min_date == 86 and cfg.data.drop_zero_weight and cfg.data.fill == "ffill"
    assert (cfg.data.cv.folds, cfg.data.cv.gap_days, cfg.data.batch_size) == (5, 31, 4096)
    assert cfg.callbacks.early_stopping.monitor == "val/auc" and cfg.callbacks.early_stopping.patience == 10


def test_sincos_preset_sets_the_toy_run(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg(["experiment=sincos"])
    assert cfg.data._target_.endswith("SinCosDataModule") and cfg.model._target_.endswith("SinCos")
    assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer.lr == 1e-2
    assert set(cfg.callbacks) == {"stop_at_threshold"} and cfg.callbacks.stop_at_threshold.stopping_threshold == 1e-4
    assert (cfg.trainer.max_epochs, cfg.trainer.enable_checkpointing) == (10000, False)
    assert (cfg.monitor, cfg.monitor_mode, cfg.optimized_metric) == ("test/mse", "min", "test/mse")


def test_rtmdf_presets_regress_on_responder_6_and_monitor_r2(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    for name, model in (("rtmdf_mlp", "MLP"), ("rtmdf_gru", "GRU"), ("rtmdf_gru_day", "DayGRU"), ("rtmdf_axial", "Axial")):
        cfg = compose_cfg([f"experiment={name}"])
        assert cfg.model._target_.endswith(f".{model}") and cfg.data.synthetic.layout == "rtmdf"
        # trained unweighted (the conditional mean does not depend on the weight), scored weighted
        assert (cfg.data.task, cfg.data.targets[0], cfg.data.sample_weight, cfg.data.lags) == ("regression", "responder_6", None, True)
        assert (cfg.monitor, cfg.optimized_metric, cfg.callbacks.early_stopping.monitor) == ("val/r2", "val/r2_best", "val/r2")
    # the task alone moves the score: a 2021 run told to regress is judged by R² too
    cfg = compose_cfg(["data.task=regression"])
    assert (cfg.monitor, cfg.optimized_metric) == ("val/r2", "val/r2_best")
    assert compose_cfg([]).monitor == "val/utility"


@pytest.mark.parametrize("name", PRESETS)
def test_preset_fast_dev_run(name, tiny_store, tiny_rtmdf_store, tmp_path, train_app):
    rtmdf = name.startswith("rtmdf")
    data = [] if name in TOYS else [f"data.store={tiny_rtmdf_store if rtmdf else tiny_store}"]
    p = train_app(f"experiment={name}", *data, "trainer.fast_dev_run=true", *TINY.get(name, []))
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    scores = ("test/mse",) if name in TOYS else ("val/r2", "val/mse") if rtmdf else ("val/utility", "val/auc")
    assert m["status"] == "completed" and all(k in m for k in scores), m
