"""Zero-shot evidence: each view's pairwise classifier (fitted on the items, without their labels)
plays a round robin, and a class's score is the least-squares potential of its margins.

For every pair of candidate classes (a, b) the margin is ``cos_S(x, a) - cos_S(x, b)`` on the pair's
selected dimensions S. The potential ``s`` with ``s_a - s_b ~ margin(a, b)`` over all pairs is, on a
complete comparison graph, ``s_a = sum_b margin(a, b) / M`` (HodgeRank; a continuous Copeland/Borda
count). With many classes each item plays only its top ``MAX_CANDIDATES`` classes by full cosine plus
its given label, so the work is ``M^2`` per item, not ``C^2``.
"""

from __future__ import annotations

import numpy as np

from ..classify import PairwiseClassifier, _norms, _top_candidates, row_chunks

__all__ = ["MAX_CANDIDATES", "pair_scores", "zero_shot_scores"]

# Candidates per item in the round robin (all classes when there are no more).
MAX_CANDIDATES = 32
# Score of a class outside an item's candidates: this far below the item's lowest candidate.
_OUTSIDE = 1.0


def pair_scores(clf, X, *, given=None, candidates=MAX_CANDIDATES):
    """Round-robin class scores of a fitted :class:`~pairclass.classify.PairwiseClassifier`.

    Parameters
    ----------
    clf : PairwiseClassifier
        Fitted.
    X : ndarray of shape (n_items, n_features)
    given : ndarray of shape (n_items,), optional
        Class indices that must be among each item's candidates (the given labels).
    candidates : int
        Classes per item: its top ones by full cosine (and ``given``). At least ``n_classes``: all.

    Returns
    -------
    ndarray of shape (n_items, n_classes), float32
        The potential over the item's candidates; other classes score ``_OUTSIDE`` below its lowest.

    Examples
    --------
    >>> X = np.repeat(np.eye(3), 2, axis=0) + 0.1
    >>> scores = pair_scores(PairwiseClassifier(np.eye(3), k=2, min_count=2).fit(X), X, candidates=2)
    >>> scores.argmax(axis=1).tolist(), bool((scores[0, 1:] < scores[0, 0]).all())
    ([0, 0, 1, 1, 2, 2], True)
    """
    X = np.asarray(X, dtype=np.float32)
    C = clf.class_embeddings_.shape[0]
    m = min(candidates, C)
    i, j = np.triu_indices(m, 1)
    out = np.empty((X.shape[0], C), dtype=np.float32)
    for rows in row_chunks(X.shape[0], max(i.size * clf.pair_dims_.shape[1], X.shape[1], C)):
        chunk = X[rows]
        norms = _norms(chunk)
        cos = clf._cosines(chunk, norms)
        cands = np.array(_top_candidates(cos, m))
        if given is not None and m < C:
            g = given[rows]
            missing = ~(cands == g[:, None]).any(axis=1)
            cands[missing, -1] = g[missing]
        n = cands.shape[0]
        r = np.repeat(np.arange(n), i.size)
        a, b = cands[:, i].ravel(), cands[:, j].ravel()
        margins = clf._margins(chunk, norms, cos, r, a, b).reshape(n, i.size)
        potential = np.zeros((n, m), dtype=np.float32)
        np.add.at(potential, (slice(None), i), margins)
        np.add.at(potential, (slice(None), j), -margins)
        potential /= m
        block = np.repeat(potential.min(axis=1, keepdims=True) - _OUTSIDE, C, axis=1)
        np.put_along_axis(block, cands, potential, axis=1)
        out[rows] = block
    return out


def zero_shot_scores(views, class_embeddings, given, *, k=100, min_count=10, seed=0):
    """``{view: pair_scores}`` of a :class:`PairwiseClassifier` fitted on each view's items.

    The classifiers never see the labels; ``given`` only joins each item's candidates.
    """
    out = {}
    for name, X in views.items():
        clf = PairwiseClassifier(class_embeddings, k=k, min_count=min_count, seed=seed).fit(X)
        out[name] = pair_scores(clf, X, given=given)
    return out
