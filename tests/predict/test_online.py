"""Online learning while serving a 2024 run (jsmp.predict.online): it trains only after a date's answers
arrive, only on rows served on the previous date, never on anything served later."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_grouped import RtmdfRuns, time_steps

from jsmp.errors import UserError
from jsmp.predict.online import OnlineConfig
from jsmp.predict.predictor import Predictor

FAST = OnlineConfig(steps=3, lr=1e-2, budget_s=30.0, batch_size=64)


@pytest.fixture(scope="session")
def online_runs(tiny_rtmdf_store, tmp_path_factory):
    """test_grouped's trained 2024 runs (the same dir: trained once per session)."""
    return RtmdfRuns(tmp_path_factory.getbasetemp() / "rtmdf-runs", tiny_rtmdf_store)


def weights(p: Predictor) -> torch.Tensor:
    return torch.cat([t.detach().flatten().clone() for t in p.model.parameters()])


def by_date(store):
    """{date: [(test_df, lags_df), ...]} of the store's time steps."""
    out = {}
    for test, lags in time_steps(store):
        out.setdefault(int(test.date_id.iloc[0]), []).append((test, lags))
    return out


def record_training(p: Predictor) -> list[np.ndarray]:
    """The x of every batch the model trains on (its `losses` wrapped)."""
    seen, losses = [], p.model.losses

    def spy(batch):
        seen.append(batch["x"].numpy().copy())
        return losses(batch)

    p.model.losses = spy
    return seen


@pytest.mark.parametrize("name", ["mlp", "gru"])
def test_weights_change_only_once_answers_arrive_and_only_from_earlier_rows(name, online_runs, tiny_rtmdf_store):
    p = Predictor(online_runs[name], online=FAST)
    seen, learner = record_training(p), p.members[0].learner
    served: dict[int, list[np.ndarray]] = {}
    state_inputs = p.members[0].state.inputs

    def record_served(date, symbol, x):
        out = state_inputs(date, symbol, x)
        served.setdefault(date, []).append(out["x"].copy())
        return out

    p.members[0].state.inputs = record_served
    days = by_date(tiny_rtmdf_store)
    dates = sorted(days)[:3]
    for k, date in enumerate(dates):
        before = weights(p)
        for j, (test, lags) in enumerate(days[date]):
            p.predict_batch(test, lags if k == 2 else None)  # answers only reach the 3rd date
            if j == 0:
                changed = not torch.equal(before, weights(p))
                assert changed == (k == 2), (date, changed)
        if k < 2:
            assert not seen
    assert learner.steps_taken == 3 and len(seen) == 3
    # it trained on the rows served on the 2nd date, keyed by that date, and on nothing served later
    assert set(learner.trained[:, 0].tolist()) == {dates[1]}
    earlier = {r.tobytes() for x in served[dates[1]] for r in x}
    later = {r.tobytes() for x in served[dates[2]] for r in x}
    rows = [r.tobytes() for x in seen for r in x]
    assert set(rows) <= earlier and not set(rows) & later


def test_current_answers_planted_as_lags_cannot_be_used(online_runs, tiny_rtmdf_store):
    """A cheating lags_df holds the CURRENT date's responders (and rows of an instrument first seen today):
    the learner has only the previous date's served rows to put them on, so no row of today trains."""
    p = Predictor(online_runs["mlp"], online=FAST)
    learner = p.members[0].learner
    days = by_date(tiny_rtmdf_store)
    d1, d2 = sorted(days)[1:3]
    for test, _ in days[d1]:
        p.predict_batch(test)
    today = pd.concat([t for t, _ in days[d2]])
    cheat = pd.DataFrame({"date_id": today.date_id, "time_id": today.time_id, "symbol_id": today.symbol_id,
                          **{f"responder_{k}_lag_1": np.float32(1000.0 + k) for k in range(9)}})
    newcomer = pd.DataFrame({"date_id": d2, "time_id": 0, "symbol_id": 99, **{f"responder_{k}_lag_1": 1.0 for k in range(9)}},
                            index=[0])
    p.predict_batch(days[d2][0][0], pd.concat([cheat, newcomer]))
    keys = {tuple(k) for k in learner.trained.tolist()}
    yesterday = pd.concat([t for t, _ in days[d1]])
    served_d1 = {(d1, t, s) for t, s in zip(yesterday.time_id, yesterday.symbol_id)}
    assert keys and keys <= served_d1  # only rows served yesterday, keyed by yesterday's date
    assert all(k[0] < d2 for k in keys) and all(k[2] != 99 for k in keys)
    # the kept rows were cleared by the fine-tune: today's first step is all it holds now
    assert learner.n_kept == len(days[d2][0][0])


def test_no_lags_no_training_and_kept_rows_are_bounded(online_runs, tiny_rtmdf_store):
    p = Predictor(online_runs["mlp"], online=OnlineConfig(max_rows=5, steps=2, lr=1e-2))
    learner = p.members[0].learner
    days = by_date(tiny_rtmdf_store)
    d0, d1 = sorted(days)[:2]
    for test, _ in days[d0]:
        p.predict_batch(test)
    assert learner.n_kept <= 10 and len(learner._sample()["weight"]) == 5
    before = weights(p)
    p.predict_batch(*days[d1][0])  # the store's 2nd date: its lags_df labels the rows of d0
    assert len(learner.trained) <= 5 and set(learner.trained[:, 0].tolist()) == {d0}
    assert not torch.equal(before, weights(p)) and not p.model.training


def test_online_config_is_checked():
    with pytest.raises(UserError, match=r"^online learning: lr must be a number > 0, got 0$"):
        OnlineConfig(lr=0)
    with pytest.raises(UserError, match=r"^online learning: max_rows must be an integer >= 1, got 0$"):
        OnlineConfig(max_rows=0)
