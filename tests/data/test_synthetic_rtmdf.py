"""The synthetic 2024-layout generator (jsmp/data/synthetic_rtmdf.py, docs/rtmdf-data.md)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from jsmp.data.ingest import ingest
from jsmp.data.synthetic_rtmdf import (
    CATEGORICAL,
    FEATURES,
    IDEAL_FILE,
    INSTRUMENT,
    LOADING_MAX,
    LOADINGS,
    NAN_START,
    NAN_WHOLE,
    PARTNERS,
    PHI,
    PHI_NIGHT,
    RESPONDER_MODEL,
    RESPONDERS,
    TARGET,
    TRAIN_COLUMNS,
    WEIGHT_SIGMA,
    JointState,
    RtmdfSpec,
    ceilings,
    factor_loadings,
    feature_evidence,
    feature_loadings,
    feature_scales,
    ideal_of,
    iter_dates,
    kalman_means,
    rows_per_date,
    times_of,
    write_parquet,
    write_store,
)
from jsmp.errors import UserError
from jsmp.metrics import r2_score
from jsmp.store.store import Store

SMALL = RtmdfSpec(days=30, times=12, symbols=10, seed=1, market=0.0)  # independent instruments: the per-instrument filter is ideal
TINY = RtmdfSpec(days=6, times=7, symbols=5, seed=2, market=0.0)


def _all(spec: RtmdfSpec) -> dict[str, np.ndarray]:
    days = list(iter_dates(spec))
    return {k: np.concatenate([d[k] for d in days]) for k in days[0]}


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    return _all(SMALL)


def _frame(d: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"date": d["date"], "time_id": d["time_id"], "symbol_id": d["symbol_id"]})


def test_spec_name_and_bounds():
    assert RtmdfSpec().name == "rtmdf-d200-t60-n20-s0-market0.7"  # the default data has a market factor
    assert RtmdfSpec(market=0.0).name == "rtmdf-d200-t60-n20-s0"  # the name of before the factor
    assert RtmdfSpec.real_size() == RtmdfSpec(days=1700, times=968, symbols=39, seed=0)
    with pytest.raises(ValueError, match=r"symbols must be an integer in \[1, 127\], got 128"):
        RtmdfSpec(symbols=128)
    with pytest.raises(ValueError, match="days must be an integer"):
        RtmdfSpec(days=0)
    assert RtmdfSpec(drift=0.0).name == RtmdfSpec(drift=0).name == RtmdfSpec().name  # stationary: the name of before
    assert RtmdfSpec(drift=0.02).name == "rtmdf-d200-t60-n20-s0-drift0.02-market0.7"
    for bad in (-0.1, float("nan"), 2.0, "0.1", True):
        with pytest.raises(ValueError, match=r"drift must be a number in \[0, 1\] \(radians per date\), got "):
            RtmdfSpec(drift=bad)


def test_deterministic_and_seeded():
    a, b, c = _all(TINY), _all(TINY), _all(RtmdfSpec(days=6, times=7, symbols=5, seed=3))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].tobytes() == b[k].tobytes()
    assert not np.array_equal(np.nan_to_num(a["x"][:20]), np.nan_to_num(c["x"][:20]))


def test_rows_ordered_unique_and_counted(small):
    f = _frame(small)
    keys = f.to_numpy()
    assert (np.diff(keys[:, 0]) >= 0).all()
    assert not f.duplicated().any()
    assert f.equals(f.sort_values(["date", "time_id", "symbol_id"]))
    assert np.array_equal(small["ts_id"], np.arange(len(f)))
    assert np.array_equal(np.bincount(small["date"]), rows_per_date(SMALL))
    times = times_of(SMALL)
    assert times[0] == round(12 * 849 / 968) < times[-1] == 12  # fewer time_ids on the early dates
    assert np.array_equal(f.groupby("date").time_id.max().to_numpy() + 1, times)


def test_instruments_enter_and_leave(small):
    f = _frame(small)
    first = f.groupby("symbol_id").first()
    last = f.groupby("symbol_id").last()
    assert ((first.date == 0) & (first.time_id == 0)).sum() >= 5  # there from the start
    assert (first.date > 0).sum() >= 3  # entering on later dates
    assert ((first.time_id > 0) & (first.date > 0)).any()  # one enters in the middle of its first date
    assert (last.date < SMALL.days - 1).any()  # leaving
    # from entry to exit an instrument has a row at every time_id
    times = times_of(SMALL)
    for s, g in f.groupby("symbol_id"):
        d0, t0, d1 = first.date[s], first.time_id[s], last.date[s]
        assert len(g) == times[d0] - t0 + times[d0 + 1: d1 + 1].sum()


def test_features_nan_blocks_and_codes(small):
    x, t, s = small["x"], small["time_id"], small["symbol_id"]
    assert x.shape == (len(t), 79) and x.dtype == np.float32
    times = times_of(SMALL)[small["date"]]
    for feats, share in NAN_START:
        start = t < np.ceil(share * times)
        assert start.any() and np.isnan(x[np.ix_(start, feats)]).all()
    whole, prob = NAN_WHOLE
    blocks = pd.DataFrame({"date": small["date"], "s": s, "nan": np.isnan(x[:, whole[0]])}).groupby(["date", "s"]).nan
    assert (blocks.all() == blocks.any()).all()  # an instrument-date is all missing or none
    assert prob / 4 < blocks.all().mean() < prob * 3
    assert np.isnan(x[:, whole]).all(1).sum() == np.isnan(x[:, whole[0]]).sum()
    grouped = {f for feats, _ in NAN_START for f in feats} | set(whole)
    assert {j for j in range(79) if np.isnan(x[:, j]).any()} == grouped
    for j in CATEGORICAL:
        codes = pd.Series(x[:, j]).groupby(s).nunique()
        assert (codes == 1).all() and np.array_equal(x[:, j], np.round(x[:, j]))


def test_responders_and_weights(small):
    y = np.stack([small[r] for r in RESPONDERS], 1)
    assert y.dtype == np.float32 and np.abs(y).max() <= 5.0
    corr = np.corrcoef(y.T)
    assert (corr[6] > 0.05).all()  # the auxiliary responders share responder_6's signal and noise
    w = small["weight"]
    assert w.dtype == np.float32 and (w > 0).all()
    assert w.max() > 5 * np.median(w)  # heavy-tailed
    within = pd.Series(np.log(w)).groupby(small["symbol_id"]).std()
    assert within.to_numpy() == pytest.approx(WEIGHT_SIGMA[1], rel=0.15)  # log-normal around each instrument's own level


def test_ideal_is_the_causal_filter():
    d = _all(TINY)
    keys = d["date"], d["time_id"], d["symbol_id"]
    base = ideal_of(TINY, d["x"], *keys)
    np.testing.assert_allclose(d["ideal"], base, rtol=1e-5, atol=1e-7)
    r = len(base) // 2
    x = d["x"].copy()
    x[r, list(LOADINGS)] += 3.0
    changed = ideal_of(TINY, x, *keys)
    same_symbol = d["symbol_id"] == d["symbol_id"][r]
    assert np.array_equal(changed[:r], base[:r])  # earlier rows never see a later row
    assert np.array_equal(changed[~same_symbol], base[~same_symbol])  # nor other instruments
    assert changed[r] != base[r] and (changed[r + 1:][same_symbol[r + 1:]] != base[r + 1:][same_symbol[r + 1:]]).all()


def test_ideal_beats_baselines():
    spec = RtmdfSpec(days=60, times=30, symbols=12, seed=4)
    d = _all(spec)
    y, w = d["responder_6"], d["weight"]
    val = d["date"] >= 48
    c = ceilings(spec, val_frac=0.2)
    assert c["rows"] == val.sum()
    assert c["ideal"] == pytest.approx(r2_score(y[val], d["ideal"][val], w[val]))
    x = np.nan_to_num(d["x"])  # a single-row least-squares fit on the first 80% of dates
    x1 = np.c_[x, np.ones(len(x))]
    coef = np.linalg.lstsq(x1[~val] * np.sqrt(w[~val, None]), y[~val] * np.sqrt(w[~val]), rcond=None)[0]
    ols = r2_score(y[val], x1[val] @ coef, w[val])
    assert 0 < c["row"] < c["ideal"] and ols < c["ideal"] > 0.05
    assert abs(c["ideal_lags"] - c["ideal"]) < 0.01  # lags add (almost) nothing here (docs/rtmdf-data.md)
    slope = np.sum(w * y * d["ideal"]) / np.sum(w * d["ideal"] ** 2)
    assert 0.85 < slope < 1.15  # a conditional expectation: y on it has slope 1


DRIFTING = RtmdfSpec(days=60, times=30, symbols=12, seed=4, drift=0.03, market=0.0)


def test_drift_zero_writes_the_same_store(tmp_path):
    a = write_store(RtmdfSpec(days=6, times=7, symbols=5, seed=2, drift=0.0, market=0.0), tmp_path / "a")
    b = write_store(TINY, tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and len(files) > 3
    for f in files:
        if f.name != "manifest.json":
            assert (a / f).read_bytes() == (b / f).read_bytes(), f
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    for m in (ma, mb):
        del m["manifest_crc32"], m["created"]  # the write's time and the checksum over it
    assert ma == mb and "drift" not in ma["source"]
    drifting = Store(write_store(RtmdfSpec(days=6, times=7, symbols=5, seed=2, drift=0.1, market=0.0), tmp_path / "c"))
    assert drifting.manifest["source"]["drift"] == 0.1
    assert drifting.manifest["source"]["checksum"] == "synthetic:rtmdf-d6-t7-n5-s2-drift0.1"


def test_drift_turns_the_loadings():
    base = feature_loadings(DRIFTING, 0)
    assert np.flatnonzero(base).tolist() == sorted(LOADINGS) and base[sorted(LOADINGS)].tolist() == [LOADINGS[j] for j in sorted(LOADINGS)]
    assert np.array_equal(feature_loadings(RtmdfSpec(), 150), base)  # without drift: the same every date
    late = feature_loadings(DRIFTING, 40)  # angle 1.2
    a, partner = np.array(list(LOADINGS.values())), list(PARTNERS.values())
    np.testing.assert_allclose(late[list(LOADINGS)], a * np.cos(1.2))
    np.testing.assert_allclose(late[partner], a * np.sin(1.2))
    np.testing.assert_allclose(late[list(LOADINGS)] ** 2 + late[partner] ** 2, a**2)  # the signal's strength is kept
    assert set(partner).isdisjoint(CATEGORICAL) and set(partner).isdisjoint(LOADINGS)


def test_drift_is_deterministic_and_changes_only_the_features():
    a, b, still = _all(DRIFTING), _all(DRIFTING), _all(RtmdfSpec(days=60, times=30, symbols=12, seed=4, market=0.0))
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    for k in set(a) - {"x", "ideal"}:  # the same draws: keys, weights, z and responders are drift's
        assert a[k].tobytes() == still[k].tobytes(), k
    day0 = a["date"] == 0  # at angle 0 the features are the stationary ones
    assert a["x"][day0].tobytes() == still["x"][day0].tobytes()
    assert not np.array_equal(np.nan_to_num(a["x"][~day0]), np.nan_to_num(still["x"][~day0]))
    keys = a["date"], a["time_id"], a["symbol_id"]
    np.testing.assert_allclose(a["ideal"], ideal_of(DRIFTING, a["x"], *keys), rtol=1e-5, atol=1e-7)


def test_drift_decays_a_frozen_relation_but_not_the_ideal():
    d = _all(DRIFTING)
    y, w, date = d["responder_6"], d["weight"], d["date"]
    keys = date, d["time_id"], d["symbol_id"]
    early = ideal_of(DRIFTING, d["x"], *keys, believed=feature_loadings(DRIFTING, 0))  # the relation of date 0, believed throughout

    def slope(pred, rows):
        return np.sum(w[rows] * y[rows] * pred[rows]) / np.sum(w[rows] * pred[rows] ** 2)

    thirds = [(date >= lo) & (date < lo + 20) for lo in (0, 20, 40)]  # angles 0-0.6, 0.6-1.2, 1.2-1.8
    stale = [r2_score(y[rows], early[rows], w[rows]) for rows in thirds]
    ideal = [r2_score(y[rows], d["ideal"][rows], w[rows]) for rows in thirds]
    assert min(ideal) > 0.06 and stale[0] > 0.9 * ideal[0]  # the ceiling holds; date 0's relation fits early dates
    assert stale[1] < 0.75 * ideal[1] and stale[2] < 0.2 * ideal[2]  # ... and decays on later ones
    assert slope(early, thirds[2]) < 0.6
    assert all(0.8 < slope(d["ideal"], rows) < 1.2 for rows in thirds)  # still E[y | features]: calibrated
    c = ceilings(DRIFTING)
    assert c["ideal"] > 0.05 and c["frozen"] < 0.8 * c["ideal"]  # one fit over the training dates, frozen, loses
    val, mean = date >= 48, np.mean([feature_loadings(DRIFTING, k) for k in range(48)], axis=0)
    assert c["frozen"] == pytest.approx(r2_score(y[val], ideal_of(DRIFTING, d["x"], *keys, believed=mean)[val], w[val]), rel=1e-4)
    still = ceilings(RtmdfSpec(days=60, times=30, symbols=12, seed=4))
    assert still["frozen"] == pytest.approx(still["ideal"], rel=1e-5)


def test_write_parquet_layout_and_lags(tmp_path):
    out = write_parquet(TINY, tmp_path / "rt", partitions=4)
    d = _all(TINY)
    parts = sorted((out / "train.parquet").iterdir())
    assert [p.name for p in parts] == [f"partition_id={k}" for k in range(4)]
    tables = [pq.read_table(p / "part-0.parquet") for p in parts]
    assert all(t.column_names == TRAIN_COLUMNS for t in tables)
    assert [str(tables[0].schema.field(k).type) for k in ("date_id", "time_id", "symbol_id", "feature_00")] == ["int16", "int16", "int8", "float"]
    dates = [set(t["date_id"].to_numpy()) for t in tables]
    assert sorted(set().union(*dates)) == list(range(TINY.days)) and all(max(a) < min(b) for a, b in zip(dates, dates[1:]))
    train = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    np.testing.assert_array_equal(train[FEATURES].to_numpy(), d["x"])
    np.testing.assert_array_equal(train["responder_6"].to_numpy(), d["responder_6"])
    hive = ds.dataset(out / "train.parquet", partitioning="hive").to_table().to_pandas()
    assert len(hive) == len(train)

    lags = pq.read_table(out / "lags.parquet").to_pandas()
    lag_columns = [f"responder_{k}_lag_1" for k in range(9)]
    assert list(lags.columns) == ["date_id", "time_id", "symbol_id", *lag_columns]
    assert lags.date_id.min() == 1 and len(lags) == (train.date_id < TINY.days - 1).sum()
    prev = train.assign(date_id=train.date_id + 1)
    joined = lags.merge(prev, on=["date_id", "time_id", "symbol_id"], how="left", validate="one_to_one")
    for k, c in enumerate(lag_columns):
        np.testing.assert_array_equal(joined[c].to_numpy(), joined[f"responder_{k}"].to_numpy())
    same = lags.merge(train, on=["date_id", "time_id", "symbol_id"])
    assert not np.isclose(same["responder_6_lag_1"], same["responder_6"]).all()  # never the same date's answers

    ideal = pq.read_table(out / IDEAL_FILE).to_pandas()
    assert ideal[["date_id", "time_id", "symbol_id"]].equals(train[["date_id", "time_id", "symbol_id"]])
    np.testing.assert_array_equal(ideal["ideal"].to_numpy(), d["ideal"])


def test_write_parquet_replaces_only_its_own(tmp_path):
    out = tmp_path / "rt"
    write_parquet(TINY, out, partitions=2)
    write_parquet(RtmdfSpec(days=3, times=4, symbols=3), out, partitions=2)  # its own: replaced
    assert len(pq.read_table(out / IDEAL_FILE)) == rows_per_date(RtmdfSpec(days=3, times=4, symbols=3)).sum()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"^--out .*mine: a directory that is not a synth rtmdf directory \(and not empty\)"):
        write_parquet(TINY, other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "rt"]  # no temp left behind
    with pytest.raises(UserError, match="--partitions must be >= 1, got 0"):
        write_parquet(TINY, tmp_path / "x", partitions=0)


def test_store_round_trips_against_parquet(tmp_path):
    store = Store(write_store(TINY, tmp_path / "st", shard_rows=60))
    out = write_parquet(TINY, tmp_path / "rt", partitions=3)
    train = ds.dataset(out / "train.parquet", partitioning="hive").to_table().to_pandas()
    assert store.group == "symbol_id" and tuple(store.time) == ("date", "time_id")
    assert len(store.manifest["shards"]) > 1 and store.manifest["source"]["layout"] == "rtmdf"
    assert store.features == FEATURES and store.n_rows == len(train)
    np.testing.assert_array_equal(store.gather(np.arange(store.n_rows)), train[FEATURES].to_numpy())
    for col, src in (("date", "date_id"), ("time_id", "time_id"), ("symbol_id", "symbol_id"), ("weight", "weight"), *zip(RESPONDERS, RESPONDERS)):
        np.testing.assert_array_equal(np.asarray(store.side(col)), train[src].to_numpy(), err_msg=col)
    np.testing.assert_array_equal(np.asarray(store.side("ideal")), pq.read_table(out / IDEAL_FILE)["ideal"].to_numpy())
    # each instrument's rows, in time order, through the group index
    order, offsets = np.asarray(store.group_order), store.group_offsets
    for k, s in enumerate(store.group_values):
        rows = order[offsets[k]: offsets[k + 1]]
        assert np.array_equal(rows, np.flatnonzero(train.symbol_id.to_numpy() == s))
    # ingesting the Parquet files gives the same store (bar the ideal, which is not in train.parquet)
    ingested = Store(ingest(out / "train.parquet", tmp_path / "ingested")[0])
    assert ingested.group == store.group and ingested.manifest["columns"][:83] == TRAIN_COLUMNS[:83]
    np.testing.assert_array_equal(ingested.gather(np.arange(ingested.n_rows)), store.gather(np.arange(store.n_rows)))
    for col in set(store.manifest["side"]) - {"ideal"}:
        np.testing.assert_array_equal(np.asarray(ingested.side(col)), np.asarray(store.side(col)), err_msg=col)
    np.testing.assert_array_equal(np.asarray(ingested.group_order), order)


def test_synth_rtmdf_cli(tmp_path):
    from conftest import run_data
    from jsmp.store.store import Store

    args = ["synth", "--layout", "rtmdf", "--days", "4", "--times", "5", "--symbols", "4"]
    r = run_data([*args, "--out", str(tmp_path / "rt")])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rt/lags.parquet").is_file() and (tmp_path / "rt/train.parquet/partition_id=3/part-0.parquet").is_file()
    r = run_data([*args, "--store", str(tmp_path / "st")])
    assert r.returncode == 0 and Store(tmp_path / "st").group == "symbol_id"
    r = run_data([*args, "--store", str(tmp_path / "st")])
    assert r.returncode == 0 and "is up to date with rtmdf-d4-t5-n4-s0" in r.stdout
    r = run_data([*args, "--store", str(tmp_path / "mk"), "--market", "0.7", "--sectors", "2"])
    assert r.returncode == 0 and Store(tmp_path / "mk").manifest["source"]["sectors"] == 2 and Store(tmp_path / "mk").has(INSTRUMENT)
    r = run_data([*args, "--store", str(tmp_path / "st"), "--market", "1"])
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: synth --layout rtmdf: market must be a number in [0, 1)")
    r = run_data([*args, "--store", str(tmp_path / "st"), "--rows-per-day", "5"])
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == "error: --rows-per-day: only with --layout jsmp"


def test_drift_from_the_data_config():
    from jsmp.run.dataconfig import RtmdfSyntheticConfig, synth_spec

    assert synth_spec(asdict(RtmdfSyntheticConfig())) == RtmdfSpec()
    assert synth_spec({**asdict(RtmdfSyntheticConfig()), "drift": 0.02}).name == "rtmdf-d200-t60-n20-s0-drift0.02-market0.7"
    with pytest.raises(UserError, match=r"^data.synthetic: drift must be a number in \[0, 1\] \(radians per date\), got -1.0$"):
        synth_spec({"layout": "rtmdf", "drift": -1.0})


MARKET = RtmdfSpec(days=40, times=30, symbols=20, seed=4, market=0.7)
HEAD_TINY_SHA256 = "6806e4415ae6e28597694a12947bc03c1be16ee6092f9ef6fa2f0d5635c683e7"  # TINY's iter_dates at 6e0e906, before `market`


def test_market_zero_is_the_data_of_before(tmp_path):
    import hashlib

    h = hashlib.sha256()
    for day in iter_dates(RtmdfSpec(days=6, times=7, symbols=5, seed=2, market=0.0, sectors=0)):
        for k in sorted(day):
            h.update(k.encode())
            h.update(np.ascontiguousarray(day[k]).tobytes())
    assert h.hexdigest() == HEAD_TINY_SHA256
    assert factor_loadings(TINY) is None and RtmdfSpec(market=0.0).name == "rtmdf-d200-t60-n20-s0"
    store = Store(write_store(TINY, tmp_path / "s"))
    assert not store.has(INSTRUMENT) and not {"market", "sectors"} & set(store.manifest["source"])
    assert RtmdfSpec(market=0.7, sectors=3).name == "rtmdf-d200-t60-n20-s0-market0.7-sectors3"
    for bad, match in (({"market": 1.0}, r"market must be a number in \[0, 1\)"), ({"sectors": 21}, r"sectors must be an integer in \[0, symbols=20\]")):
        with pytest.raises(ValueError, match=match):
            RtmdfSpec(**bad)


def test_factor_loadings():
    lam = factor_loadings(RtmdfSpec(symbols=40, market=0.7, sectors=4))
    assert lam.shape == (40, 5) and np.all(np.linalg.norm(lam, axis=1) <= LOADING_MAX + 1e-12)
    assert 0.5 < lam[:, 0].mean() < 0.8 and (lam[:, 1:] > 0).sum(axis=1).tolist() == [1] * 40
    assert np.flatnonzero(lam[6, 1:]).tolist() == [6 % 4]  # instrument i in sector i % sectors


def test_without_factors_the_ideal_is_the_instrument_filter():
    d = _all(SMALL)
    keys = d["date"], d["time_id"], d["symbol_id"]
    scales = feature_scales(np.random.default_rng([SMALL.seed, 1]))
    b, p = feature_evidence(d["x"], scales, feature_loadings(SMALL, 0))
    joint = JointState(np.zeros((SMALL.symbols, 1)))
    times = times_of(SMALL)
    bounds = np.searchsorted(d["date"], np.arange(SMALL.days + 1))
    together = np.concatenate([joint.run_date(*(a[bounds[k]:bounds[k + 1]] for a in (keys[1], keys[2], b, p)), int(times[k]))
                               for k in range(SMALL.days)])
    np.testing.assert_allclose(together, kalman_means(SMALL, *keys, b, p, joint=False), rtol=1e-10, atol=1e-12)
    c = ceilings(SMALL)
    assert c["ideal"] == pytest.approx(c["instrument"], rel=1e-9) and c["ideal_lags"] == pytest.approx(c["instrument_lags"], rel=1e-9)


def test_with_a_market_looking_across_instruments_pays():
    c = ceilings(MARKET)
    assert c["ideal"] > 1.1 * c["instrument"] and c["instrument"] > 1.5 * c["row"] > 0
    assert c["ideal_lags"] > c["instrument_lags"] > c["row_lags"] > 0
    d = _all(MARKET)
    val = d["date"] >= 32
    y, w = d["responder_6"][val], d["weight"][val]
    assert c["ideal"] == pytest.approx(r2_score(y, d["ideal"][val], w), rel=1e-5)  # the columns the store keeps
    assert c["instrument"] == pytest.approx(r2_score(y, d[INSTRUMENT][val], w), rel=1e-5)
    keys = d["date"], d["time_id"], d["symbol_id"]
    np.testing.assert_allclose(d[INSTRUMENT], ideal_of(MARKET, d["x"], *keys, joint=False), rtol=1e-5, atol=1e-7)


def test_the_joint_filter_is_the_gaussian_posterior():
    """Brute force on 2 instruments (one entering mid-date 1) over 2 dates of 3 steps: the joint Gaussian of every
    z (Cov = rho(steps) * (lam_i . lam_j + own_i² [i = j])) and every seen informative feature (u = k z + N(0, 1))."""
    spec = RtmdfSpec(days=2, times=3, symbols=2, seed=5, market=0.7)
    d = _all(spec)
    keys = d["date"], d["time_id"], d["symbol_id"]
    lam = factor_loadings(spec)
    scales, loadings = feature_scales(np.random.default_rng([spec.seed, 1])), feature_loadings(spec, 0)
    step = np.concatenate([[0], np.cumsum(times_of(spec))])[d["date"]] + d["time_id"]
    phis = np.array([PHI_NIGHT if t == 0 else PHI for n in times_of(spec) for t in range(n)])
    log_rho = np.concatenate([[0], np.cumsum(np.log(phis[1:]))])
    rho = np.exp(-np.abs(log_rho[step][:, None] - log_rho[step][None, :]))
    prior = rho * (lam @ lam.T + np.diag(1 - np.sum(lam**2, axis=1)))[d["symbol_id"][:, None], d["symbol_id"][None, :]]
    informative = np.flatnonzero(loadings)
    k = loadings[informative] / np.sqrt(1 - loadings[informative] ** 2)
    u = d["x"][:, informative].astype(np.float64) / (scales[informative] * np.sqrt(1 - loadings[informative] ** 2))
    rows, feats = np.nonzero(~np.isnan(u))
    brute = np.empty(len(step))
    for r in range(len(step)):
        seen = step[rows] <= step[r]
        h = np.zeros((seen.sum(), len(step)))
        h[np.arange(seen.sum()), rows[seen]] = k[feats[seen]]
        brute[r] = prior[r] @ h.T @ np.linalg.solve(h @ prior @ h.T + np.eye(len(h)), u[rows[seen], feats[seen]])
    b, p = feature_evidence(d["x"], scales, loadings)
    np.testing.assert_allclose(kalman_means(spec, *keys, b, p), brute, rtol=1e-9, atol=1e-12)
    assert np.abs(kalman_means(spec, *keys, b, p, joint=False) - brute).max() > 1e-3  # alone, each instrument knows less


def test_a_run_on_market_data_logs_the_instrument_ceiling(tmp_path):
    from conftest import cfg_for, train_cfg
    from jsmp.run.dataconfig import RtmdfSyntheticConfig, synth_spec

    assert synth_spec({**asdict(RtmdfSyntheticConfig()), "market": 0.7, "sectors": 2}) == RtmdfSpec(market=0.7, sectors=2)
    size = ["data.synthetic.days=20", "data.synthetic.times=10", "data.synthetic.symbols=6", "data.synthetic.market=0.7"]
    train_cfg(cfg_for(tmp_path, "data=rtmdf", *size, "model=mlp", "trainer.max_epochs=1", "logger=none"))
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    store = Store(tmp_path / "data" / "rtmdf-d20-t10-n6-s0-market0.7")
    assert store.manifest["source"]["market"] == 0.7 and store.has(INSTRUMENT)
    c = ceilings(RtmdfSpec(days=20, times=10, symbols=6, market=0.7), val_frac=0.2)
    assert m["val/r2_ideal"] == pytest.approx(c["ideal"], rel=1e-4) and m["val/r2_instrument"] == pytest.approx(c["instrument"], rel=1e-4)


def test_the_day_ceiling_is_the_ideal_filter_started_afresh_each_date():
    spec = RtmdfSpec(days=20, times=12, symbols=6, seed=3)  # market 0.7: the joint filter
    d, c = _all(spec), ceilings(spec)
    b, p = feature_evidence(d["x"], feature_scales(np.random.default_rng([spec.seed, 1])), feature_loadings(spec, 0))
    fresh, val = [], d["date"] >= 16
    for date in range(16, 20):  # the validation dates, each from the stationary prior
        k = d["date"] == date
        fresh.append(kalman_means(replace(spec, days=1), d["date"][k] * 0, d["time_id"][k], d["symbol_id"][k], b[k], p[k]))
    beta = RESPONDER_MODEL[TARGET][0]
    assert c["day"] == pytest.approx(r2_score(d["responder_6"][val], beta * np.concatenate(fresh), d["weight"][val]), rel=1e-9)
    assert c["day"] < c["ideal"]
