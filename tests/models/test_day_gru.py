"""The GRU over day samples (model=day_gru, experiment=rtmdf_gru_day): a stacked GRU from a learned state per layer,
what only it does (the behaviour it shares with the axial model is tested in test_axial.py), its configs."""

import pytest
import torch

from conftest import compose_cfg
from jsmp.errors import UserError
from jsmp.models.axial import gru_over_present
from jsmp.models.day_gru import DayGRU
from jsmp.run.config import build


def test_a_stacked_gru_reads_each_instrument_s_present_steps_from_its_layers_h0():
    torch.manual_seed(0)
    gru, h0, seq = torch.nn.GRU(3, 4, num_layers=2, batch_first=True), torch.randn(2, 4), torch.randn(3, 6, 3)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        got = gru_over_present(gru, seq, mask, h0)
        assert got.shape == (3, 6, 4)
        for s in range(2):  # row 1 appears at step 2 from h0, and its state skips step 3
            torch.testing.assert_close(got[s, mask[s]], gru(seq[s, mask[s]][None], h0[:, None].contiguous())[0][0])
        assert (got[~mask] == 0).all()


def test_a_day_is_read_per_instrument_with_the_time_of_day():
    """Each instrument's outputs are the GRU over its own present cells (features, time of day), then the head."""
    torch.manual_seed(0)
    m = DayGRU(n_features=2, n_days=1, hidden=4, layers=2, n_targets=3).eval()
    x, time = torch.randn(1, 5, 3, 2), torch.linspace(0, 0.8, 5)[None]
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.bool)[None]
    with torch.no_grad():
        m.h0.normal_()
        out = m(x, time, mask)
        for n in range(3):
            steps = mask[0, :, n]
            z = torch.cat([x[0, steps, n], time[0, steps, None]], dim=-1)
            torch.testing.assert_close(out[0, steps, n], m.head(m.gru(z[None], m.h0[:, None].contiguous())[0][0]))
    assert m.initial_state(3).shape == (2, 3, 4) and torch.equal(m.initial_state(3)[:, 1], m.h0.detach())


def test_bad_settings_are_one_line():
    for kw, message in [({"layers": 0}, "model.hidden and model.layers must be >= 1, got 8, 0"),
                        ({"loss": "mae"}, r"model.loss must be one of \['mse', 'r2'\], got 'mae'"),
                        ({"task": "action"}, "model=day_gru predicts the responders' values: it needs "
                                             "data.task=regression, got 'action'")]:
        with pytest.raises(UserError, match=f"^{message}$"):
            DayGRU(3, 1, hidden=8, **kw)


def test_model_day_gru_config_and_the_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    m = build(compose_cfg(["model=day_gru", "model.layers=2", "model.loss=r2"]).model, "model", n_features=4, n_days=3)
    assert type(m) is DayGRU and m.gru.num_layers == 2 and m.gru.input_size == 5 and m.gru.hidden_size == 64
    assert m.h0.shape == (2, 64) and m.loss_kind == "r2" and "optimizer" not in m.hparams
    assert type(m.configure_optimizers()) is torch.optim.Adam
    exp = compose_cfg(["experiment=rtmdf_gru_day"])
    gru = compose_cfg(["experiment=rtmdf_gru"])
    assert exp.model._target_ == "jsmp.models.day_gru.DayGRU" and exp.data.task == "regression"
    assert list(exp.data.targets) == list(gru.data.targets)
    assert (exp.model.hidden, exp.model.layers, exp.model.dropout) == (gru.model.hidden, gru.model.layers, gru.model.dropout) == (64, 2, 0.2)
