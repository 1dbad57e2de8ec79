"""The optimizer as a config node: each conf/model/optimizer option builds its torch class with the
settings the old name table gave it; one-line errors; checkpoints keep it out of their hyper-parameters."""

import pytest
import torch

from conftest import CONF, compose_cfg
from jsmp.errors import UserError
from jsmp.models.mlp import MLP
from jsmp.run.config import build

OPTIONS = sorted(p.stem for p in (CONF / "model" / "optimizer").glob("*.yaml"))
# what `model.optimizer=NAME model.lr=LR` built before the optimizer became a node: momentum for SGD/RMSprop only
BEFORE = {"adam": (torch.optim.Adam, {}), "adamw": (torch.optim.AdamW, {}),
          "rmsprop": (torch.optim.RMSprop, {"momentum": 0.0}), "sgd": (torch.optim.SGD, {"momentum": 0.0})}


def _model(overrides=(), model="mlp"):
    return build(compose_cfg([f"model={model}", *overrides]).model, "model", n_features=4, n_days=3)


def test_the_options_are_the_old_names():
    assert OPTIONS == sorted(BEFORE)


@pytest.mark.parametrize("name", OPTIONS)
def test_each_option_builds_what_the_old_name_built(name, tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    model = _model([f"model/optimizer={name}", "model.optimizer.lr=0.05"])
    opt = model.configure_optimizers()
    cls, extra = BEFORE[name]
    old = cls(model.parameters(), lr=0.05, weight_decay=0.0, **extra)
    assert type(opt) is cls and opt.defaults == old.defaults
    assert [p for g in opt.param_groups for p in g["params"]] == list(model.parameters())


@pytest.mark.parametrize("model,lr", [("mlp", 6.78e-4), ("lstm", 1e-3), ("aemlp", 1e-3)])
def test_the_models_default_to_adam_at_their_old_lr(model, lr, tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    opt = _model(model=model).configure_optimizers()
    assert type(opt) is torch.optim.Adam and opt.defaults["lr"] == lr and opt.defaults["weight_decay"] == 0.0


def test_checkpoint_hyperparameters_leave_the_optimizer_out(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    model = _model(["model.hidden=[5,3]"])
    assert dict(model.hparams) == {"n_features": 4, "n_days": 3, "n_targets": 1, "task": "action", "hidden": [5, 3],
                                   "activations": ["relu", "sigmoid"], "dropout": 0.0, "batch_norm": False}
    torch.save({"hyper_parameters": dict(model.hparams)}, tmp_path / "hp.pt")
    hparams = torch.load(tmp_path / "hp.pt", weights_only=True)["hyper_parameters"]
    for_inference = MLP(**hparams)  # how jsmp.predict rebuilds it: without an optimizer
    with pytest.raises(UserError, match=r"^this model was built without model.optimizer .*cannot train"):
        for_inference.configure_optimizers()


@pytest.mark.parametrize("override,message", [
    ("model.optimizer.lr=0", r"^model.optimizer.lr must be > 0, got 0$"),
    ("model.optimizer.lr=-1e-3", r"^model.optimizer.lr must be > 0, got -0.001$"),
    ("model.optimizer.lr=fast", r"^model.optimizer.lr must be > 0, got 'fast'$"),
    ("model.optimizer=sgd", r"^model.optimizer must be one of the optimizer configs \(conf/model/optimizer/\), "
                            r"chosen with model/optimizer=NAME, got 'sgd'$"),
])
def test_bad_optimizer_settings_are_one_line_errors(override, message, tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    with pytest.raises(UserError, match=message):
        _model([override])
