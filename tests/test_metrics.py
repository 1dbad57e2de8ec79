import math

import numpy as np
import pytest
import torch

from jsmp.metrics import UtilityMetric, utility_from_daily, utility_score


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
