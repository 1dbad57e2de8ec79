"""InputSpec (jsmp.inputs.spec): version 2 round-trips whole, a version-1 file (as every run before
it wrote) is upgraded, and a bad new key is one line naming the file."""

import json

import pytest

from jsmp.errors import UserError
from jsmp.inputs.spec import TASKS, InputSpec
from jsmp.models.tasks import TASKS as MODEL_TASKS

FEATURES = ["feature_00", "feature_01", "responder_6_lag_1", "responder_7_lag_1"]
V1 = {"features": FEATURES, "fill": "ffill", "fill_value": [0.5, 1.0, 0.0, 0.25],  # as a 2024 run wrote it before
      "window": {"length": 4, "cross_days": True}, "group": "symbol_id", "feature_limit": 1e6}
LAGS = ["responder_6_lag_1", "responder_7_lag_1"]


def spec(**change) -> InputSpec:
    return InputSpec(**{**V1, "targets": ["responder_6", "responder_7"], "task": "regression", "ffill": FEATURES[:2],
                        "lag_features": LAGS, **change})


def test_version_2_round_trips_whole(tmp_path):
    path = tmp_path / "preprocess.json"
    spec().save(path)
    state = json.loads(path.read_text())
    assert next(iter(state)) == "version" and state["version"] == 2
    assert state["targets"] == ["responder_6", "responder_7"] and state["task"] == "regression"
    assert state["lag_features"] == LAGS and state["ffill"] == FEATURES[:2]
    assert InputSpec.load(path) == spec()
    assert spec().store_features == FEATURES[:2]


@pytest.mark.parametrize("fill,ffill", [("ffill", FEATURES[:2]), ("mean", [])])
def test_a_version_1_file_is_upgraded(tmp_path, fill, ffill):
    path = tmp_path / "preprocess.json"
    path.write_text(json.dumps({**V1, "fill": fill}))
    called = []

    def legacy():
        called.append(1)
        return ["responder_6", "responder_7"], "regression", None

    got = InputSpec.load(path, legacy=legacy)
    assert got == spec(fill=fill, ffill=ffill) and got.sample_weight is None and called == [1]
    assert got.lag_features == LAGS and got.version == 2
    with pytest.raises(UserError) as e:
        InputSpec.load(path)
    assert str(e.value).startswith(f"{path}: a version-1 preprocess.json (written before jsmp recorded targets and task)")
    path.write_text(json.dumps(json.loads(path.read_text()) | {"features": FEATURES[:2], "fill_value": [0.5, 1.0]}))
    assert InputSpec.load(path, legacy=legacy).lag_features == []  # a run without lags


def test_a_day_sample_run_says_so_and_earlier_version_2_files_do_not(tmp_path):
    path = tmp_path / "preprocess.json"
    day = spec(window=None, day=True)
    day.save(path)
    assert json.loads(path.read_text())["day"] is True and InputSpec.load(path) == day
    state = json.loads(path.read_text())
    del state["day"]  # as version 2 was first written
    path.write_text(json.dumps(state))
    assert InputSpec.load(path) == spec(window=None) and not InputSpec.load(path).day


def test_the_loss_weight_is_recorded_and_earlier_files_read_as_weighted(tmp_path):
    path = tmp_path / "preprocess.json"
    unweighted = spec(sample_weight=None)
    unweighted.save(path)
    assert json.loads(path.read_text())["sample_weight"] is None and InputSpec.load(path) == unweighted
    assert InputSpec.load(path).sample_weight is None and unweighted == spec()  # equal inputs, whatever the loss weight
    state = json.loads(path.read_text())
    del state["sample_weight"]  # as version 2 was written before it: online learning weighed by `weight` then
    path.write_text(json.dumps(state))
    assert InputSpec.load(path).sample_weight == "weight"


def test_a_version_2_file_does_not_ask_the_run(tmp_path):
    path = tmp_path / "preprocess.json"
    spec().save(path)
    assert InputSpec.load(path, legacy=lambda: pytest.fail("a version-2 file asked for its targets")) == spec()


@pytest.mark.parametrize("change,fragment", [
    ({"version": 3}, "version must be 2 (or absent: version 1), got 3"),
    ({"lag_features": ["responder_6_lag_1"]}, "lag_features must be the trailing features"),
    ({"lag_features": ["feature_00"]}, "lag_features must be the trailing features"),
    ({"lag_features": "responder_6_lag_1"}, "lag_features must be the trailing features"),
    ({"ffill": ["feature_01"]}, "ffill must list the leading features"),
    ({"ffill": FEATURES[:3]}, "ffill must list the leading features, none of them a lag feature"),
    ({"fill": "mean"}, "(none unless fill is 'ffill')"),
    ({"task": "classify"}, "task must be one of ['action', 'regression'], got 'classify'"),
    ({"targets": []}, "targets must be a non-empty list of column names, got []"),
    ({"targets": "responder_6"}, "targets must be a non-empty list of column names"),
    ({"day": "yes"}, "day must be false, or true for a grouped store's run without a window, got 'yes'"),
    ({"day": True}, "day must be false, or true for a grouped store's run without a window, got True"),  # (a window)
    ({"day": True, "window": None, "group": None}, "day must be false, or true for a grouped store's run"),
    ({"sample_weight": "size"}, "sample_weight must be null or one of ['abs_resp_mean', 'weight'], got 'size'"),
])
def test_bad_new_keys_are_one_line(tmp_path, change, fragment):
    path = tmp_path / "preprocess.json"
    spec().save(path)
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    with pytest.raises(UserError) as e:
        InputSpec.load(path)
    message = str(e.value)
    assert message.startswith(f"{path}: not a valid preprocess.json: ") and fragment in message and "\n" not in message


def test_the_tasks_are_the_models_tasks():
    assert set(TASKS) == set(MODEL_TASKS)
