"""The supervised autoencoder + MLP: shapes, joint training of both losses, train.py."""

import functools
import json

import numpy as np
import pytest
import torch

from conftest import compose_cfg
from jsmp.errors import UserError
from jsmp.models.aemlp import AEMLP
from jsmp.run.config import build
from jsmp.run.dataconfig import jsmp_data


def _batch(store, n=256, targets=("resp", "resp_1", "resp_2", "resp_3", "resp_4")):
    dm = jsmp_data(store=str(store), split={"val_frac": 0.2, "gap_days": 2}, targets=list(targets))
    dm.setup("fit")
    return dm, dm.train_set[np.arange(n)]


def test_config_builds_the_first_place_network(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    dm, batch = _batch(tiny_store, n=32)
    model = build(compose_cfg(["model=aemlp"]).model, "model", n_features=dm.n_features, n_days=dm.n_days, n_targets=5)
    widths = [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)]
    assert widths == [896, 448, 448, 256, 5]
    assert model.encoder[1].out_features == 96 and model.decoder[1].out_features == dm.n_features
    decoded, aux, logits = model.heads(batch["x"])
    assert decoded.shape == batch["x"].shape and aux.shape == logits.shape == (32, 5)
    assert set(model.losses(batch)) == {"bce", "aux_bce", "recon_mse"}


def test_both_losses_decrease_when_trained_jointly(tiny_store):
    torch.manual_seed(0)
    dm, batch = _batch(tiny_store)
    model = AEMLP(dm.n_features, dm.n_days, n_targets=5, noise=0.0, decoder_dropout=0.0, aux_dropout=0.0,
                  input_dropout=0.0, hidden=[64, 32], dropout=[0.0, 0.0],
                  optimizer=functools.partial(torch.optim.Adam, lr=1e-3))
    opt = model.configure_optimizers()
    history = []
    for _ in range(40):
        terms = model.losses(batch)
        history.append({k: v.item() for k, v in terms.items()})
        opt.zero_grad()
        torch.stack(list(terms.values())).sum().backward()
        opt.step()
    first, last = history[0], history[-1]
    assert last["recon_mse"] < 0.9 * first["recon_mse"], (first, last)
    assert last["bce"] < 0.9 * first["bce"] and last["aux_bce"] < 0.9 * first["aux_bce"], (first, last)


def test_mismatched_dropouts_are_a_user_error():
    with pytest.raises(UserError, match=r"model.dropout has 1 rates for 2 hidden layers"):
        AEMLP(10, 5, hidden=[8, 8], dropout=[0.1])


def test_aemlp_fast_dev_run_logs_every_loss(tiny_store, tmp_path, train_app):
    p = train_app("model=aemlp", f"data.store={tiny_store}", "data.targets=[resp,resp_1,resp_2,resp_3,resp_4]",
                  "trainer.fast_dev_run=true")
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "completed"
    for key in ["train/bce", "train/aux_bce", "train/recon_mse", "train/loss", "val/utility", "val/auc"]:
        assert key in m, key
    assert m["train/loss"] == pytest.approx(m["train/bce"] + m["train/aux_bce"] + m["train/recon_mse"], rel=1e-5)
