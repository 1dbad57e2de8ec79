"""Experiment presets compose and run (`train.py experiment=NAME trainer.fast_dev_run=true`)."""

import json

import pytest

from conftest import CONF, compose_cfg, run_cli
from jsmp.batches.datamodule import FILLS

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# Tiny-store overrides: 30 days cannot hold date > 85 or five folds with 31-day gaps.
TINY = {"first_place": ["data.min_date=3", "data.cv.gap_days=1", "data.batch_size=256"],
        "lstm_baseline": ["data.window.length=4"]}


def _pending(name: str) -> str | None:
    """Why preset `name` cannot run on this branch yet (a feature another issue adds), else None."""
    data = compose_cfg().data
    if name == "first_place" and not ("ffill" in FILLS and "cv" in data and "fold" in data):
        return "needs data.fill=ffill, data.cv and data.fold (issue 3)"
    if name == "lstm_baseline" and not ((CONF / "model" / "lstm.yaml").is_file() and "window" in data):
        return "needs model=lstm and data.window (issue 4)"
    return None


def test_the_issue_presets_exist():
    assert {"seed_mlp", "seed_mlp_best", "first_place", "lstm_baseline"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes(name, tmp_path, monkeypatch):
    if reason := _pending(name):
        pytest.skip(reason)
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg([f"experiment={name}"])
    assert cfg.model._target_ and cfg.data._target_


def test_seed_presets_say_what_the_seed_did(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    seed = compose_cfg(["experiment=seed_mlp"])
    assert list(seed.model.hidden) == [118, 142] and list(seed.model.activations) == ["relu", "sigmoid"]
    assert seed.model.optimizer == "adam" and seed.model.lr == pytest.approx(6.78e-4)
    assert seed.trainer.max_epochs == 110 and seed.callbacks.early_stopping is None
    best = compose_cfg(["experiment=seed_mlp_best"])
    assert list(best.model.hidden) == [192, 10] and best.model.optimizer == "adam"


def test_first_place_preset_values(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg(["experiment=first_place"])  # composes even before issue 3 (files may add keys)
    assert cfg.model._target_.endswith("AEMLP") and list(cfg.model.hidden) == [896, 448, 448, 256]
    assert list(cfg.data.targets) == ["resp", "resp_1", "resp_2", "resp_3", "resp_4"]
    assert cfg.data.min_date == 86 and cfg.data.drop_zero_weight and cfg.data.fill == "ffill"
    assert (cfg.data.cv.folds, cfg.data.cv.gap_days, cfg.data.batch_size) == (5, 31, 4096)
    assert cfg.callbacks.early_stopping.monitor == "val/auc" and cfg.callbacks.early_stopping.patience == 10


@pytest.mark.parametrize("name", PRESETS)
def test_preset_fast_dev_run(name, tiny_store, tmp_path):
    if reason := _pending(name):
        pytest.skip(reason)
    p = run_cli(["train.py", f"hydra.run.dir={tmp_path}/run", f"experiment={name}", f"data.store={tiny_store}",
                 "trainer.fast_dev_run=true", *TINY.get(name, [])], env={"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "completed" and "val/utility" in m and "val/auc" in m
