"""Multi-target labels, sample weights, min_date, and the trade rule: mean probability > 0.5."""

import json

import numpy as np
import pytest
import torch

from jsmp.errors import UserError
from jsmp.models.base import TradeModule, trade_proba
from jsmp.models.mlp import MLP
from jsmp.run.dataconfig import jsmp_data
from jsmp.store.store import Store

FIVE = ["resp", "resp_1", "resp_2", "resp_3", "resp_4"]


def _dm(store, **kw):
    dm = jsmp_data(store=str(store), split={"val_frac": 0.2, "gap_days": 2}, batch_size=64, **kw)
    dm.setup("fit")
    return dm


def test_five_targets_give_one_label_per_return_column(tiny_store):
    dm = _dm(tiny_store, targets=FIVE, sample_weight="abs_resp_mean")
    s = Store(tiny_store)
    rows = dm.train_set.rows[:64]
    batch = dm.train_set[np.arange(64)]
    resp = np.stack([s.side(t)[rows] for t in FIVE], axis=1)
    np.testing.assert_array_equal(batch["y"].numpy(), (resp > 0).astype(np.float32))
    np.testing.assert_allclose(batch["sample_weight"].numpy(), np.abs(resp).mean(1), rtol=1e-6)
    assert dm.n_targets == 5
    model = MLP(dm.n_features, dm.n_days, n_targets=dm.n_targets)
    assert model.logits(batch).shape == (64, 5) and torch.isfinite(model.losses(batch)["bce"])
    # one target keeps the (B,) label
    assert _dm(tiny_store).train_set[np.arange(8)]["y"].shape == (8,)


@pytest.mark.parametrize("kw,message", [
    ({"targets": ["resp", "weight"]}, "data.targets: 'weight' is not a return column"),
    ({"targets": ["resp_9"]}, "data.targets: 'resp_9' is not a return column"),
    ({"targets": []}, "data.targets: expected at least one"),
    ({"sample_weight": "abs"}, "data.sample_weight must be null or one of"),
    ({"min_date": 30}, "data.min_date=30 drops every day"),
])
def test_bad_label_options(tiny_store, kw, message):
    with pytest.raises(UserError, match=message):
        _dm(tiny_store, **kw)


def test_min_date_drops_early_days_before_splitting(tiny_store):
    s = Store(tiny_store)
    dm = _dm(tiny_store, min_date=10)
    # 20 days left (dates 10..29): 4 validate, 2 are purged, 14 train
    assert s.days[dm.split.train].tolist() == list(range(10, 24))
    assert s.days[dm.split.val].tolist() == list(range(26, 30))
    assert s.days[s.row_day_index()[dm.train_set.rows]].min() == 10


def test_trade_rule_is_mean_probability_over_targets():
    logits = torch.tensor([
        [3.0, 3.0, -0.5, -0.5, -0.5],  # p = .953,.953,.378,.378,.378: mean .608 -> trade (2 of 5 say yes)
        [0.2, 0.2, 0.2, -3.0, -3.0],   # mean .349 -> no trade (3 of 5 say yes)
        [-5.0, 1.0, 1.0, 1.0, 1.0],    # mean .586 -> trade (the mean logit, -.2, would not)
        [0.0, 0.0, 0.0, 0.0, 0.0],     # exactly .5 -> no trade
    ])
    proba = trade_proba(logits)
    np.testing.assert_allclose(proba.numpy(), torch.sigmoid(logits).mean(1).numpy(), rtol=1e-6)
    assert (proba > 0.5).tolist() == [True, False, True, False]
    assert trade_proba(torch.tensor([0.3, -0.3])).shape == (2,)  # one target, (B,) logits


class Fixed(TradeModule):
    """Outputs the logits it was given, whatever the input."""

    def __init__(self, logits):
        super().__init__(n_days=2, n_targets=logits.shape[1])
        self.out = logits

    def forward(self, x):
        return self.out


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_validation_trades_on_the_mean_probability():
    logits = torch.tensor([[3.0, 3.0, -0.5, -0.5, -0.5], [0.2, 0.2, 0.2, -3.0, -3.0], [-5.0, 1, 1, 1, 1]])
    batch = {"x": torch.zeros(3, 4), "y": torch.ones(3, 5), "day": torch.tensor([0, 0, 1]),
             "weight": torch.tensor([1.0, 2.0, 4.0]), "resp": torch.tensor([0.1, 0.2, -0.3])}
    m = Fixed(logits)
    m.validation_step(batch, 0)
    # rows 0 and 2 trade: day 0 P&L = 1 * .1, day 1 = 4 * -.3
    np.testing.assert_allclose(m.val_utility.pnl.numpy(), [0.1, -1.2], rtol=1e-6)


def test_sample_weights_weigh_the_loss():
    m = Fixed(torch.tensor([[2.0], [-1.0]]))
    batch = {"y": torch.tensor([0.0, 1.0])}
    row0 = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(2.0), torch.tensor(0.0))
    assert m.loss(m.out, {**batch, "sample_weight": torch.tensor([3.0, 0.0])}).item() == pytest.approx(row0.item())
    row1 = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(-1.0), torch.tensor(1.0))
    assert m.loss(m.out, batch).item() == pytest.approx((row0.item() + row1.item()) / 2)


def test_five_target_training_through_train_py(tiny_store, tmp_path, train_app):
    p = train_app(f"data.store={tiny_store}", "trainer.max_epochs=1", "data.targets=[resp,resp_1,resp_2,resp_3,resp_4]",
                  "data.sample_weight=abs_resp_mean", "data.batch_size=256", "logger=none")
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "completed" and 0 <= m["val/auc"] <= 1
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    last = max(k for k in state if k.startswith("net.") and k.endswith(".weight"))
    assert state[last].shape[0] == 5  # one output per target
