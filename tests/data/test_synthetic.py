import numpy as np
import pandas as pd

from jsmp.data import schema
from jsmp.data.synthetic import (
    CLIPPED,
    INFORMATIVE,
    NAN_GROUPS,
    SynthSpec,
    day_sizes,
    feature_model,
    iter_days,
    write_csv,
    write_store,
)
from jsmp.store.store import Store


def _all(spec):
    days = list(iter_days(spec))
    return {k: np.concatenate([d[k] for d in days]) for k in days[0]}


def test_schema_and_domain_shape():
    spec = SynthSpec(days=40, rows_per_day=300, seed=1)
    d = _all(spec)
    n = len(d["date"])
    assert d["x"].shape == (n, 130) and d["x"].dtype == np.float32
    assert set(np.unique(d["x"][:, 0])) == {-1.0, 1.0}
    assert 0.12 < (d["weight"] == 0).mean() < 0.22
    assert d["weight"].max() > 20 * np.median(d["weight"][d["weight"] > 0])  # heavy tail
    assert np.all(np.diff(d["date"]) >= 0) and np.array_equal(d["ts_id"], np.arange(n))
    stds = [d[k].std() for k in ["resp_1", "resp_2", "resp_3", "resp_4"]]
    assert stds == sorted(stds) and stds[3] / stds[0] > 8
    assert np.corrcoef(d["resp"], d["resp_4"])[0, 1] > np.corrcoef(d["resp"], d["resp_1"])[0, 1]
    assert np.abs(d["resp"]).mean() < 0.05
    sizes = day_sizes(spec)
    assert sizes.min() < 0.1 * np.median(sizes)  # a few tiny days


def test_nan_blocks_at_day_start_in_real_groups():
    spec = SynthSpec(days=20, rows_per_day=500, seed=2)
    days = list(iter_days(spec))
    grouped = {f for feats, _, _ in NAN_GROUPS for f in feats}
    for day in days:
        x = day["x"]
        if len(x) < 100:
            continue
        assert np.isnan(x[0, 7]) and np.isnan(x[0, 72])  # block at the day's start
        assert not np.isnan(x[:, 1]).any()
        nan_cols = set(np.where(np.isnan(x).any(0))[0])
        assert nan_cols == grouped


def test_deterministic_and_seeded():
    a, b = _all(SynthSpec(days=8, rows_per_day=50, seed=7)), _all(SynthSpec(days=8, rows_per_day=50, seed=7))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = _all(SynthSpec(days=8, rows_per_day=50, seed=8))
    assert not np.array_equal(np.nan_to_num(a["x"][:10]), np.nan_to_num(c["x"][:10]))


def test_planted_signal_is_weak_but_real():
    d = _all(SynthSpec(days=60, rows_per_day=800, seed=0))
    y = d["resp"] > 0
    ideal_acc = (d["ideal"] == y).mean()
    assert 0.53 < ideal_acc < 0.65  # an achievable edge, never an easy one


def test_feature_model_is_the_generators():
    """The loadings and scales the ceilings' rules use are those the features were drawn with."""
    spec = SynthSpec(days=40, rows_per_day=500, seed=6)
    d = _all(spec)
    loadings, scale = feature_model(spec)
    assert np.count_nonzero(loadings) == INFORMATIVE
    seen = ~np.isnan(d["x"]).any(0)
    seen[[0, *CLIPPED]] = False  # feature_0 is +-1; clipping narrows the others
    plain, informative = seen & (loadings == 0), seen & (loadings != 0)
    assert informative.sum() > 20
    np.testing.assert_allclose(d["x"][:, plain].std(0), scale[plain], rtol=0.03)
    corr = [np.corrcoef(d["x"][:, j], d["ideal"])[0, 1] for j in np.flatnonzero(informative)]
    np.testing.assert_array_equal(np.sign(corr), np.sign(loadings[informative]))


def test_csv_and_store_hold_the_same_data(tmp_path):
    spec = SynthSpec(days=6, rows_per_day=40, seed=4)
    csv = write_csv(spec, tmp_path / "train.csv")
    store = Store(write_store(spec, tmp_path / "store"))
    df = pd.read_csv(csv)
    assert list(df.columns) == schema.TRAIN_COLUMNS
    np.testing.assert_array_equal(df[schema.FEATURE_COLUMNS].to_numpy(np.float32), store.gather(np.arange(store.n_rows)))
    np.testing.assert_array_equal(df["resp"].to_numpy(np.float32), store.side("resp"))
    np.testing.assert_array_equal(np.load(str(csv) + ".ideal.npy"), store.side("ideal"))
    assert df["date"].dtype.kind == "i" and df["ts_id"].dtype.kind == "i"
