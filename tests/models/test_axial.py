"""The models over day samples (jsmp.models.axial.DayModel: Axial, DayGRU): shapes, causality in time, absent cells
unread, the r2 loss, a fit, stepping equals forward; model=axial."""

import pytest
import torch

from conftest import compose_cfg
from jsmp.errors import UserError
from jsmp.metrics import r2_score
from jsmp.models.axial import Axial, DayModel, gru_over_present, r2_loss
from jsmp.models.day_gru import DayGRU
from jsmp.run.config import build

B, T, N, F, K = 2, 6, 5, 3, 2


def day_batch(seed: int = 0, present: float = 0.7) -> dict:
    """A synthetic day-sample batch in the contract's shapes (jsmp.batches day samples), zeros where absent."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, T, N, generator=g) < present
    mask[1, 2] = False  # a step with no instrument present
    m = mask[..., None].float()
    return {"x": torch.randn(B, T, N, F, generator=g) * m, "mask": mask,
            "time": (torch.arange(T, dtype=torch.float32) / T).expand(B, T).contiguous(),
            "y": torch.randn(B, T, N, K, generator=g) * m, "sample_weight": torch.rand(B, T, N, generator=g) * mask,
            "weight": torch.rand(B, T, N, generator=g) * mask, "day": torch.tensor([3, 4])}


def model(cls: type[DayModel] = Axial, **kw) -> DayModel:
    torch.manual_seed(0)
    heads = {"heads": 2} if cls is Axial else {}
    return cls(n_features=F, n_days=8, hidden=8, layers=2, n_targets=K, **heads, **kw).eval()


day_models = pytest.mark.parametrize("cls", [Axial, DayGRU])


@day_models
def test_shapes_and_the_present_cells_as_rows(cls):
    m, b = model(cls), day_batch()
    with torch.no_grad():
        out = m(*m.inputs(b))
        assert out.shape == (B, T, N, K) and torch.isfinite(out).all()
        assert (out[~b["mask"]] == 0).all() and (out[1, 2] == 0).all()  # absent cells, the empty step
        P = int(b["mask"].sum())
        assert m.logits(b).shape == (P, K) and m.predict_output(b).shape == (P,)
        torch.testing.assert_close(m.predict_output(b), out[b["mask"]][:, 0])
    rows = m.rows(b)
    assert rows["y"].shape == (P, K) and rows["weight"].shape == rows["sample_weight"].shape == rows["day"].shape == (P,)
    assert rows["day"].tolist() == [3] * int(b["mask"][0].sum()) + [4] * int(b["mask"][1].sum())
    assert cls.sample == "day" and not getattr(cls, "sequence", False)


@day_models
def test_each_day_is_read_alone_and_training_mode_computes_the_same(cls):
    m, b = model(cls), day_batch()
    with torch.no_grad():
        out = m(*m.inputs(b))
        alone = torch.cat([m(b["x"][i : i + 1], b["time"][i : i + 1], b["mask"][i : i + 1]) for i in range(B)])
        torch.testing.assert_close(alone, out)
        torch.testing.assert_close(m.train()(*m.inputs(b)), out)  # attention's eval fast path or not (dropout 0)


def test_the_gru_reads_each_instrument_s_present_steps_alone_from_h0():
    torch.manual_seed(0)
    gru, h0, seq = torch.nn.GRU(4, 4, batch_first=True), torch.randn(4), torch.randn(3, 6, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        got = gru_over_present(gru, seq, mask, h0)
        for s in range(2):  # row 1 appears at step 2 from h0, and its state skips step 3
            torch.testing.assert_close(got[s, mask[s]], gru(seq[s, mask[s]][None], h0.expand(1, 1, 4))[0][0])
        assert (got[~mask] == 0).all()
        torch.testing.assert_close(gru_over_present(gru, seq, torch.ones(3, 6, dtype=torch.bool), h0),
                                   gru(seq, h0.expand(1, 3, 4).contiguous())[0])


@day_models
def test_an_output_reads_no_later_step(cls):
    m, b = model(cls), day_batch()
    later = dict(b, x=b["x"].clone(), time=b["time"].clone())
    later["x"][:, 4:] += torch.randn(B, T - 4, N, F)
    later["time"][:, 4:] += 0.5
    with torch.no_grad():
        out, changed = m(*m.inputs(b)), m(*m.inputs(later))
    assert torch.equal(out[:, :4], changed[:, :4])
    assert not torch.allclose(out[:, 4:], changed[:, 4:])  # the later steps do read them


@day_models
def test_an_absent_cell_is_never_read(cls):
    m, b = model(cls), day_batch()
    noisy = dict(b, x=b["x"] + torch.randn(B, T, N, F) * ~b["mask"][..., None])
    noisy["x"][~b["mask"]] = float("nan")  # NaN too: what a store's absent row would never hold, but it is not read
    with torch.no_grad():
        assert torch.equal(m(*m.inputs(b)), m(*m.inputs(noisy)))
        dropped = dict(b, mask=b["mask"].clone())
        i = b["mask"][0, 1].nonzero()[0, 0]
        dropped["mask"][0, 1, i] = False  # one instrument fewer at step 1
        others = torch.arange(N) != i
        before, after = m(*m.inputs(b))[0, 1, others], m(*m.inputs(dropped))[0, 1, others]
        if cls is Axial:
            assert not torch.allclose(before, after)  # the others attended to it
        else:
            torch.testing.assert_close(before, after)  # each instrument's GRU reads its own cells only


def test_the_r2_loss_is_one_minus_r2_score():
    y, pred, w = [1.0, -2.0, 0.5, 3.0], [0.5, -1.0, 0.0, 2.0], [1.0, 2.0, 0.5, 1.0]
    # Σ w (y - p)² = .25 + 2 + .125 + 1 = 3.375; Σ w y² = 1 + 8 + .125 + 9 = 18.125
    got = r2_loss(torch.tensor(pred)[:, None], torch.tensor(y)[:, None], torch.tensor(w))
    assert got.item() == pytest.approx(1 - r2_score(y, pred, w)) == pytest.approx(3.375 / 18.125)
    two = r2_loss(torch.tensor([pred, pred]).T, torch.tensor([y, [0.0] * 4]).T, torch.tensor(w))
    assert two.item() == pytest.approx((3.375 / 18.125 + 1) / 2)  # a target with Σ w y² = 0 counts 1 (R² 0)


@day_models
def test_the_losses_read_only_present_cells(cls):
    b = day_batch()
    m = model(cls)
    m2 = model(cls, loss="r2")
    with torch.no_grad():
        out, rows = m.logits(b), m.rows(b)
        w = rows["sample_weight"]
        mse = ((out - rows["y"]) ** 2).mean(-1).mul(w).sum() / w.sum()
        assert m.losses(b) == {"mse": pytest.approx(mse)}
        assert m2.losses(b) == {"r2_loss": pytest.approx(r2_loss(out, rows["y"], w))}


def _fit(loss: str, steps: int = 60) -> tuple[float, float]:
    """(first, last) training loss of `steps` Adam steps of Axial on a learnable toy: y = each cell's x summed
    plus the mean of the present cells' first feature at that step (a cross-instrument term)."""
    torch.manual_seed(0)
    b = day_batch(seed=1, present=0.8)
    m = b["mask"][..., None].float()
    cross = (b["x"][..., 0] * b["mask"]).sum(-1) / b["mask"].sum(-1).clamp_min(1)
    b["y"] = (b["x"].sum(-1, keepdim=True) + cross[..., None, None]).expand(B, T, N, K) * m
    net = Axial(n_features=F, n_days=8, hidden=16, layers=1, heads=2, n_targets=K, loss=loss,
                optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    opt = net.configure_optimizers()
    losses = []
    for _ in range(steps):
        loss_ = sum(net.losses(b).values())
        opt.zero_grad()
        loss_.backward()
        opt.step()
        losses.append(loss_.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize("loss", ["mse", "r2"])
def test_a_few_steps_learn_a_toy(loss):
    first, last = _fit(loss)
    assert last < 0.3 * first


def test_bad_settings_are_one_line():
    for kw, message in [({"heads": 3}, "model.heads must be >= 1 and model.hidden a multiple of it, got 8, 3"),
                        ({"layers": 0}, "model.hidden and model.layers must be >= 1, got 8, 0"),
                        ({"dropout": 1.0}, r"model.dropout must be in \[0, 1\), got 1.0"),
                        ({"loss": "mae"}, r"model.loss must be one of \['mse', 'r2'\], got 'mae'"),
                        ({"task": "action"}, "model=axial predicts the responders' values: it needs "
                                             "data.task=regression, got 'action'")]:
        with pytest.raises(UserError, match=f"^{message}$"):
            Axial(F, 1, hidden=8, **kw)


def test_model_axial_config(tmp_path, monkeypatch):
    monkeypatch.setenv("JSMP_ROOT", str(tmp_path))
    m = build(compose_cfg(["model=axial", "model.layers=3", "model.loss=r2"]).model, "model", n_features=4, n_days=3)
    assert type(m) is Axial and len(m.blocks) == 3 and m.blocks[0].gru.hidden_size == 64 and m.loss_kind == "r2"
    assert m.hparams["heads"] == 4 and "optimizer" not in m.hparams
    opt = m.configure_optimizers()
    assert type(opt) is torch.optim.Adam and opt.defaults["lr"] == 1e-3
    exp = compose_cfg(["experiment=rtmdf_axial"])
    assert exp.model._target_ == "jsmp.models.axial.Axial" and exp.data.task == "regression"


@day_models
def test_stepping_through_a_day_equals_forward_on_it(cls):
    """step, one time step at a time from initial_state, gives forward()'s outputs (float32 rounding), with
    instruments absent at some steps, one entering mid-day (from a learned h0), a step with none present, one with
    all present and NaN in absent cells."""
    m, b = model(cls), day_batch(seed=4)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("h0"):
                p.normal_()
    mask = b["mask"].clone()
    mask[0, :3, 4] = False  # instrument 4 enters mid-day
    mask[0, 3:, 4] = True
    mask[1, 0] = True
    x = b["x"].masked_fill(~mask[..., None], float("nan"))
    with torch.no_grad():
        want = m(x, b["time"], mask)
        for d in range(B):
            state = m.initial_state(N)
            assert state.shape == (2, N, 8)
            for t in range(T):
                out, state = m.step(x[d, t], b["time"][d, t], mask[d, t], state)
                torch.testing.assert_close(out, want[d, t], atol=1e-5, rtol=1e-5)


def test_a_trained_day_sample_run_records_it_and_is_served_and_scored(train_app, tiny_rtmdf_store, tmp_path):
    """preprocess.json says `day` and holds the time grid; `python -m jsmp.predict` serves the run per time_id
    (jsmp.predict.days); `jsmp eval` scores its validation rows as training logged them."""
    import json

    from conftest import run_main
    from jsmp.evaluate.cli import main as eval_main
    from jsmp.inputs.spec import InputSpec
    from jsmp.predict.cli import main as predict_main
    from jsmp.store.store import Store

    p = train_app("experiment=rtmdf_axial", f"data.store={tiny_rtmdf_store}", "trainer.max_epochs=1", "logger=none",
                  "model.hidden=8", "model.layers=1", "model.heads=2")
    assert p.returncode == 0, p.stderr[-2000:]
    run = tmp_path / "run"
    spec = InputSpec.load(run / "preprocess.json")
    assert spec.day and spec.time_ids == list(range(8))
    argv = ["--run", str(run), "--data", str(tiny_rtmdf_store), "--out", str(tmp_path / "s.csv")]
    r = run_main(predict_main, argv)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((tmp_path / "s.csv").read_text().splitlines()) == Store(tiny_rtmdf_store).n_rows + 1  # header, a line a row
    r = run_main(eval_main, ["--run", str(run), "--out", str(tmp_path / "eval")])
    assert r.returncode == 0, r.stderr[-2000:]
    scored = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert scored["rows"] == 240 and scored["r2"] == pytest.approx(scored["logged_val_r2"]["value"], abs=1e-6)
