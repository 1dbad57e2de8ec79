"""data.task=regression: float labels, raw outputs, the weighted MSE loss, val/r2 and val/mse, a fit that learns."""

import numpy as np
import pytest
import torch
from lightning import Trainer
from torch.utils.data import DataLoader

from jsmp.batches.labels import Labels
from jsmp.errors import UserError
from jsmp.metrics import r2_score
from jsmp.models.aemlp import AEMLP
from jsmp.models.base import TradeModule
from jsmp.models.mlp import MLP
from jsmp.store.store import Store, StoreWriter


class Fixed(TradeModule):
    """Outputs the values it was given, whatever the input."""

    def __init__(self, out, task="regression"):
        super().__init__(n_days=2, n_targets=out.shape[1], task=task)
        self.out = out

    def forward(self, x):
        return self.out


OUT = torch.tensor([[1.0, 0.0], [2.0, 1.0], [-1.0, 3.0]])
Y = torch.tensor([[0.5, 0.0], [2.0, -1.0], [1.0, 3.0]])


def _responder_store(path):
    """A 2024-style store: no resp, responder columns (6 rows on 2 dates)."""
    side = {"date": "int32", "weight": "float32", "responder_3": "float32", "responder_6": "float32"}
    with StoreWriter(path, ["feature_00", "feature_01"], side, {"kind": "test"}) as w:
        w.append(np.zeros((6, 2)), {"date": [0, 0, 0, 1, 1, 1], "weight": np.ones(6), "responder_3": np.arange(6) - 2.5,
                                    "responder_6": np.arange(6) * -0.5})
        return Store(w.close())


def test_labels_are_the_values_for_regression_and_signs_for_action(tiny_store):
    s = Store(tiny_store)
    rows = np.arange(0, 400, 7)
    values = np.stack([s.side("resp")[rows], s.side("resp_1")[rows]], axis=1)
    reg = Labels(s, ["resp", "resp_1"], task="regression")
    y = reg(rows)["y"]
    assert y.dtype == np.float32 and y.shape == (len(rows), 2)
    np.testing.assert_array_equal(y, values)
    assert not reg.binary and reg.score_column == "resp"
    act = Labels(s, ["resp_1"], sample_weight="weight")
    assert act.binary and act.score_column == "resp"  # the 2021 store's resp is scored, whatever the targets
    out = act(rows)
    np.testing.assert_array_equal(out["y"], (values[:, 1] > 0).astype(np.float32))
    np.testing.assert_array_equal(out["sample_weight"], s.side("weight")[rows])


def test_labels_of_a_store_without_resp(tmp_path):
    s = _responder_store(tmp_path / "s")
    lab = Labels(s, ["responder_6", "responder_3"], sample_weight="weight", task="regression")
    assert lab.score_column == "responder_6"
    np.testing.assert_array_equal(lab(np.array([1, 4]))["y"], [[-0.5, -1.5], [-2.0, 1.5]])
    with pytest.raises(UserError, match=r"^data.targets: 'resp' is not a return column of store .* "
                                        r"\(has \['responder_3', 'responder_6'\]\)$"):
        Labels(s, ["resp"], task="regression")


def test_an_unknown_task_is_one_line():
    with pytest.raises(UserError, match=r"^data.task must be one of \['action', 'regression'\], got 'regress'$"):
        Labels(None, task="regress")
    with pytest.raises(UserError, match=r"^data.task must be one of \['action', 'regression'\], got 'mse'$"):
        MLP(3, 2, task="mse")


def test_regression_loss_is_the_row_weighted_mse():
    m = Fixed(OUT)
    # squared errors: row 0 [.25, 0], row 1 [0, 4], row 2 [4, 0]; row means .125, 2, 2
    assert m.losses({"x": torch.zeros(3, 1), "y": Y}) == {"mse": pytest.approx(torch.tensor((0.125 + 2 + 2) / 3))}
    # sample weights 2, 1, 1: (2 * .125 + 2 + 2) / 4
    assert m.loss(OUT, {"y": Y, "sample_weight": torch.tensor([2.0, 1.0, 1.0])}).item() == pytest.approx(1.0625)
    assert m.dashboard_metrics[0] == "val/r2_best" and Fixed(OUT, "action").dashboard_metrics[0] == "val/utility_best"


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_validation_scores_output_0_against_target_0():
    m = Fixed(OUT)
    w = torch.tensor([1.0, 2.0, 0.5])
    batch = {"x": torch.zeros(3, 4), "y": Y, "weight": w, "resp": Y[:, 0], "day": torch.tensor([0, 0, 1])}
    m.validation_step(batch, 0)
    m.validation_step(batch, 1)  # the sums of two batches: the same ratios
    pred, y = OUT[:, 0].numpy(), Y[:, 0].numpy()
    # Σ w (y - pred)² = .25 + 0 + .5 * 4 = 2.25; Σ w y² = .25 + 8 + .5 = 8.75; Σ w = 3.5
    assert float(m.val_r2.compute()) == pytest.approx(1 - 2.25 / 8.75) == r2_score(y, pred, w.numpy())
    assert float(m.val_mse.compute()) == pytest.approx(2.25 / 3.5)
    torch.testing.assert_close(m.predict_output(batch), OUT[:, 0])
    with pytest.raises(UserError, match="trained for data.task=regression: it predicts values"):
        m.predict_proba(batch)
    m.out = torch.tensor([[float("nan"), 0.0], [2.0, 1.0], [-1.0, 3.0]])
    m.validation_step(batch, 2)
    assert np.isnan(float(m.val_mse.compute())) and np.isnan(float(m.val_r2.compute()))  # NaN shows, never vanishes


def _toy(n, seed):
    """y0 = x @ a, y1 = x @ b (an auxiliary target), plus noise; weights log-normal."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = torch.stack([x @ torch.tensor([1.0, -0.5, 0.0, 0.3, 0.0]), x @ torch.tensor([0.0, 0.2, 1.0, 0.0, 0.0])], 1)
    w = torch.exp(torch.randn(n, generator=g))
    return {"x": x, "y": y + 0.1 * torch.randn(n, 2, generator=g), "sample_weight": w, "weight": w,
            "resp": y[:, 0], "day": torch.zeros(n, dtype=torch.int64)}


def test_a_tiny_regression_fit_learns_and_logs_r2():
    torch.manual_seed(0)
    train, val = _toy(512, 0), _toy(256, 1)
    model = MLP(5, 1, hidden=[16], activations="tanh", n_targets=2, task="regression",
                optimizer=lambda p: torch.optim.Adam(p, lr=0.02))
    with torch.no_grad():
        before = model.loss(model.logits(val), val).item()
    trainer = Trainer(max_epochs=40, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, DataLoader([train], batch_size=None), DataLoader([val], batch_size=None))
    got = trainer.callback_metrics
    with torch.no_grad():
        pred = model.eval().predict_output(val)
    assert pred.shape == (256,)
    r2 = r2_score(val["y"][:, 0].numpy(), pred.numpy(), val["weight"].numpy())
    assert r2 > 0.9 and float(got["val/r2"]) == pytest.approx(r2, abs=1e-6)  # the last epoch's weights
    assert float(got["val/loss"]) < 0.1 * before and float(got["train/mse"]) < 0.1 * before
    assert float(got["hp_metric"]) == float(got["val/r2_best"]) >= float(got["val/r2"])
    assert {"val/mse", "train/loss"} <= set(got) and "val/utility" not in got


def test_aemlp_heads_use_the_task_loss():
    torch.manual_seed(0)
    batch = _toy(64, 2)
    model = AEMLP(5, 1, n_targets=2, task="regression", hidden=[8], dropout=[0.0], noise=0.0).eval()
    terms = model.losses(batch)
    _, aux, out = model.heads(batch["x"])
    assert set(terms) == {"mse", "aux_mse", "recon_mse"}
    assert terms["mse"] == model.loss(out, batch) and terms["aux_mse"] == model.loss(aux, batch)


def test_checkpoint_hyperparameters_rebuild_the_task():
    model = MLP(4, 3, hidden=[5], activations="relu", task="regression")
    assert model.hparams["task"] == "regression"
    again = MLP(**model.hparams)
    again.load_state_dict(model.state_dict())  # val_r2_best included: same keys
    assert again.task.name == "regression"
    old = {k: v for k, v in model.hparams.items() if k != "task"}  # a checkpoint from before data.task
    assert MLP(**old).task.name == "action"
