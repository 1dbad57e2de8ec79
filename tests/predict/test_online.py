"""Online learning while serving a 2024 run (jsmp.predict.online): it trains only after a date's answers
arrive, only on rows served on the previous date, never on anything served later."""

import io

import numpy as np
import pandas as pd
import pytest
import torch
from test_grouped import RtmdfRuns, time_steps

from conftest import run_main, train_in_process
from jsmp.data.synthetic_rtmdf import RtmdfSpec, write_parquet
from jsmp.errors import UserError
from jsmp.predict import online
from jsmp.predict.cli import main
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


def cheating_lags(days: dict, date: int) -> pd.DataFrame:
    """A lags_df for `date` holding that date's OWN responders (1000 + k, a leak) for each of its rows, and a
    row of an instrument (99) never served."""
    today = pd.concat([t for t, _ in days[date]])
    cheat = pd.DataFrame({"date_id": today.date_id, "time_id": today.time_id, "symbol_id": today.symbol_id,
                          **{f"responder_{k}_lag_1": np.float32(1000.0 + k) for k in range(9)}})
    newcomer = pd.DataFrame({"date_id": date, "time_id": 0, "symbol_id": 99,
                             **{f"responder_{k}_lag_1": 1.0 for k in range(9)}}, index=[0])
    return pd.concat([cheat, newcomer])


def test_current_answers_planted_as_lags_cannot_be_used(online_runs, tiny_rtmdf_store):
    """A cheating lags_df holds the CURRENT date's responders (and rows of an instrument first seen today):
    the learner has only the previous date's served rows to put them on, so no row of today trains."""
    p = Predictor(online_runs["mlp"], online=FAST)
    learner = p.members[0].learner
    days = by_date(tiny_rtmdf_store)
    d1, d2 = sorted(days)[1:3]
    for test, _ in days[d1]:
        p.predict_batch(test)
    p.predict_batch(days[d2][0][0], cheating_lags(days, d2))
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


@pytest.mark.parametrize("field, value, expected", [
    ("lr", 0, "a learning rate in (0, 1], e.g. 5e-5"),
    ("lr", float("nan"), "a learning rate in (0, 1], e.g. 5e-5"),
    ("lr", 1e30, "a learning rate in (0, 1], e.g. 5e-5"),
    ("steps", True, "an integer in 0..1000 (optimizer steps per date)"),
    ("budget_s", float("inf"), "a finite number of seconds > 0, e.g. 30"),
    ("max_rows", 0, "an integer in 1..100000 (rows kept per date)"),
    ("batch_size", 1, "an integer in 2..100000 (batch norm trains on 2 rows or more)"),
    ("seed", -1, "an integer in 0..2**63-1"),
])
def test_online_config_is_checked(field, value, expected):
    with pytest.raises(UserError) as e:
        OnlineConfig(**{field: value})
    assert str(e.value) == f"online learning: {field} {value!r}: expected {expected}"
    OnlineConfig(steps=0, lr=1, budget_s=1e-3, max_rows=100_000, batch_size=2, seed=2**63 - 1)  # the bounds themselves pass


# -- reproducible, and never non-finite: a run with dropout (the MLP preset), replayed as a user does

@pytest.fixture(scope="session")
def dropout_run(tiny_rtmdf_store, tmp_path_factory):
    """experiment=rtmdf_mlp (dropout 0.3, batch norm) trained 1 epoch on the tiny 2024 store (in this process)."""
    run = tmp_path_factory.getbasetemp() / "rtmdf-runs" / "mlp-dropout"
    if not (run / "checkpoints").is_dir():
        p = train_in_process([f"hydra.run.dir={run}", "experiment=rtmdf_mlp", f"data.store={tiny_rtmdf_store}",
                              "trainer.max_epochs=1", "logger=none"], {"JSMP_ROOT": str(run.parent)})
        assert p.returncode == 0, p.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 2024 test source (5 dates): its train.parquet/ and lags.parquet."""
    d = write_parquet(RtmdfSpec(days=5, times=8, symbols=6, seed=5), tmp_path_factory.mktemp("online") / "synth", partitions=1)
    return d / "train.parquet", d / "lags.parquet"


def replay_cli(run, source, out, *options, capsys=None) -> str:
    """`python -m jsmp.predict` in process on `source` into `out`; its summary line."""
    assert main(["--run", str(run), "--data", str(source[0]), "--lags", str(source[1]), "--out", str(out), *options]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1] if capsys else ""


@pytest.fixture(scope="module")
def frozen(dropout_run, source, tmp_path_factory):
    """The submission of the run replayed without online learning."""
    out = tmp_path_factory.mktemp("frozen") / "submission.csv"
    replay_cli(dropout_run, source, out)
    return out.read_bytes()


def test_online_replays_are_identical_and_equal_the_api(dropout_run, source, frozen, tmp_path, capsys):
    torch.manual_seed(1)  # torch's global generator, where dropout drew from before
    line = replay_cli(dropout_run, source, tmp_path / "a.csv", "--online-learning", capsys=capsys)
    assert line.endswith("; online learning: rolled back on 0 dates (non-finite), budget 30 s hit on 0 dates)")
    torch.manual_seed(2)
    replay_cli(dropout_run, source, tmp_path / "b.csv", "--online-learning")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # the API, called per time_id with the same frames, gives the same bytes, and leaves torch's generator alone
    test, lags = pd.read_parquet(source[0]).drop(columns="partition_id"), pd.read_parquet(source[1])
    test = test.assign(row_id=np.arange(len(test)), is_scored=True)
    p, lines = Predictor(dropout_run, online=OnlineConfig()), ["row_id,responder_6\n"]
    state = torch.random.get_rng_state()
    for (date, time), df in test.groupby(["date_id", "time_id"], sort=False):
        first = time == test.time_id[test.date_id == date].min()
        pred = p.predict_batch(df.reset_index(drop=True), lags[lags.date_id == date] if first and date > 0 else None)
        lines += [f"{r},{v}\n" for r, v in zip(pred.row_id.tolist(), pred.responder_6.astype(np.float64).tolist())]
    assert torch.equal(state, torch.random.get_rng_state())
    assert "".join(lines).encode() == (tmp_path / "a.csv").read_bytes()
    # and online learning did change the answers
    online, still = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(io.BytesIO(frozen))
    assert (online.responder_6 != still.responder_6).mean() > 0.5


@pytest.mark.parametrize("option, value, expected", [
    *(("--online-lr", v, "a learning rate in (0, 1], e.g. 5e-5") for v in ["1e30", "inf", "nan", "-1e-3", "0", "1e-3x"]),
    *(("--online-steps", v, "an integer in 0..1000 (optimizer steps per date)") for v in ["-1", "1001", "2.5"]),
    *(("--online-budget", v, "a finite number of seconds > 0, e.g. 30") for v in ["0", "-inf", "inf"]),
])
def test_absurd_online_options_are_one_line_and_exit_2(option, value, expected, dropout_run, source, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    with pytest.raises(SystemExit) as e:
        main(["--run", str(dropout_run), "--data", str(source[0]), "--online-learning", option, value, "--out", str(out)])
    assert e.value.code == 2 and capsys.readouterr().err == f"error: {option} {value}: expected {expected}\n"
    assert not out.exists()


def test_a_negative_online_lr_is_checked_not_taken_for_an_option(dropout_run, source, tmp_path):
    out = tmp_path / "submission.csv"
    p = run_main(main, ["--run", str(dropout_run), "--data", str(source[0]), "--online-learning", "--online-lr", "-1e-3",
                        "--out", str(out)])
    assert p.returncode == 2 and p.stderr == "error: --online-lr -1e-3: expected a learning rate in (0, 1], e.g. 5e-5\n"
    assert not out.exists()


def adam_state(learner) -> list[torch.Tensor]:
    return [t.clone() for s in learner.optimizer.state.values() for t in s.values()]


def test_a_fine_tune_made_non_finite_is_undone(dropout_run, tiny_rtmdf_store, capsys):
    p = Predictor(dropout_run, online=FAST)
    learner, days = p.members[0].learner, by_date(tiny_rtmdf_store)
    d0, d1, d2 = sorted(days)[:3]
    for date in (d0, d1):
        for test, lags in days[date]:
            p.predict_batch(test, lags)
    good, moments = weights(p), adam_state(learner)
    assert learner.steps_taken == 3 and moments  # d1's fine-tune went through and left Adam's moments
    for g in learner.optimizer.param_groups:
        g["lr"] = 1e30  # past what OnlineConfig accepts
    capsys.readouterr()
    preds = [p.predict_batch(test, lags).responder_6.to_numpy() for test, lags in days[d2]]
    assert learner.rolled_back == [d2] and learner.steps_taken >= 1
    assert torch.equal(weights(p), good) and all(torch.equal(a, b) for a, b in zip(adam_state(learner), moments, strict=True))
    assert np.isfinite(np.concatenate(preds)).all()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: online learning, date {d2}: the fine-tune on date {d1}'s answers gave a non-finite ")


def test_cli_rolled_back_dates_leave_the_frozen_answers_and_are_counted(dropout_run, source, frozen, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(online.RULES, "lr", (lambda v: True, "anything"))  # let an absurd lr through the check
    replay_cli(dropout_run, source, tmp_path / "s.csv", "--online-learning", "--online-lr", "1e30")
    out, err = capsys.readouterr()
    assert (tmp_path / "s.csv").read_bytes() == frozen  # every fine-tune undone: the frozen model's answers
    assert out.strip().splitlines()[-1].endswith("; online learning: rolled back on 4 dates (non-finite), budget 30 s hit on 0 dates)")
    warned = [w for w in err.splitlines() if w.startswith("warning: online learning")]
    assert warned == [f"warning: online learning, date {d}: the fine-tune on date {d - 1}'s answers gave a non-finite loss (nan) "
                      f"at step 2; restored the model from before it (a smaller lr may help)" for d in range(1, 5)]


def test_cli_counts_the_dates_that_hit_the_budget(dropout_run, source, tmp_path, capsys):
    """A budget of 1 ns: every fine-tune stops after its first step (a step takes far longer), and is counted."""
    line = replay_cli(dropout_run, source, tmp_path / "s.csv", "--online-learning", "--online-steps", "3",
                      "--online-budget", "1e-9", capsys=capsys)
    assert line.endswith("; online learning: rolled back on 0 dates (non-finite), budget 1e-09 s hit on 4 dates)")
