"""Agreement and accuracy metrics. Pure numpy/scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

__all__ = [
    "Confusion", "agreement_f1", "hollow_agreement", "label_scores", "per_class_f1", "recall_at_k", "map_at_r",
    "opis", "opis_thresholds", "pair_threshold_counts",
]


@dataclass(frozen=True)
class Confusion:
    """Counts of (reference, predicted) class pairs; batches merge with ``+``.

    Rows are the reference (catalogue labels, or another view's predictions), columns the
    predictions, both class indices. Reference rows may go past the predicted classes (labels that
    are not among the classes: always errors). The scores equal scikit-learn's on the same items.

    Examples
    --------
    >>> c = Confusion.of(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3, 2)
    >>> c.accuracy(), round(c.weighted_f1(), 4)
    (0.5, 0.4583)
    """

    counts: np.ndarray

    @classmethod
    def of(cls, reference, pred, n_reference, n_pred):
        """Counts over the items with a reference (``reference >= 0``)."""
        keep = reference >= 0
        flat = reference[keep].astype(np.int64) * n_pred + pred[keep]
        return cls(np.bincount(flat, minlength=n_reference * n_pred).reshape(n_reference, n_pred))

    def __add__(self, other):
        return Confusion(self.counts + other.counts)

    @property
    def total(self):
        return int(self.counts.sum())

    def accuracy(self):
        n = min(self.counts.shape)
        return float(np.trace(self.counts[:n, :n]) / max(self.total, 1))

    def per_class(self):
        """Support and F1 of each predicted class (zero F1 where it is never right)."""
        n = self.counts.shape[1]
        tp = np.diag(self.counts[:n, :n]).astype(np.float64)
        support = self.counts[:n].sum(axis=1)
        predicted = self.counts.sum(axis=0)
        denom = support + predicted
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        return support, f1

    def weighted_f1(self):
        """F1 per class weighted by its support; reference classes beyond the predicted ones have
        F1 0 (scikit-learn's ``f1_score(average="weighted", zero_division=0)``)."""
        support, f1 = self.per_class()
        return float((support * f1).sum() / max(self.total, 1))


def agreement_f1(reference_pred, other_pred):
    """Weighted F1 of one view's predictions against another's.

    The argument order is scikit-learn's ``f1_score(y_true, y_pred)``: with the default SQID views the
    text view is the reference, ``agreement_f1(text_pred, image_pred)``.

    Examples
    --------
    >>> agreement_f1(["a", "a", "b", "b"], ["a", "a", "b", "b"])
    1.0
    """
    return float(f1_score(reference_pred, other_pred, average="weighted", zero_division=0))


def label_scores(labels, pred):
    """Accuracy and weighted F1 of predictions against catalogue labels.

    Examples
    --------
    >>> label_scores(["a", "b", "b", "b"], ["a", "b", "b", "a"])["accuracy"]
    0.75
    """
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "f1": float(f1_score(labels, pred, average="weighted", zero_division=0)),
    }


def per_class_f1(labels, pred, classes):
    """Support and F1 per class, in ``classes`` order.

    Returns
    -------
    support : ndarray of shape (n_classes,)
    f1 : ndarray of shape (n_classes,)
    """
    _, _, f1, support = precision_recall_fscore_support(
        labels, pred, labels=list(classes), zero_division=0
    )
    return np.asarray(support), np.asarray(f1)


# Retrieval metrics over L2-normalised embeddings (cosine similarity), computed in row chunks of
# every query's similarities to all the items.
def _retrieval_rows(n_items):
    from .classify import row_chunks

    return row_chunks(n_items, n_items, min_rows=1)


def _class_codes(labels):
    _, codes, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return codes.ravel(), counts


def _ranked_hits(X, labels, depth):
    """Yield ``(rows, hits, n_relevant)`` per chunk of queries.

    ``hits[i, j]`` says whether the ``j``-th nearest other item of query ``rows[i]`` shares its
    label; ``n_relevant`` counts the other items of the query's class. ``depth(n_relevant)`` gives
    how many neighbours the chunk needs (capped at ``n_items - 1``).
    """
    X = np.asarray(X, dtype=np.float32)
    codes, counts = _class_codes(labels)
    n = X.shape[0]
    for rows in _retrieval_rows(n):
        relevant = counts[codes[rows]] - 1
        k = int(min(n - 1, depth(relevant)))
        sims = X[rows] @ X.T
        sims[np.arange(sims.shape[0]), np.arange(rows.start, rows.stop)] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        yield rows, codes[top] == codes[rows, None], relevant


def recall_at_k(X, labels, ks=(1, 10, 100, 1000)):
    """Recall@K: the share of queries with an item of their own class among their K nearest others.

    Every item is a query against all the others (cosine similarity on rows of ``X``, which
    should be L2-normalised). Queries whose class has no other item are left out.

    Parameters
    ----------
    X : ndarray of shape (n_items, n_features)
    labels : array-like of shape (n_items,)
    ks : sequence of int

    Returns
    -------
    dict
        ``{k: recall}``; a K above ``n_items - 1`` counts all the others.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.8, 0.6]])
    >>> recall_at_k(X / np.linalg.norm(X, axis=1, keepdims=True), ["a", "a", "b", "b"], ks=(1, 2, 3))
    {1: 0.75, 2: 0.75, 3: 1.0}
    """
    ks = [int(k) for k in ks]
    found = dict.fromkeys(ks, 0)
    n_queries = 0
    for _, hits, relevant in _ranked_hits(X, labels, lambda relevant: max(ks)):
        hits = hits[relevant > 0]
        n_queries += hits.shape[0]
        first = np.where(hits.any(axis=1), hits.argmax(axis=1), hits.shape[1])
        for k in ks:
            found[k] += int((first < k).sum())
    return {k: found[k] / n_queries if n_queries else 0.0 for k in ks}


def map_at_r(X, labels):
    """MAP@R (Musgrave et al., 2020): mean over queries of ``(1/R) * sum_i P@i * rel(i)`` for
    ``i <= R``, where ``R`` is the number of other items of the query's class.

    Queries whose class has no other item are left out.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.8, 0.6]])
    >>> round(map_at_r(X / np.linalg.norm(X, axis=1, keepdims=True), ["a", "a", "b", "b"]), 3)
    0.75
    """
    total, n_queries = 0.0, 0
    for _, hits, relevant in _ranked_hits(X, labels, lambda relevant: relevant.max()):
        keep = relevant > 0
        hits, relevant = hits[keep], relevant[keep]
        position = np.arange(1, hits.shape[1] + 1)
        within_r = position[None, :] <= relevant[:, None]
        precision = np.cumsum(hits, axis=1) / position
        total += float(((precision * hits * within_r).sum(axis=1) / relevant).sum())
        n_queries += hits.shape[0]
    return total / n_queries if n_queries else 0.0


def pair_threshold_counts(X, labels, thresholds):
    """Per class, how many positive and negative pairs have a cosine at or above each threshold.

    A class's positives are its ordered pairs of distinct items; its negatives are the pairs with
    one item in the class and the other outside it.

    Returns
    -------
    pos_at_least : ndarray of shape (n_classes, n_thresholds)
    neg_at_least : ndarray of shape (n_classes, n_thresholds)
    n_pos : ndarray of shape (n_classes,)
    n_neg : ndarray of shape (n_classes,)
        Classes in ``np.unique(labels)`` order.
    """
    X = np.asarray(X, dtype=np.float32)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    codes, counts = _class_codes(labels)
    n, n_classes, n_bins = X.shape[0], counts.size, thresholds.size + 1
    hist = np.zeros(n_classes * 2 * n_bins, dtype=np.int64)
    for rows in _retrieval_rows(n):
        sims = X[rows] @ X.T
        bins = np.searchsorted(thresholds, sims, side="right")
        same = codes[rows, None] == codes[None, :]
        key = (codes[rows, None] * 2 + same) * n_bins + bins
        key[np.arange(key.shape[0]), np.arange(rows.start, rows.stop)] = -1
        hist += np.bincount(key[key >= 0], minlength=hist.size)
    # bin b holds similarities s with exactly b thresholds <= s
    at_least = np.cumsum(hist.reshape(n_classes, 2, n_bins)[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
    n_pos = counts * (counts - 1)
    return at_least[:, 1], at_least[:, 0], n_pos, counts * (n - counts)


def opis_thresholds(X, labels, *, far_range=(0.01, 0.1), n_thresholds=101, resolution=2001):
    """The calibration range of OPIS: ``n_thresholds`` cosines from the one where a ``far_range[1]``
    share of all negative pairs is accepted (``cos >= t``) to the one where ``far_range[0]`` is,
    read off a grid of ``resolution`` cosines on [-1, 1]."""
    grid = np.linspace(-1.0, 1.0, resolution)
    _, neg_at_least, _, n_neg = pair_threshold_counts(X, labels, grid)
    far = neg_at_least.sum(axis=0) / max(int(n_neg.sum()), 1)
    lo, hi = (grid[np.flatnonzero(far <= rate)[0]] for rate in sorted(far_range, reverse=True))
    return np.linspace(lo, hi, n_thresholds)


def opis(X, labels, *, thresholds=None, far_range=(0.01, 0.1), n_thresholds=101):
    """Operating-Point-Inconsistency Score (Zhang et al., ICLR 2024): how much one similarity
    threshold's utility differs between classes.

    For class ``i`` and cosine threshold ``t`` (a pair is accepted when ``cos >= t``), the utility
    ``U_i(t)`` is the harmonic mean of the true-positive rate on the class's positive pairs and the
    true-negative rate on its negative pairs. OPIS is the mean over classes and thresholds of
    ``(U_i(t) - mean_j U_j(t))**2``: zero when every class has the same utility curve. Classes
    with a single item are left out.

    Parameters
    ----------
    X : ndarray of shape (n_items, n_features)
        L2-normalised embeddings.
    labels : array-like of shape (n_items,)
    thresholds : array-like, optional
        Cosine thresholds; by default :func:`opis_thresholds` (the range where the false-accept
        rate over all negative pairs runs from ``far_range[1]`` down to ``far_range[0]``).

    Returns
    -------
    float

    Examples
    --------
    >>> X = np.array([[1.0, 0.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.8, 0.6]])
    >>> opis(X, ["a", "a", "b", "b"], thresholds=[0.5, 0.9])
    0.0
    """
    codes, counts = _class_codes(labels)
    keep = counts[codes] > 1
    if np.unique(codes[keep]).size < 2:
        return 0.0
    X, labels = np.asarray(X)[keep], np.asarray(labels)[keep]
    if thresholds is None:
        thresholds = opis_thresholds(X, labels, far_range=far_range, n_thresholds=n_thresholds)
    pos, neg, n_pos, n_neg = pair_threshold_counts(X, labels, thresholds)
    tpr = pos / n_pos[:, None]
    tnr = 1.0 - neg / n_neg[:, None]
    denom = tpr + tnr
    utility = np.divide(2 * tpr * tnr, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(((utility - utility.mean(axis=0)) ** 2).mean())


def hollow_agreement(method, baseline):
    """Whether a method raised the views' agreement F1 over the baseline while lowering their mean
    accuracy: the views then agree on wrong classes, which is a regression, not a gain.

    Both arguments are summaries as in ``ClassifyResult.methods`` (``agreement_f1`` and, with labels,
    ``accuracy`` per view).

    Examples
    --------
    >>> base = {"agreement_f1": 0.6, "accuracy": {"a": 0.7, "b": 0.6}}
    >>> hollow_agreement({"agreement_f1": 0.9, "accuracy": {"a": 0.5, "b": 0.5}}, base)
    True
    >>> hollow_agreement({"agreement_f1": 0.9, "accuracy": {"a": 0.8, "b": 0.7}}, base)
    False
    """
    if method.get("agreement_f1") is None or "accuracy" not in method:
        return False
    mean = lambda m: float(np.mean(list(m["accuracy"].values())))  # noqa: E731
    return method["agreement_f1"] > baseline["agreement_f1"] and mean(method) < mean(baseline)
