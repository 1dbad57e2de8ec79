"""Every config group option composes, and the data/model configs build."""


import pytest
from hydra.utils import instantiate

from conftest import CONF, compose_cfg, run_cli, train_in_process

# (experiment presets: tests/run/test_experiments.py)
GROUPS = ["data", "model", "model/optimizer", "trainer", "callbacks", "logger", "paths", "hparams_search"]


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


@pytest.mark.parametrize("space", _options("hparams_search"))
def test_every_searched_key_is_in_the_config(space, tmp_path, monkeypatch):
    """A search space names config keys that exist (`model.optimizer.lr`, not a stale `model.lr`)
    and, for a config group (`model/optimizer`), options that compose."""
    from omegaconf import OmegaConf

    from hydra_plugins.jsmp_optuna_sweeper.space import parse_space

    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    cfg = compose_cfg([f"hparams_search={space}"])
    searched, *_ = parse_space([f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()])
    for key, dist in searched.items():
        if "/" in key:
            for option in dist.choices:
                chosen = compose_cfg([f"hparams_search={space}", f"{key}={option}"])
                assert OmegaConf.select(chosen, key.replace("/", "."))._target_, (key, option)
        else:
            assert OmegaConf.select(cfg, key, default="missing") != "missing", key


# every `data.*` override users type, with a value of its type: each still composes, typed
DATA_OVERRIDES = {
    "data.batch_size": 64, "data.eval_batch_size": 128, "data.num_workers": 2, "data.pin_memory": True,
    "data.cv.folds": 3, "data.cv.gap_days": 2, "data.fill": "ffill", "data.fold": 1, "data.frac": 0.5,
    "data.keep": "start", "data.min_date": 86, "data.sample_weight": "abs_resp_mean", "data.store": "/some/store",
    "data.targets": ["resp", "resp_1"], "data.verify": False, "data.resident": "auto", "data.task": "regression",
    "data.lags": True, "data.window.cross_days": False,
    "data.window.length": 8, "data.window.shuffle_block": 1, "data.synthetic.days": 12,
    "data.synthetic.rows_per_day": 30, "data.synthetic.seed": 3, "data.split.val_frac": 0.25,
    "data.split.gap_days": 1, "data.drop_zero_weight": False,
}


def test_data_overrides_compose_typed(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from jsmp.run.dataconfig import JsmpDataConfig

    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    text = {bool: lambda v: str(v).lower(), list: lambda v: "[" + ",".join(v) + "]"}
    args = [f"{k}={text.get(type(v), str)(v)}" for k, v in DATA_OVERRIDES.items()]
    data = compose_cfg(args).data
    assert OmegaConf.get_type(data) is JsmpDataConfig
    got = {k: OmegaConf.select(data, k[len("data."):]) for k in DATA_OVERRIDES}
    got["data.targets"] = list(got["data.targets"])
    assert got == DATA_OVERRIDES
    assert compose_cfg(["data.frac=1"]).data.frac == 1.0 and isinstance(compose_cfg(["data.frac=1"]).data.frac, float)


@pytest.mark.parametrize("script,override,key", [
    ("train.py", "data.batch_size=abc", "data.batch_size"),
    ("train.py", "+data.bogus=1", "data.bogus"),
    ("train.py", "data.split.bogus=1", "data.split.bogus"),
    ("train.py", "data.window.length=x", "data.window.length"),
    ("tune.py", "+data.split.bogus=1", "data.split.bogus"),
])
def test_wrong_type_or_unknown_data_key_is_one_line_at_compose(script, override, key, tmp_path):
    argv, env = [override, f"hydra.run.dir={tmp_path / 'run'}"], {"JSMP_ROOT": str(tmp_path)}
    # tune.py as a user runs it; the rest in this process
    p = run_cli([script, *argv], env=env) if script == "tune.py" else train_in_process(argv, env, script)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and p.stderr.startswith(f"error: {key}: "), p.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()  # nothing ran
