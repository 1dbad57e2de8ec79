"""Every config group option composes, and the data/model configs build."""


import pytest
from hydra.utils import instantiate

from conftest import CONF, compose_cfg

# (experiment presets: tests/run/test_experiments.py)
GROUPS = ["data", "model", "trainer", "callbacks", "logger", "paths", "hparams_search"]


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml")) if (CONF / group).is_dir() else []


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes(group, option, tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg([f"{group}={option}"])
    assert cfg.data is not None and cfg.model is not None and cfg.trainer._target_


def test_default_config_builds(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg([f"data.store={tiny_store}"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    model = instantiate(cfg.model, n_features=dm.n_features, n_days=dm.n_days)
    assert [m.out_features for m in model.net if hasattr(m, "out_features")] == [118, 142, 1]
    assert cfg.paths.data_dir == f"{tmp_path}/data"
    assert cfg.callbacks.model_checkpoint.monitor == "val/utility"
