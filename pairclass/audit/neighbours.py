"""Nearest neighbours of every item among the others, through faiss.

Up to ``EXACT_MAX_ITEMS`` items the search is exact (``IndexFlatL2``, a blocked matrix product).
Above it, an inverted file: k-means cells trained on a seeded sample, each query scanning its
``nprobe`` nearest cells, whose rows are stored as float16 by default (``IndexIVFScalarQuantizer``).
Measured at 1M items against pynndescent and scikit-learn's ``NearestNeighbors``
(``scripts/bench_audit.py --knn-libraries``, docs/audit.md): exact search is hours, pynndescent was
faster than IVF at half its recall. IVF is deterministic for a seed (HNSW graph building with
several threads is not).
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXACT_MAX_ITEMS", "STORAGES", "nearest_neighbours"]

# Above this many items the index is approximate (an exact self-join is quadratic).
EXACT_MAX_ITEMS = 50_000
# k-means training sample per cell, and cells scanned per query.
_TRAIN_PER_CELL = 64
_NPROBE = 16
# How the approximate index stores the rows of its cells. Scanning the cells is most of a search, and
# float16 rows halve the index: measured on 1M rows (scripts/bench_audit.py --knn-libraries), the
# graph took 130 s against 178 s with float32 rows, at the same recall@10, and 316 MiB less.
STORAGES = ("fp16", "fp32")


def nearest_neighbours(data, k, queries=None, *, exact=None, seed=0, storage="fp16"):
    """The ``k`` nearest rows of ``data`` (Euclidean) for every query row, leaving out the query's own row.

    Parameters
    ----------
    data : ndarray of shape (n_items, n_features)
        float32 rows to search.
    k : int
        Neighbours per query; at most ``n_items - 1``.
    queries : ndarray of shape (n_items, n_features), optional
        Row ``i`` is item ``i`` in another view (its own row ``i`` of ``data`` is left out too).
        Default: ``data`` itself.
    exact : bool, optional
        Default: exact up to ``EXACT_MAX_ITEMS`` items.
    seed : int
        Seeds the k-means of the approximate index.
    storage : {"fp16", "fp32"}
        How the approximate index stores the rows.

    Returns
    -------
    ndarray of shape (n_items, k), int64
        Neighbour rows, nearest first.

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [1.0], [1.2]], dtype=np.float32)
    >>> nearest_neighbours(X, 1).ravel().tolist()
    [1, 0, 3, 2]
    """
    import faiss

    data = np.ascontiguousarray(data, dtype=np.float32)
    queries = data if queries is None else np.ascontiguousarray(queries, dtype=np.float32)
    n, d = data.shape
    exact = n <= EXACT_MAX_ITEMS if exact is None else exact
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; choose from {', '.join(STORAGES)}")
    if exact:
        index = faiss.IndexFlatL2(d)
    else:
        cells = int(np.clip(4 * np.sqrt(n), 16, n // _TRAIN_PER_CELL))
        quantizer = faiss.IndexFlatL2(d)
        index = (faiss.IndexIVFFlat(quantizer, d, cells) if storage == "fp32" else
                 faiss.IndexIVFScalarQuantizer(quantizer, d, cells, faiss.ScalarQuantizer.QT_fp16))
        index.cp.seed = seed
        sample = np.random.default_rng(seed).choice(n, min(n, cells * _TRAIN_PER_CELL), replace=False)
        index.train(data[np.sort(sample)])
        index.nprobe = _NPROBE
    index.add(data)
    found = np.empty((n, k), dtype=np.int64)
    step = 65_536
    for start in range(0, n, step):
        rows = np.arange(start, min(start + step, n))
        _, idx = index.search(queries[rows], k + 1)
        # Move the item's own row (when found) to the end, then keep k; an approximate search can
        # also return -1 for want of candidates, which goes to the end the same way.
        bad = (idx == rows[:, None]) | (idx < 0)
        order = np.argsort(bad, axis=1, kind="stable")
        found[rows] = np.take_along_axis(idx, order, axis=1)[:, :k]
    return found
