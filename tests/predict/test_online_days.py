"""Online learning of a day-sample run (jsmp.predict.online.DayLearner, served by jsmp.predict.days.DayMember): at a
date's first time step it fine-tunes on the previous date's served day sample labelled by the lags, and on nothing of
the current date; reproducible bit for bit; a non-finite fine-tune is undone."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_online import by_date, cheating_lags, replay_cli, weights

from conftest import train_in_process
from jsmp.data.synthetic_rtmdf import RtmdfSpec, write_parquet
from jsmp.predict.online import DayLearner, OnlineConfig
from jsmp.predict.predictor import Predictor

FAST = OnlineConfig(steps=3, lr=1e-2)
TARGETS = ["responder_6", "responder_7", "responder_8"]  # experiment=rtmdf_axial's


@pytest.fixture(scope="session")
def axial_run(tiny_rtmdf_store, tmp_path_factory):
    """experiment=rtmdf_axial (small, with dropout) trained 1 epoch on the tiny 2024 store (in this process)."""
    run = tmp_path_factory.getbasetemp() / "rtmdf-runs" / "axial-online"
    if not (run / "checkpoints").is_dir():
        p = train_in_process([f"hydra.run.dir={run}", "experiment=rtmdf_axial", f"data.store={tiny_rtmdf_store}",
                              "trainer.max_epochs=1", "logger=none", "model.hidden=8", "model.layers=1", "model.heads=2",
                              "model.dropout=0.2"], {"JSMP_ROOT": str(run.parent)})
        assert p.returncode == 0, p.stderr[-3000:]
    return run


def spy(p: Predictor) -> tuple[list[dict], dict]:
    """Record every batch the model trains on, and the filled inputs served per (date, time_id, symbol_id)."""
    member, seen, served, now = p.members[0], [], {}, {}
    losses, inputs, predict = member.model.losses, member.fill.inputs, member.predict

    def record_losses(batch):
        seen.append({k: v.clone() for k, v in batch.items()})
        return losses(batch)

    def record_predict(date, time_id, *args):
        now["time_id"] = int(time_id[0])
        return predict(date, time_id, *args)

    def record_inputs(date, symbol, x):
        out = inputs(date, symbol, x)
        served.update(((date, now["time_id"], int(s)), r.copy()) for s, r in zip(symbol, out["x"]))
        return out

    member.model.losses, member.fill.inputs, member.predict = record_losses, record_inputs, record_predict
    return seen, served


def test_the_fine_tune_is_the_previous_dates_served_day_sample_with_its_answers(axial_run, tiny_rtmdf_store):
    p = Predictor(axial_run, online=FAST)
    seen, served = spy(p)
    learner, days = p.members[0].learner, by_date(tiny_rtmdf_store)
    d0, d1, d2 = sorted(days)[:3]
    for k, date in enumerate((d0, d1, d2)):
        before = weights(p)
        for j, (test, lags) in enumerate(days[date]):
            p.predict_batch(test, lags if k == 2 else None)  # answers only reach the 3rd date
            if j == 0:
                assert (not torch.equal(before, weights(p))) == (k == 2)
        assert not seen if k < 2 else len(seen) == learner.steps_taken == FAST.steps
    batch = seen[0]
    assert all(torch.equal(b[key], batch[key]) for b in seen for key in batch)  # every step: the one day sample
    yesterday = pd.concat([t for t, _ in days[d1]])
    symbols, T = np.unique(yesterday.symbol_id), len(p.members[0].time_ids)
    assert batch["x"].shape[:3] == (1, T, len(symbols)) and batch["y"].shape == (1, T, len(symbols), len(TARGETS))
    assert batch["day"].tolist() == [d1] and torch.equal(batch["time"][0], torch.arange(T) / T)
    t, n = yesterday.time_id.to_numpy(), np.searchsorted(symbols, yesterday.symbol_id)  # time_ids 0..T-1 are the ranks
    mask = np.zeros((T, len(symbols)), bool)
    mask[t, n] = True
    assert np.array_equal(batch["mask"][0].numpy(), mask)  # exactly the cells served on d1
    x = batch["x"][0].numpy()
    np.testing.assert_array_equal(x[t, n], np.stack([served[(d1, a, b)] for a, b in zip(t, yesterday.symbol_id)]))
    assert not x[~mask].any()
    answers = days[d2][0][1].set_index(["time_id", "symbol_id"]).loc[list(zip(t, yesterday.symbol_id))]
    y = answers[[f"{c}_lag_1" for c in TARGETS]].to_numpy(np.float32)
    ok = np.isfinite(y).all(axis=1)
    np.testing.assert_array_equal(batch["y"][0].numpy()[t, n], np.where(ok[:, None], y, 0))
    np.testing.assert_array_equal(batch["weight"][0].numpy()[t, n], np.where(ok, yesterday.weight, 0))
    # the preset trains unweighted (data.sample_weight=null, recorded in preprocess.json): so does the fine-tune
    assert p.members[0].prep.sample_weight is None
    np.testing.assert_array_equal(batch["sample_weight"][0].numpy()[t, n], ok.astype(np.float32))
    assert {tuple(r) for r in learner.trained.tolist()} == {(d1, a, b) for a, b, o in zip(t, yesterday.symbol_id, ok) if o}


def test_current_answers_planted_as_lags_or_in_test_df_cannot_be_used(axial_run, tiny_rtmdf_store):
    """A cheating lags_df holds the CURRENT date's responders (and an instrument first seen today): the learner has
    only yesterday's served cells to put them on. Responders planted in today's test_df change nothing served."""
    days = by_date(tiny_rtmdf_store)
    d1, d2, d3 = sorted(days)[1:4]
    p = Predictor(axial_run, online=FAST)
    seen, _ = spy(p)
    learner = p.members[0].learner
    for test, _ in days[d1]:
        p.predict_batch(test)
    p.predict_batch(days[d2][0][0], cheating_lags(days, d2))
    yesterday = pd.concat([t for t, _ in days[d1]])
    served_d1 = {(d1, t, s) for t, s in zip(yesterday.time_id, yesterday.symbol_id)}
    trained = {tuple(k) for k in learner.trained.tolist()}
    assert trained and trained <= served_d1 and all(k[2] != 99 for k in trained)
    assert seen and seen[0]["x"].shape[2] == yesterday.symbol_id.nunique()  # no cell of an instrument new today
    assert learner.kept_date == d2 and len(learner.kept) == 1  # what it holds now: today's first step

    def serve(plant: bool) -> np.ndarray:
        p = Predictor(axial_run, online=FAST)
        out = []
        for date in (d1, d2, d3):
            for test, lags in days[date]:
                test = test.assign(**{f"responder_{k}": np.float32(1e6) for k in range(9)}) if plant else test
                out.append(p.predict_batch(test, lags).responder_6.to_numpy())
        assert p.members[0].learner.steps_taken == FAST.steps
        return np.concatenate(out)

    np.testing.assert_array_equal(serve(plant=True), serve(plant=False))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 2024 test source of 4 dates on the tiny store's time grid: train.parquet/ and lags.parquet."""
    d = write_parquet(RtmdfSpec(days=4, times=8, symbols=6, seed=5), tmp_path_factory.mktemp("online-days") / "synth",
                      partitions=1)
    return d / "train.parquet", d / "lags.parquet"


def test_replays_are_identical_and_the_fine_tune_changes_the_next_dates_answers(axial_run, source, tmp_path, capsys):
    replay_cli(axial_run, source, tmp_path / "frozen.csv")
    torch.manual_seed(1)  # torch's global generator, where dropout drew from before
    line = replay_cli(axial_run, source, tmp_path / "a.csv", "--online-learning", "--online-lr", "1e-2", capsys=capsys)
    assert line.endswith("; online learning: rolled back on 0 dates (non-finite), budget 30 s hit on 0 dates)")
    torch.manual_seed(2)
    replay_cli(axial_run, source, tmp_path / "b.csv", "--online-learning", "--online-lr", "1e-2")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    date = pd.read_parquet(source[0]).date_id.to_numpy()
    online, frozen = (pd.read_csv(tmp_path / f).responder_6.to_numpy() for f in ("a.csv", "frozen.csv"))
    np.testing.assert_array_equal(online[date == 0], frozen[date == 0])  # nothing learnt before the 2nd date
    assert (online[date > 0] != frozen[date > 0]).mean() > 0.9


def test_a_fine_tune_made_non_finite_is_undone_and_the_budget_stops_one(axial_run, tiny_rtmdf_store, capsys):
    p = Predictor(axial_run, online=FAST)
    learner, days = p.members[0].learner, by_date(tiny_rtmdf_store)
    d0, d1, d2, d3 = sorted(days)[:4]
    for date in (d0, d1):
        for test, lags in days[date]:
            p.predict_batch(test, lags)
    good = weights(p)
    moments = [t.clone() for s in learner.optimizer.state.values() for t in s.values()]
    assert learner.steps_taken == FAST.steps and moments
    for g in learner.optimizer.param_groups:
        g["lr"] = 1e30  # past what OnlineConfig accepts
    capsys.readouterr()
    preds = [p.predict_batch(test, lags).responder_6.to_numpy() for test, lags in days[d2]]
    assert learner.rolled_back == [d2] and torch.equal(weights(p), good) and np.isfinite(np.concatenate(preds)).all()
    assert all(torch.equal(a, b) for a, b in zip((t for s in learner.optimizer.state.values() for t in s.values()),
                                                 moments, strict=True))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: online learning, date {d2}: the fine-tune on date {d1}'s "
                                               f"answers gave a non-finite ")
    for g in learner.optimizer.param_groups:
        g["lr"] = FAST.lr
    learner.cfg = OnlineConfig(steps=3, lr=FAST.lr, budget_s=1e-9)  # every step takes longer than 1 ns
    p.predict_batch(*days[d3][0])
    assert learner.budget_hit == [d3] and learner.steps_taken == 1 and not torch.equal(weights(p), good)


def test_the_fine_tunes_loss_weight_is_the_runs_data_sample_weight(axial_run):
    model = Predictor(axial_run).members[0].model
    weight, y = np.array([2.0, 0.5], np.float32), np.array([[1.0, -5.0], [0.5, 0.25]], np.float32)
    expected = {"weight": [2.0, 0.5], None: [1.0, 1.0], "abs_resp_mean": [3.0, 0.375]}
    for name, want in expected.items():
        learner = DayLearner(model, TARGETS, FAST, times=4, sample_weight=name)
        np.testing.assert_array_equal(learner.loss_weight(weight, y), np.array(want, np.float32))
