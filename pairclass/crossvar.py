"""Sufficient statistics, the cross-variance ratio and per-pair dimension selection.

Everything here is pure numpy: arrays in, arrays out.

For two samples ``A`` and ``B`` of one dimension,

    xvar(A, B) = 1/(2|A||B|) * sum_i sum_j (A_i - B_j)^2
               = (var(A) + var(B) + (mean(A) - mean(B))^2) / 2

and the cross ratio is ``r = sqrt(xvar / (sd(A) sd(B)))``: 1 for identical distributions, growing as
they separate. Both only need count, sum and sum of squares per group and dimension, which add up
across batches and machines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ONEHOT_LIMIT = 1 << 22

__all__ = [
    "GroupStats",
    "cross_variance",
    "cross_ratio",
    "cross_ratio_from_stats",
    "top_k_dims",
]


@dataclass(frozen=True)
class GroupStats:
    """Count, sum and sum of squares per group and dimension, keyed by integer group ids.

    Statistics for the same key add up, so batches (or machines) merge with ``+``.

    Attributes
    ----------
    keys : ndarray of shape (n_groups,)
        Sorted, unique int64 group ids.
    count : ndarray of shape (n_groups,)
        Items per group.
    sum, sumsq : ndarray of shape (n_groups, n_features)
        Per-dimension sum and sum of squares, in float64.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    >>> a = GroupStats.from_rows(X[:2], np.array([7, 7]))
    >>> b = GroupStats.from_rows(X[2:], np.array([7]))
    >>> (a + b).count.tolist(), (a + b).sum.tolist()
    ([3], [[9.0, 6.0]])
    """

    keys: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray

    @classmethod
    def empty(cls, n_features):
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, n_features)),
            np.zeros((0, n_features)),
        )

    @classmethod
    def from_rows(cls, X, keys, scale=None):
        """Statistics of the rows of ``X`` (each times ``scale``, if given) grouped by ``keys``."""
        keys = np.asarray(keys, dtype=np.int64)
        uniq, inverse, count = np.unique(keys, return_inverse=True, return_counts=True)
        if uniq.size == 0:
            return cls.empty(X.shape[1])
        scale = np.ones(keys.size, X.dtype) if scale is None else np.asarray(scale, X.dtype)
        if uniq.size * keys.size <= _ONEHOT_LIMIT:
            # Few groups: a (scaled) one-hot matrix product per statistic, with no copy of X.
            # (X.T @ onehot.T) rather than (onehot @ X): OpenBLAS handles the short-wide product poorly.
            onehot = np.zeros((keys.size, uniq.size), dtype=X.dtype)
            onehot[np.arange(keys.size), inverse] = scale
            s = (X.T @ onehot).T.astype(np.float64)
            onehot[np.arange(keys.size), inverse] = scale * scale
            ss = (np.square(X).T @ onehot).T.astype(np.float64)
        else:
            order = np.argsort(inverse, kind="stable")
            starts = np.concatenate([[0], np.cumsum(count)[:-1]])
            rows = X[order] * scale[order, None]
            s = np.add.reduceat(rows, starts, axis=0, dtype=np.float64)
            ss = np.add.reduceat(np.square(rows), starts, axis=0, dtype=np.float64)
        return cls(uniq, count.astype(np.int64), s, ss)

    def __add__(self, other):
        keys = np.concatenate([self.keys, other.keys])
        uniq, inverse = np.unique(keys, return_inverse=True)
        n = uniq.size
        count = np.bincount(inverse, weights=np.concatenate([self.count, other.count]), minlength=n)
        s = np.zeros((n, self.sum.shape[1]))
        ss = np.zeros_like(s)
        np.add.at(s, inverse, np.concatenate([self.sum, other.sum]))
        np.add.at(ss, inverse, np.concatenate([self.sumsq, other.sumsq]))
        return GroupStats(uniq, count.astype(np.int64), s, ss)

    def lookup(self, keys):
        """Count, sum and sumsq for ``keys``; absent keys give zeros."""
        keys = np.asarray(keys, dtype=np.int64)
        count = np.zeros(keys.size, np.int64)
        s = np.zeros((keys.size, self.sum.shape[1]))
        ss = np.zeros_like(s)
        if self.keys.size:
            pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
            hit = self.keys[pos] == keys
            count[hit] = self.count[pos[hit]]
            s[hit] = self.sum[pos[hit]]
            ss[hit] = self.sumsq[pos[hit]]
        return count, s, ss


def _moments(count, s, ss):
    n = np.maximum(count, 1)[:, None].astype(np.float64)
    mean = s / n
    var = np.maximum(ss / n - mean**2, 0.0)
    return mean, var


def cross_variance(A, B):
    """Exact cross-variance of two samples per column, in O(|A| + |B|).

    Parameters
    ----------
    A : array-like of shape (n_a, n_features)
    B : array-like of shape (n_b, n_features)

    Returns
    -------
    ndarray of shape (n_features,)

    Examples
    --------
    >>> cross_variance([[0.0], [2.0]], [[4.0]]).tolist()
    [5.0]
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    return (A.var(0) + B.var(0) + (A.mean(0) - B.mean(0)) ** 2) / 2


def _ratio(xvar, var_a, var_b):
    denom = np.sqrt(var_a * var_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(xvar / denom)
    # A constant dimension in either group: equal constants do not separate (1), anything else does (inf).
    degenerate = denom == 0
    r[degenerate] = np.where(xvar[degenerate] > 0, np.inf, 1.0)
    return r


def cross_ratio(A, B):
    """Cross ratio ``sqrt(xvar(A, B) / (sd(A) sd(B)))`` per column.

    Examples
    --------
    >>> cross_ratio([[1.0], [3.0]], [[1.0], [3.0]]).tolist()
    [1.0]
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    return _ratio(cross_variance(A, B), A.var(0), B.var(0))


def cross_ratio_from_stats(count_a, sum_a, sumsq_a, count_b, sum_b, sumsq_b):
    """Cross ratio per row of stacked group statistics (one row per pair of groups).

    Returns
    -------
    ndarray of shape (n_pairs, n_features)
    """
    mean_a, var_a = _moments(count_a, sum_a, sumsq_a)
    mean_b, var_b = _moments(count_b, sum_b, sumsq_b)
    xvar = (var_a + var_b + (mean_a - mean_b) ** 2) / 2
    return _ratio(xvar, var_a, var_b)


def top_k_dims(ratio, k):
    """Indices of the ``k`` largest ratios per row, sorted ascending.

    Examples
    --------
    >>> top_k_dims(np.array([[0.5, 3.0, 2.0, 1.0]]), 2).tolist()
    [[1, 2]]
    """
    if k >= ratio.shape[1]:
        return np.broadcast_to(np.arange(ratio.shape[1]), ratio.shape).copy()
    return np.sort(np.argpartition(-ratio, k - 1, axis=1)[:, :k], axis=1)
