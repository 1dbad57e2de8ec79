"""Serving a day-sample run (axial, day GRU) per time step (jsmp.predict.days): the outputs equal the day-sample forward."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from test_grouped import time_steps

from jsmp.errors import UserError
from jsmp.inputs.spec import InputSpec
from jsmp.predict.days import day_sample_rows
from jsmp.predict.predictor import Predictor
from jsmp.store.store import Store

AXIAL = ["experiment=rtmdf_axial", "trainer.max_epochs=1", "logger=none", "model.hidden=8", "model.layers=1", "model.heads=2"]
DAY_GRU = ["experiment=rtmdf_gru_day", "trainer.max_epochs=1", "logger=none", "model.hidden=8", "model.layers=2"]


@pytest.fixture
def axial_run(train_app, tiny_rtmdf_store, tmp_path):
    p = train_app(*AXIAL, f"data.store={tiny_rtmdf_store}")
    assert p.returncode == 0, p.stderr[-2000:]
    return tmp_path / "run"


def validation_outputs(run) -> tuple[np.ndarray, np.ndarray]:
    """(store rows, target-0 outputs) of the run's validation rows: model(day samples) of the training
    DataModule's val DayBatches at each row's cell, checked here against the grid read directly."""
    cfg = OmegaConf.load(run / "config.yaml")
    dm = instantiate(cfg.data)
    dm.connect(get_class(cfg.model._target_))
    dm.setup()
    val, store, model = dm.val_set, dm.store, Predictor(run).model
    day, _, pred, _ = day_sample_rows(model, val)
    batch = val[np.arange(len(val))]
    with torch.inference_mode():
        out = model(batch["x"], batch["time"], batch["mask"])[..., 0].numpy()
    rows = val.rows
    b = np.searchsorted(val.days, store.row_day_index()[rows])
    t = np.searchsorted(val.times, np.asarray(store.side("time_id"))[rows])
    n = np.searchsorted(store.group_values, np.asarray(store.side(store.group))[rows])
    assert batch["mask"][b, t, n].all() and int(batch["mask"].sum()) == len(rows)
    np.testing.assert_array_equal(day, store.row_day_index()[rows])
    np.testing.assert_allclose(pred, out[b, t, n], rtol=1e-6, atol=1e-6)
    return rows, pred


@pytest.mark.parametrize("preset", [AXIAL, DAY_GRU], ids=["axial", "day_gru"])
def test_served_outputs_equal_the_day_sample_forward_on_the_validation_dates(preset, train_app, tiny_rtmdf_store, tmp_path):
    """Predictor per time step equals the day-sample forward on the validation rows; `python -m jsmp.predict`
    (the replay) writes exactly the Predictor's outputs."""
    from conftest import run_main
    from jsmp.predict.cli import main as predict_main

    p = train_app(*preset, f"data.store={tiny_rtmdf_store}")
    assert p.returncode == 0, p.stderr[-2000:]
    run = tmp_path / "run"
    spec = InputSpec.load(run / "preprocess.json")
    assert spec.day and spec.time_ids == list(range(8))  # the tiny store's time grid
    rows, expected = validation_outputs(run)
    p = Predictor(run)
    assert p.describe().startswith(f"model {'Axial' if preset is AXIAL else 'DayGRU'} from ")
    served = pd.concat([p.predict_batch(t, lags) for t, lags in time_steps(tiny_rtmdf_store)])
    assert len(served) == Store(tiny_rtmdf_store).n_rows
    got = served.set_index("row_id")["responder_6"].to_numpy()[rows]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.std(expected) > 0  # the comparison is not vacuous
    r = run_main(predict_main, ["--run", str(run), "--data", str(tiny_rtmdf_store), "--out", str(tmp_path / "s.csv")])
    assert r.returncode == 0, r.stderr[-2000:]
    replayed = pd.read_csv(tmp_path / "s.csv").set_index("row_id")["responder_6"]
    np.testing.assert_array_equal(replayed.to_numpy(np.float32), served.set_index("row_id")["responder_6"].to_numpy())


def test_a_time_id_off_the_grid_is_one_line(axial_run, tiny_rtmdf_store):
    test, _ = next(time_steps(tiny_rtmdf_store))
    with pytest.raises(UserError) as e:
        Predictor(axial_run).predict_batch(test.assign(time_id=99))
    assert str(e.value) == (f"test_df: time_id 99 is not in the time grid run {axial_run} was trained on "
                            f"(8 time_ids, 0 to 7)")


def test_the_time_grid_in_preprocess_json(axial_run, tmp_path):
    """time_ids round-trips; a run without it writes preprocess.json as before (no key); a bad grid, or a day run
    without one (trained before it was recorded), is one line."""
    spec = InputSpec.load(axial_run / "preprocess.json")
    no_grid = dataclasses.replace(spec, day=False, time_ids=None)
    no_grid.save(tmp_path / "p.json")
    assert "time_ids" not in json.loads((tmp_path / "p.json").read_text()) and InputSpec.load(tmp_path / "p.json") == no_grid
    state = json.loads((axial_run / "preprocess.json").read_text())
    for bad in ([2, 1], [], [0.5], [True]):
        (tmp_path / "p.json").write_text(json.dumps({**state, "time_ids": bad}))
        with pytest.raises(UserError, match=r"time_ids must be null, or for a day run an ascending non-empty list of integers"):
            InputSpec.load(tmp_path / "p.json")
    del state["time_ids"]
    (axial_run / "preprocess.json").write_text(json.dumps(state))
    with pytest.raises(UserError) as e:
        Predictor(axial_run)
    assert str(e.value) == (f"{axial_run / 'preprocess.json'}: a day-sample run without its time grid (time_ids; "
                            f"trained before serving recorded it): retrain it to serve it")


def test_a_seed_ensemble_of_day_runs_serves_its_members_mean(tiny_rtmdf_store, tmp_path):
    """`train.py -m experiment=rtmdf_axial seed=0,1`: the multirun dir is one Predictor whose output per time step is
    the float32 mean of its members' outputs, each member served as it is alone."""
    from conftest import train_in_process

    p = train_in_process(["-m", f"hydra.sweep.dir={tmp_path / 'multi'}", *AXIAL, f"data.store={tiny_rtmdf_store}", "seed=0,1"],
                         {"JSMP_ROOT": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-2000:]
    members = sorted(d for d in (tmp_path / "multi").iterdir() if d.is_dir())
    ensemble, alone = Predictor(tmp_path / "multi"), [Predictor(m) for m in members]
    assert len(members) == len(ensemble.members) == 2 and ensemble.describe().startswith("ensemble of 2 models averaged: Axial ")
    steps = list(time_steps(tiny_rtmdf_store))[:20]
    got = np.concatenate([ensemble.predict_batch(t, lags)["responder_6"].to_numpy() for t, lags in steps])
    each = [np.concatenate([a.predict_batch(t, lags)["responder_6"].to_numpy() for t, lags in steps]) for a in alone]
    np.testing.assert_array_equal(got, (each[0] + each[1]) / np.float32(2))
    assert not np.array_equal(each[0], each[1])  # two seeds, two models
