import numpy as np
import pytest

from jsmp.data.splits import holdout, kept_days
from jsmp.errors import UserError


def test_holdout_is_ordered_with_gap():
    s = holdout(100, frac=1.0, val_frac=0.2, gap_days=5)
    assert s.val.tolist() == list(range(80, 100))
    assert s.train.tolist() == list(range(0, 75))
    assert s.val.min() - s.train.max() == 6  # 5 purged days between


def test_frac_keeps_most_recent_whole_days():
    assert kept_days(500, 0.02).tolist() == list(range(490, 500))
    assert kept_days(500, 0.02, keep="start").tolist() == list(range(10))
    assert kept_days(10, 1e-6).tolist() == [9]  # at least one day
    s = holdout(500, frac=0.5, gap_days=5)
    assert s.train.min() == 250 and s.val.max() == 499


@pytest.mark.parametrize("frac", [0, -0.1, 1.5, float("nan")])
def test_frac_out_of_range(frac):
    with pytest.raises(UserError, match=r"data.frac must be in \(0, 1\]"):
        kept_days(100, frac)


def test_too_few_days_is_a_clear_error():
    with pytest.raises(UserError, match="too few"):
        holdout(500, frac=0.01, gap_days=5)  # 5 days: 1 val + 5 gap


def test_no_overlap_random():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(20, 600))
        s = holdout(n, frac=float(rng.uniform(0.3, 1)), gap_days=int(rng.integers(0, 5)))
        assert s.train.max() < s.val.min()
        assert len(np.intersect1d(s.train, s.val)) == 0
