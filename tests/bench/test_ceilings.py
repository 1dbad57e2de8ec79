import math

import numpy as np
import pytest

from jsmp.batches.datamodule import JsmpDataModule
from jsmp.bench import ceilings as bench
from jsmp.data.synthetic import CLIPPED, PHI, SynthSpec, feature_model, iter_days, posterior_mean, row_evidence
from jsmp.errors import UserError
from jsmp.store.store import Store


def _rows(spec):
    days = list(iter_days(spec))
    return np.concatenate([d["x"] for d in days]), np.concatenate([d["ideal"] for d in days])


def _direct_posterior_mean(x, spec, t, window):
    """E[s_t | every exact (not NaN, not clipped) feature of rows t-window+1..t], by the joint
    Gaussian of the window's states (cov PHI**|i-j|) and features (u = k s + N(0, 1))."""
    loadings, scale = (a.astype(np.float64) for a in feature_model(spec))
    noise = np.sqrt(1 - loadings**2)
    steps = np.arange(window)
    prior = PHI ** np.abs(steps[:, None] - steps[None, :])
    h, u = [], []
    for i, row in enumerate(x[t - window + 1 : t + 1]):
        for j in np.flatnonzero(~np.isnan(row) & (loadings != 0)):
            h.append(np.eye(window)[i] * loadings[j] / noise[j])
            u.append(row[j] / (scale[j] * noise[j]))
    h, u = np.array(h), np.array(u)
    gain = prior @ h.T @ np.linalg.inv(h @ prior @ h.T + np.eye(len(u)))
    return (gain @ u)[-1]


@pytest.mark.parametrize("window", [1, 4])
def test_rules_are_the_sign_of_the_direct_posterior(window):
    spec = SynthSpec(days=3, rows_per_day=60, seed=5)
    x, _ = _rows(spec)
    exact = [t for t in range(window, len(x)) if not any((x[t - window + 1 : t + 1, f] == np.float32(c)).any()
                                                        for f, c in CLIPPED.items())]
    targets = exact[:: max(1, len(exact) // 6)][:6]
    mean = posterior_mean(*row_evidence(x, spec), window)
    for t in targets:
        direct = _direct_posterior_mean(x, spec, t, window)
        assert mean[t] == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert len({bool(mean[t] > 0) for t in targets}) == 2  # both actions among the rows checked


def test_a_window_holds_at_least_one_row():
    with pytest.raises(UserError, match="window must hold >= 1 row, got 0"):
        posterior_mean(np.zeros(3), np.zeros(3), 0)


def test_a_clipped_feature_counts_by_its_censored_likelihood():
    """b and p of a clipped value are the slope and curvature at s=0 of log P(value beyond the clip | s)."""
    spec = SynthSpec(days=2, rows_per_day=400, seed=1)
    x, _ = _rows(spec)
    f = next(f for f in CLIPPED if feature_model(spec)[0][f] != 0)
    row = x[np.flatnonzero(x[:, f] == np.float32(CLIPPED[f]))[:1]]
    gone = row.copy()
    gone[:, f] = np.nan
    (b, p), (b0, p0) = row_evidence(row, spec), row_evidence(gone, spec)
    loadings, scale = (a.astype(np.float64) for a in feature_model(spec))
    noise = math.sqrt(1 - loadings[f] ** 2)
    a, k = CLIPPED[f] / (scale[f] * noise), loadings[f] / noise

    def log_lik(s):  # log P(u beyond a | s), u = k s + N(0, 1); features 3 and 41 clip below, 64 above
        z = (a - k * s) if CLIPPED[f] < 0 else (k * s - a)
        return math.log(0.5 * math.erfc(-z / math.sqrt(2)))

    e = 1e-3
    assert b[0] - b0[0] == pytest.approx((log_lik(e) - log_lik(-e)) / (2 * e), rel=1e-5)
    assert p[0] - p0[0] == pytest.approx(-(log_lik(e) - 2 * log_lik(0) + log_lik(-e)) / e**2, rel=1e-3)


def test_ceilings_are_ordered():
    c = bench.ceilings(SynthSpec(days=120, rows_per_day=400, seed=0), window=32, val_frac=0.5)
    assert 0 < c["row rule"] < c["window rule"] < c["ideal"] < c["oracle"]
    assert c["days"] == 60


def test_the_ideal_is_the_recipes_val_utility_ideal(tiny_store):
    data = JsmpDataModule(store=str(tiny_store), verify=False)
    data.setup()
    c = bench.ceilings(SynthSpec(**{k: Store(tiny_store).manifest["source"][k] for k in ("days", "rows_per_day", "seed")}))
    assert c["rows"] == len(data.val_set.rows)
    assert c["ideal"] == pytest.approx(data.reference_metrics()["val/utility_ideal"], rel=1e-12)


def test_command_prints_each_ceiling_against_the_ideal(capsys):
    assert bench.main(["--days", "40", "--rows-per-day", "100", "--window", "8"]) == 0
    out = capsys.readouterr().out
    assert "synthetic-d40-r100-s0" in out and "last 8 rows" in out
    assert out.count("of the ideal") == 4 and "1.00 of the ideal" in out


def test_rtmdf_command_prints_each_ceiling_with_and_without_lags(capsys):
    from jsmp.data.synthetic_rtmdf import RtmdfSpec
    from jsmp.data.synthetic_rtmdf import ceilings as rtmdf_ceilings

    argv = ["--layout", "rtmdf", "--days", "20", "--times", "10", "--symbols", "6", "--market", "0.7", "--seed", "3"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    c = rtmdf_ceilings(RtmdfSpec(days=20, times=10, symbols=6, seed=3, market=0.7))
    assert out.splitlines()[0].startswith(f"rtmdf-d20-t10-n6-s3-market0.7: {c['rows']:,} validation rows")
    for name in ("row", "instrument", "ideal"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name))
        assert line.split()[-3:] == [f"{c[name]:.4f}", f"{c[name + '_lags']:.4f}", f"{c[name] / c['ideal']:.2f}"]
    day = next(ln for ln in out.splitlines() if "each date afresh" in ln)
    assert day.split()[-2:] == [f"{c['day']:.4f}", f"{c['day'] / c['ideal']:.2f}"]
    with pytest.raises(UserError, match=r"^market must be a number in \[0, 1\)"):
        bench.main(["--layout", "rtmdf", "--market", "1.5"])
    with pytest.raises(UserError, match="^--market: only with --layout rtmdf$"):
        bench.main(["--market", "0.5"])
