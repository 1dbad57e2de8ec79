import math

import numpy as np
import pytest
import torch

from jsmp.metrics import R2Metric, UtilityMetric, r2_score, utility_from_daily, utility_score


def test_utility_hand_computed():
    # two dates: p = [1*2*1 + 1*(-1)*1, 3*1*1] = [1, 3]
    date = [0, 0, 1, 1]
    weight = [1.0, 1.0, 3.0, 5.0]
    resp = [2.0, -1.0, 1.0, 1.0]
    action = [1, 1, 1, 0]
    t = 4 / math.sqrt(10) * math.sqrt(250 / 2)
    assert t > 6  # clipped
    assert utility_score(date, weight, resp, action) == pytest.approx(6 * 4)


def test_utility_unclipped_and_negative():
    p = np.array([1.0, -0.5, 0.2] + [0.0] * 497)
    t = p.sum() / np.sqrt((p**2).sum()) * np.sqrt(250 / 500)
    assert 0 < t < 6
    assert utility_from_daily(p) == pytest.approx(t * p.sum())
    assert utility_from_daily(-p) == 0.0  # negative t is clipped to 0
    assert utility_from_daily(np.zeros(3)) == 0.0


def test_date_values_need_not_be_contiguous():
    a = utility_score([5, 5, 9], [1, 1, 1], [0.1, 0.2, -0.3], [1, 1, 0])
    b = utility_score([0, 0, 1], [1, 1, 1], [0.1, 0.2, -0.3], [1, 1, 0])
    assert a == b


def test_metric_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    n = 5000
    day = np.sort(rng.integers(3, 40, n))  # days 0-2 never seen: must not count in |i|
    weight = rng.lognormal(size=n) * (rng.random(n) > 0.2)
    resp = rng.normal(0.001, 0.01, n)
    action = (rng.random(n) < 0.6).astype(float)
    m = UtilityMetric(n_days=40)
    for sl in np.array_split(np.arange(n), 7):
        m.update(torch.from_numpy(day[sl]), torch.from_numpy(weight[sl]), torch.from_numpy(resp[sl]),
                 torch.from_numpy(action[sl]))
    u, oracle = m.compute()
    assert float(u) == pytest.approx(utility_score(day, weight, resp, action), rel=1e-9)
    assert float(oracle) == pytest.approx(utility_score(day, weight, resp, resp > 0), rel=1e-9)
    assert float(oracle) >= float(u)


def test_r2_hand_computed():
    # y = [1, -2, .5, 3], pred = [.5, -1, 0, 3], w = [2, 1, 4, .5]
    # Σ w (y - pred)² = 2*.25 + 1*1 + 4*.25 + .5*0 = 2.5;  Σ w y² = 2*1 + 1*4 + 4*.25 + .5*9 = 11.5
    # R² = 1 - 2.5 / 11.5 = 18/23
    y, pred, w = [1.0, -2.0, 0.5, 3.0], [0.5, -1.0, 0.0, 3.0], [2.0, 1.0, 4.0, 0.5]
    assert r2_score(y, pred, w) == pytest.approx(18 / 23, rel=1e-12)
    assert r2_score(y, y, w) == 1.0
    assert r2_score(y, np.zeros(4), w) == 0.0  # zero-mean: predicting 0 scores 0, not the mean
    assert r2_score(y, -np.asarray(y), w) == pytest.approx(-3.0)  # worse than 0: negative
    assert r2_score(y, pred, [0.0, 0.0, 0.0, 0.0]) == 0.0  # nothing to explain: defined as 0
    assert r2_score([], [], []) == 0.0


def test_r2_metric_matches_numpy_over_batches():
    rng = np.random.default_rng(1)
    n = 3000
    y = np.clip(rng.normal(0, 1, n), -5, 5).astype(np.float32)
    pred = (0.3 * y + rng.normal(0, 0.5, n)).astype(np.float32)
    w = rng.lognormal(size=n).astype(np.float32)
    m = R2Metric()
    for sl in np.array_split(np.arange(n), 7):
        m.update(torch.from_numpy(pred[sl]), torch.from_numpy(y[sl]), torch.from_numpy(w[sl]))
    got = m.compute()
    assert got.dtype == torch.float64 and float(got) == pytest.approx(r2_score(y, pred, w), rel=1e-9)
    m.reset()
    with pytest.warns(UserWarning, match="called before the ``update``"):
        assert float(m.compute()) == 0.0  # nothing seen, as r2_score


def test_r2_metric_sums_its_states_across_ranks():
    # under DDP each rank's sums are added (dist_reduce_fx="sum") before compute: merge_state does the same
    rng = np.random.default_rng(2)
    y, pred, w = (torch.from_numpy(rng.normal(size=100)) for _ in range(3))
    ranks = [R2Metric(), R2Metric()]
    ranks[0].update(pred[:30], y[:30], w[:30].abs())
    ranks[1].update(pred[30:], y[30:], w[30:].abs())
    ranks[0].merge_state(ranks[1])
    assert float(ranks[0].compute()) == pytest.approx(r2_score(y, pred, w.abs()), rel=1e-12)
