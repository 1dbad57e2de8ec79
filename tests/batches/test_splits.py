import numpy as np
import pytest

from jsmp.batches.splits import holdout, kept_days
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


def test_purged_folds_first_place_scheme():
    from jsmp.batches.splits import purged_fold

    folds = [purged_fold(500, k, folds=5, gap_days=31) for k in range(5)]
    size = 500 // 6
    assert [f.val[0] for f in folds] == [500 - 5 * size + k * size for k in range(5)]
    assert all(len(f.val) == size for f in folds) and folds[-1].val[-1] == 499
    for f in folds:
        assert f.train[0] == 0 and f.val[0] - f.train[-1] == 32  # expanding window, 31 purged days


def test_no_validation_day_inside_a_training_range_or_its_gap():
    from jsmp.batches.splits import purged_fold

    rng = np.random.default_rng(2)
    for _ in range(100):
        n, k, gap = int(rng.integers(40, 600)), int(rng.integers(2, 7)), int(rng.integers(0, 20))
        frac = float(rng.uniform(0.5, 1))
        try:
            splits = [purged_fold(n, i, folds=k, gap_days=gap, frac=frac) for i in range(k)]
        except UserError:
            continue
        for s in splits:
            assert len(s.train) and len(s.val)
            purged = np.arange(s.train.min(), s.train.max() + gap + 1)  # every training day and the gap after it
            assert not np.isin(s.val, purged).any()
            assert np.all(np.diff(s.train) == 1) and np.all(np.diff(s.val) == 1)
        assert len(np.unique(np.concatenate([s.val for s in splits]))) == sum(len(s.val) for s in splits)


@pytest.mark.parametrize("kw,message", [
    ({"fold": 5}, r"data.fold must be an integer in \[0, 4\]"),
    ({"fold": 0, "folds": 1}, r"data.cv.folds must be an integer >= 2"),
    ({"fold": 0, "gap_days": 40}, r"too few for 5 folds with a 40-day gap"),
])
def test_fold_errors(kw, message):
    from jsmp.batches.splits import purged_fold

    with pytest.raises(UserError, match=message):
        purged_fold(60, **kw)
