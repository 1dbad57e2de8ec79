"""The recurrent models (LSTM, GRU): output shapes, padded windows read as unpadded ones, model=gru."""

import json

import pytest
import torch

from conftest import compose_cfg
from jsmp.errors import UserError
from jsmp.models import lstm
from jsmp.models.recurrent import GRU, LSTM
from jsmp.run.config import build

MASK_STARTS = torch.tensor([[0], [2], [5], [3]])  # rows 1..3 left-padded (2, 5 and 3 padding steps)


@pytest.mark.parametrize("cls", [LSTM, GRU])
@pytest.mark.parametrize("n_targets,shape", [(1, (4,)), (3, (4, 3))])
def test_output_shapes(cls, n_targets, shape):
    model = cls(n_features=3, n_days=1, hidden=5, layers=2, n_targets=n_targets)
    x = torch.randn(4, 6, 3)
    mask = torch.arange(6)[None, :] >= MASK_STARTS
    assert model(x).shape == model(x * mask[..., None], mask).shape == shape
    assert model.logits({"x": x, "mask": mask}).shape == (4, n_targets)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_padded_windows_read_only_their_real_rows(cls):
    torch.manual_seed(0)
    model = cls(n_features=3, n_days=1, hidden=5, layers=2).eval()
    x = torch.randn(4, 6, 3)
    mask = torch.arange(6)[None, :] >= MASK_STARTS
    with torch.no_grad():
        got = model(x * mask[..., None], mask)
        alone = torch.stack([model(x[b : b + 1, mask[b]])[0] for b in range(4)])  # each window without its padding
        assert not torch.allclose(got, model(x * mask[..., None]))  # reading the zeros would change the outputs
    torch.testing.assert_close(got, alone)
    assert torch.equal(model(x, torch.ones(4, 6, dtype=torch.bool)), model(x))


def test_the_gru_is_a_gru_and_the_lstm_keeps_its_names():
    g, m = GRU(3, 1, hidden=5, layers=1), LSTM(3, 1, hidden=5, layers=1)
    assert isinstance(g.gru, torch.nn.GRU) and g.gru.weight_ih_l0.shape == (3 * 5, 3)  # 3 gates; the LSTM's 4
    assert isinstance(m.lstm, torch.nn.LSTM) and m.lstm.weight_ih_l0.shape == (4 * 5, 3)
    assert lstm.LSTM is LSTM  # old runs' config.yaml name jsmp.models.lstm.LSTM
    assert {k.split(".")[0] for k in m.state_dict()} == {"lstm", "head", "val_utility_best"}  # old checkpoints' keys
    assert g.sequence and GRU(3, 1, task="regression").task.name == "regression"


@pytest.mark.parametrize("kw,message", [({"hidden": 0}, "model.hidden and model.layers must be >= 1, got 0, 2"),
                                        ({"dropout": 1.0}, r"model.dropout must be in \[0, 1\), got 1.0")])
def test_bad_settings_are_one_line(kw, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        GRU(3, 1, **kw)


def test_model_gru_config(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    model = build(compose_cfg(["model=gru", "model.layers=3"]).model, "model", n_features=4, n_days=3)
    assert type(model) is GRU and model.gru.hidden_size == 64 and model.gru.num_layers == 3
    opt = model.configure_optimizers()
    assert type(opt) is torch.optim.Adam and opt.defaults["lr"] == 1e-3


def test_gru_fast_dev_run(tiny_store, tmp_path, train_app):
    p = train_app("model=gru", f"data.store={tiny_store}", "trainer.fast_dev_run=true", "data.window.length=8",
                  "model.hidden=8", "logger=none")
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "completed" and {"val/utility", "val/auc", "val/loss", "train/loss"} <= set(m)
    assert "training GRU" in p.stderr + p.stdout
