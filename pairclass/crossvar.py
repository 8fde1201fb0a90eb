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

import threading
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "GroupStats",
    "row_norms",
    "cross_variance",
    "cross_ratio",
    "cross_ratio_from_stats",
    "top_k_dims",
]

# Statistics hold each unit-normalised value rounded to a multiple of 1/_UNITS, as an integer. Every
# partial sum is then an exact integer, so batches, shards and machines merge to bit-identical
# statistics in any order. The rounding (below 5e-7) is far below what separates two classes.
_UNITS = 1 << 20
# Rows per product: |value| <= _UNITS, so a sum of squares over this many rows stays below 2**53,
# where float64 still counts every integer (and the chunk stays in cache).
_EXACT_ROWS = 1 << 12
# Groups x rows up to which one (one-hot) matrix product sums a chunk; beyond, sorted row sums.
_ONEHOT_LIMIT = 1 << 21
# Sums of squares grow past int64 on huge groups: they are kept as hi * 2**32 + lo, 0 <= lo < 2**32.
_LO_BITS = 32
_LO_MASK = (1 << _LO_BITS) - 1


def row_norms(X):
    """L2 norm of each row, robust to values whose squares under- or overflow float32.

    Examples
    --------
    >>> (row_norms(np.array([[3e-30, 4e-30], [3.0, 4.0]], dtype=np.float32)) / [1e-30, 1]).round(6).tolist()
    [5.0, 5.0]
    """
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    odd = ~np.isfinite(norms) | (norms < np.sqrt(np.finfo(X.dtype).tiny))
    if odd.any():
        # Squares of tiny (or huge) float32 values leave float32's range; float64 holds them.
        rows = X[odd].astype(np.float64)
        norms = norms.astype(np.float64)
        norms[odd] = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    return norms


@dataclass(frozen=True, eq=False)
class GroupStats:
    """Count, sum and sum of squares of unit-normalised rows per group and dimension.

    Statistics for the same key add up, so batches (or machines) merge with ``+``. They are exact
    integers underneath (values rounded to multiples of 2**-20), so the merge is associative and
    commutative to the last bit: any split into batches, in any order, gives identical statistics.

    Attributes
    ----------
    keys : ndarray of shape (n_groups,)
        Sorted, unique int64 group ids.
    count : ndarray of shape (n_groups,)
        Items per group.
    sum, sumsq : ndarray of shape (n_groups, n_features)
        Per-dimension sum and sum of squares of the normalised rows, in float64 (``sumsq`` is None
        for statistics built with ``squares=False``).

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> a = GroupStats.from_rows(X[:2], np.array([7, 7]))
    >>> b = GroupStats.from_rows(X[2:], np.array([7]))
    >>> (a + b).count.tolist(), (a + b).sum.round(6).tolist()
    ([3], [[1.6, 1.8]])
    """

    keys: np.ndarray
    count: np.ndarray
    units: np.ndarray
    squares_hi: np.ndarray | None
    squares_lo: np.ndarray | None
    sum: np.ndarray = field(init=False, repr=False)
    sumsq: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "sum", self.units / _UNITS)
        sumsq = None
        if self.squares_hi is not None:
            sumsq = (self.squares_hi * float(1 << _LO_BITS) + self.squares_lo) / float(_UNITS) ** 2
        object.__setattr__(self, "sumsq", sumsq)

    @classmethod
    def empty(cls, n_features, *, squares=True):
        none = np.zeros((0, n_features), np.int64)
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), none, none if squares else None,
                   none if squares else None)

    @classmethod
    def from_rows(cls, X, keys, norms=None, *, squares=True):
        """Statistics of the rows of ``X``, each divided by its norm, grouped by ``keys``.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features)
        keys : array-like of int of shape (n_rows,)
            Group per row; rows with a negative key are left out.
        norms : ndarray of shape (n_rows,), optional
            The rows' norms when the caller has them (default: :func:`row_norms`).
        squares : bool, default=True
            Also keep sums of squares (the dimension scores need them; class means do not).
        """
        keys = np.asarray(keys, dtype=np.int64)
        D = X.shape[1]
        uniq, inverse, count = np.unique(keys, return_inverse=True, return_counts=True)
        # Left-out rows form a group of their own (the first), dropped at the end: no copy of the rest.
        skip = int(uniq.size > 0 and uniq[0] < 0)
        G = uniq.size
        units = np.zeros((G, D), np.int64)
        hi = np.zeros((G, D), np.int64) if squares else None
        lo = np.zeros((G, D), np.int64) if squares else None
        if G > skip:
            norms = row_norms(X) if norms is None else np.asarray(norms)
            if skip:
                norms = np.where(inverse == 0, 1, norms)
            scale = (_UNITS / np.asarray(norms, dtype=np.float64))[:, None]
            q = _buffer(_EXACT_ROWS, D)
            with _single_threaded_blas():
                for start in range(0, keys.size, _EXACT_ROWS):
                    rows = slice(start, min(start + _EXACT_ROWS, keys.size))
                    n = rows.stop - rows.start
                    np.multiply(X[rows], scale[rows], out=q[:n])
                    np.rint(q[:n], out=q[:n])
                    group = inverse[rows]
                    units += _group_sums(q[:n], group, G)
                    if squares:
                        np.square(q[:n], out=q[:n])
                        _add_wide(hi, lo, _group_sums(q[:n], group, G))
        uniq, count, units = uniq[skip:], count[skip:], units[skip:]
        if squares:
            hi, lo = hi[skip:], lo[skip:]
        return cls(uniq, count.astype(np.int64), units, hi, lo)

    def __add__(self, other):
        keys = np.concatenate([self.keys, other.keys])
        uniq, inverse = np.unique(keys, return_inverse=True)
        n = uniq.size
        count = np.zeros(n, np.int64)
        np.add.at(count, inverse, np.concatenate([self.count, other.count]))

        def merged(a, b):
            out = np.zeros((n, self.units.shape[1]), np.int64)
            np.add.at(out, inverse, np.concatenate([a, b]))
            return out

        units = merged(self.units, other.units)
        if self.squares_hi is None or other.squares_hi is None:
            return GroupStats(uniq, count, units, None, None)
        hi = merged(self.squares_hi, other.squares_hi)
        lo = merged(self.squares_lo, other.squares_lo)
        hi += lo >> _LO_BITS
        lo &= _LO_MASK
        return GroupStats(uniq, count, units, hi, lo)

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
            if self.sumsq is not None:
                ss[hit] = self.sumsq[pos[hit]]
        return count, s, ss

    def dense(self, n_groups):
        """Count and sum for the keys ``0..n_groups-1``, as arrays of shape (n_groups,) and
        (n_groups, n_features); keys outside that range are left out."""
        count, s, _ = self.lookup(np.arange(n_groups))
        return count, s

    def equals(self, other):
        """Whether both hold the same keys and the same integer statistics, bit for bit."""
        parts = ("keys", "count", "units", "squares_hi", "squares_lo")
        return all(
            (getattr(self, p) is None and getattr(other, p) is None)
            or (getattr(self, p) is not None and getattr(other, p) is not None
                and np.array_equal(getattr(self, p), getattr(other, p)))
            for p in parts
        )


def _group_sums(q, group, n_groups):
    """Per group, the column sums of the rows of ``q`` (integer-valued float64): exact integers."""
    if n_groups * q.shape[0] <= _ONEHOT_LIMIT:
        onehot = np.zeros((q.shape[0], n_groups))
        onehot[np.arange(q.shape[0]), group] = 1.0
        # Under one BLAS thread (see _single_threaded_blas) this orientation is the fastest by ~3x.
        sums = onehot.T @ q
    else:
        order = np.argsort(group, kind="stable")
        present, starts = np.unique(group[order], return_index=True)
        sums = np.zeros((n_groups, q.shape[1]))
        sums[present] = np.add.reduceat(q[order], starts, axis=0)
    return sums.astype(np.int64)


_local = threading.local()
_blas = None


def _single_threaded_blas():
    """These products are short and wide, where a multithreaded BLAS is several times slower than one
    thread; parallelism comes from batches instead (see :mod:`pairclass.engines`)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def _buffer(rows, width):
    """A per-thread float64 scratch array for :meth:`GroupStats.from_rows`, kept between calls: a
    fresh large array costs a page fault per page on first touch."""
    if getattr(_local, "shape", None) != (rows, width):
        _local.shape, _local.array = (rows, width), np.empty((rows, width))
    return _local.array


def _add_wide(hi, lo, values):
    """``(hi, lo) += values`` for non-negative int64 ``values`` below 2**53."""
    lo += values & _LO_MASK
    hi += (values >> _LO_BITS) + (lo >> _LO_BITS)
    lo &= _LO_MASK


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
