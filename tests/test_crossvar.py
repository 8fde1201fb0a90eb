import numpy as np
import pytest

from pairclass.crossvar import GroupStats, cross_ratio, cross_ratio_from_stats, cross_variance, top_k_dims


def brute_force_xvar(A, B):
    diff = A[:, None, :] - B[None, :, :]
    return (diff**2).sum(axis=(0, 1)) / (2 * len(A) * len(B))


@pytest.mark.parametrize("seed", range(5))
def test_fast_cross_variance_equals_definition(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(rng.normal(), rng.uniform(0.1, 2), size=(rng.integers(2, 40), 7))
    B = rng.normal(rng.normal(), rng.uniform(0.1, 2), size=(rng.integers(2, 40), 7))
    np.testing.assert_allclose(cross_variance(A, B), brute_force_xvar(A, B), rtol=1e-10)


def test_identical_distributions_give_ratio_exactly_one():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(50, 9))
    assert (cross_ratio(A, A.copy()) == 1.0).all()
    # Same values in another order are the same distribution.
    assert (cross_ratio(A, A[::-1]) == 1.0).all()


def test_ratio_grows_with_separation():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(200, 1))
    ratios = [cross_ratio(A, A + shift)[0] for shift in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert np.all(np.diff(ratios) > 0)
    assert ratios[0] == 1.0


def test_constant_dimensions():
    A = np.array([[1.0, 2.0], [1.0, 2.0]])
    B = np.array([[1.0, 3.0], [1.0, 3.0]])
    assert cross_ratio(A, B).tolist() == [1.0, np.inf]


def test_merged_batch_stats_equal_one_shot():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 6)).astype(np.float32)
    keys = rng.integers(0, 9, size=500) * 7
    whole = GroupStats.from_rows(X, keys)
    merged = GroupStats.empty(6)
    for part in np.array_split(np.arange(500), [40, 41, 300]):
        merged = merged + GroupStats.from_rows(X[part], keys[part])
    np.testing.assert_array_equal(merged.keys, whole.keys)
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.sum, whole.sum, rtol=1e-5)
    np.testing.assert_allclose(merged.sumsq, whole.sumsq, rtol=1e-5)
    for key in np.unique(keys):
        rows = X[keys == key].astype(np.float64)
        i = np.searchsorted(whole.keys, key)
        np.testing.assert_allclose(whole.sum[i], rows.sum(0), rtol=1e-5)
        np.testing.assert_allclose(whole.sumsq[i], (rows**2).sum(0), rtol=1e-5)


def test_many_groups_path_matches_few_groups_path(monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    keys = rng.integers(0, 150, size=300)
    onehot = GroupStats.from_rows(X, keys)
    monkeypatch.setattr("pairclass.crossvar._ONEHOT_LIMIT", 0)
    sorted_path = GroupStats.from_rows(X, keys)
    np.testing.assert_array_equal(onehot.count, sorted_path.count)
    np.testing.assert_allclose(onehot.sum, sorted_path.sum)
    np.testing.assert_allclose(onehot.sumsq, sorted_path.sumsq)


def test_lookup_missing_keys_are_zero():
    stats = GroupStats.from_rows(np.ones((3, 2)), np.array([5, 5, 9]))
    count, s, _ = stats.lookup(np.array([9, 4, 5, 100]))
    assert count.tolist() == [1, 0, 2, 0]
    assert s.tolist() == [[1, 1], [0, 0], [2, 2], [0, 0]]


def test_ratio_from_stats_matches_direct():
    rng = np.random.default_rng(4)
    A = rng.normal(0, 1, size=(30, 5))
    B = rng.normal(1, 2, size=(20, 5))
    a = GroupStats.from_rows(A, np.zeros(30))
    b = GroupStats.from_rows(B, np.zeros(20))
    r = cross_ratio_from_stats(a.count, a.sum, a.sumsq, b.count, b.sum, b.sumsq)
    np.testing.assert_allclose(r[0], cross_ratio(A, B), rtol=1e-9)


def test_top_k_dims_picks_largest():
    rng = np.random.default_rng(5)
    r = rng.random((4, 20))
    dims = top_k_dims(r, 5)
    for row, d in zip(r, dims):
        assert set(d) == set(np.argsort(row)[-5:])
        assert (np.diff(d) > 0).all()
