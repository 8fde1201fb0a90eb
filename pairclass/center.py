"""Balanced centring: remove each side's common direction before classifying.

Item embeddings and class (prompt) embeddings each share a direction of their own (for CLIP, the
modality gap; for any text model, the direction every product title has in common), which lifts
every cosine alike and blurs the comparison between classes. Removing the class embeddings' mean
from the classes and the items' mean from the items leaves the directions that tell classes apart.

The items' mean is *balanced*: the mean over classes of each class's mean item (classes as the
cosine baseline assigns them), so a batch where one class dominates does not make that class's
own direction the one removed. It takes one pass of class sums, so centring streams.
"""

from __future__ import annotations

import numpy as np

from .classify import baseline_scores, l2_normalize
from .crossvar import GroupStats, row_norms
from .errors import InputError

__all__ = ["CENTERING", "balanced_mean", "balanced_center", "center_rows", "centred_class_embeddings",
           "check_center", "baseline_sums"]

CENTERING = ("none", "balanced")


def check_center(center):
    """Raise :class:`InputError` unless ``center`` is one of :data:`CENTERING`."""
    if center not in CENTERING:
        raise InputError(f"unknown centring {center!r}; choose from {', '.join(CENTERING)}")


def baseline_sums(X, class_embeddings, norms=None):
    """Class sums of the normalised rows, classes as the cosine baseline assigns them (mergeable)."""
    pred = baseline_scores(X, class_embeddings, norms)[0]
    return GroupStats.from_rows(X, pred, norms, squares=False)


def balanced_mean(stats, n_classes):
    """Mean over the classes that have items of those items' mean (from :func:`baseline_sums`)."""
    counts, sums = stats.dense(n_classes)
    present = counts > 0
    return (sums[present] / counts[present, None]).mean(axis=0)


def center_rows(X, mean, norms=None, *, first_row=0):
    """``normalize(normalize(x) - mean)`` per row, in ``X``'s dtype."""
    norms = row_norms(X) if norms is None else norms
    out = X / norms[:, None].astype(X.dtype) - mean.astype(X.dtype)
    centred = row_norms(out)
    if not centred.all():
        first = first_row + int(np.flatnonzero(centred == 0)[0])
        raise InputError(f"centring leaves item {first} at zero (it is the batch mean); use --center none")
    return out / centred[:, None].astype(X.dtype)


def centred_class_embeddings(class_embeddings):
    """``normalize(t - mean(t))``."""
    T = np.asarray(class_embeddings, dtype=np.float64)
    return l2_normalize(T - T.mean(axis=0), name="centred class embeddings")


def balanced_center(X, class_embeddings):
    """Centre and re-normalise the items ``X`` on their balanced class mean.

    Parameters
    ----------
    X : ndarray of shape (n_items, n_features)
    class_embeddings : ndarray of shape (n_classes, n_features)
        L2-normalised; they assign items to classes for the balanced mean (cosine argmax).

    Returns
    -------
    ndarray of shape (n_items, n_features)

    Examples
    --------
    Three items of class 0 and one of class 1: the balanced mean is (0.5, 0.5), not the batch
    mean (0.75, 0.25).

    >>> X = np.array([[2.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> balanced_center(X, np.eye(2)).round(3).tolist()
    [[0.707, -0.707], [0.707, -0.707], [0.707, -0.707], [-0.707, 0.707]]
    """
    mean = balanced_mean(baseline_sums(X, class_embeddings), class_embeddings.shape[0])
    return center_rows(X, mean)
