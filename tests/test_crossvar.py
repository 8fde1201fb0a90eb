import numpy as np
import pytest

from pairclass.crossvar import GroupStats, cross_ratio, cross_ratio_from_stats, cross_variance, row_norms, top_k_dims


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


def unit_rows(X):
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_merged_batch_stats_equal_one_shot_bit_for_bit():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 6)).astype(np.float32)
    keys = rng.integers(0, 9, size=500) * 7
    whole = GroupStats.from_rows(X, keys)
    merged = GroupStats.empty(6)
    parts = [GroupStats.from_rows(X[p], keys[p]) for p in np.array_split(np.arange(500), [40, 41, 300])]
    for part in parts[::-1]:  # any order
        merged = merged + part
    assert merged.equals(whole)
    np.testing.assert_array_equal(merged.sumsq, whole.sumsq)
    # Item order does not matter either.
    order = rng.permutation(500)
    assert GroupStats.from_rows(X[order], keys[order]).equals(whole)
    # The values are the normalised rows' sums, to the statistics' resolution (2**-20 per value).
    Xn = unit_rows(X)
    for key in np.unique(keys):
        i = np.searchsorted(whole.keys, key)
        rows = Xn[keys == key]
        np.testing.assert_allclose(whole.sum[i], rows.sum(0), atol=len(rows) * 2**-21)
        np.testing.assert_allclose(whole.sumsq[i], (rows**2).sum(0), atol=len(rows) * 2**-20)


def test_sums_of_squares_stay_exact_past_int64():
    # One dimension at 1.0: each row adds 2**40 units to the sum of squares, so 2**23 such rows would
    # overflow a plain int64. Merging doubles the statistics; the wide integers keep every unit.
    stats = GroupStats.from_rows(np.ones((4096, 1), np.float32), np.zeros(4096))
    for _ in range(12):  # 4096 * 2**12 = 2**24 rows
        stats = stats + stats
    assert stats.count.tolist() == [2**24]
    assert stats.sumsq.tolist() == [[2.0**24]] and stats.sum.tolist() == [[2.0**24]]


def test_negative_keys_leave_their_rows_out():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 5))
    keys = rng.integers(-1, 4, size=200)
    X[keys < 0] = 0  # left-out rows may even be all-zero
    assert GroupStats.from_rows(X, keys).equals(GroupStats.from_rows(X[keys >= 0], keys[keys >= 0]))
    assert GroupStats.from_rows(X, np.full(200, -1)).count.size == 0


def test_many_groups_path_matches_few_groups_path(monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    keys = rng.integers(0, 150, size=300)
    onehot = GroupStats.from_rows(X, keys)
    monkeypatch.setattr("pairclass.crossvar._ONEHOT_LIMIT", 0)
    assert GroupStats.from_rows(X, keys).equals(onehot)


def test_lookup_missing_keys_are_zero():
    stats = GroupStats.from_rows(np.ones((3, 2)), np.array([5, 5, 9]))
    count, s, _ = stats.lookup(np.array([9, 4, 5, 100]))
    assert count.tolist() == [1, 0, 2, 0]
    h = np.sqrt(0.5)
    np.testing.assert_allclose(s, [[h, h], [0, 0], [2 * h, 2 * h], [0, 0]], atol=2**-20)


def test_ratio_from_stats_matches_direct():
    rng = np.random.default_rng(4)
    A = unit_rows(rng.normal(0, 1, size=(30, 5)) + 1)
    B = unit_rows(rng.normal(1, 2, size=(20, 5)))
    a = GroupStats.from_rows(A, np.zeros(30))
    b = GroupStats.from_rows(B, np.zeros(20))
    r = cross_ratio_from_stats(a.count, a.sum, a.sumsq, b.count, b.sum, b.sumsq)
    np.testing.assert_allclose(r[0], cross_ratio(A, B), rtol=1e-4)


def test_row_norms_of_tiny_and_huge_rows():
    X = np.array([[3e-30, 4e-30], [3e20, 4e20], [3.0, 4.0]], dtype=np.float32)
    np.testing.assert_allclose(row_norms(X), [5e-30, 5e20, 5.0], rtol=1e-6)


def test_top_k_dims_picks_largest():
    rng = np.random.default_rng(5)
    r = rng.random((4, 20))
    dims = top_k_dims(r, 5)
    for row, d in zip(r, dims):
        assert set(d) == set(np.argsort(row)[-5:])
        assert (np.diff(d) > 0).all()
