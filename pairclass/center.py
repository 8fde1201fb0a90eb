"""Balanced centring: remove each side's common direction before classifying.

Item embeddings and class (prompt) embeddings each share a direction of their own (for CLIP, the
modality gap; for any text model, the direction every product title has in common), which lifts
every cosine alike and blurs the comparison between classes. Removing the class embeddings' mean
from the classes and the items' mean from the items leaves the directions that tell classes apart.

The items' mean is *balanced*: the mean over classes of each class's mean item (classes as the
cosine baseline assigns them), so a batch where one class dominates does not make that class's
own direction the one removed.
"""

from __future__ import annotations

import numpy as np

from .classify import _row_chunks, _row_norms, baseline_scores, l2_normalize
from .errors import InputError
from .methods import class_sums

__all__ = ["CENTERING", "balanced_center", "center_views", "check_center"]

CENTERING = ("none", "balanced")


def check_center(center):
    """Raise :class:`InputError` unless ``center`` is one of :data:`CENTERING`."""
    if center not in CENTERING:
        raise InputError(f"unknown centring {center!r}; choose from {', '.join(CENTERING)}")


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
        ``normalize(normalize(x) - m)`` per item, in ``X``'s dtype, where ``m`` is the mean over
        the classes that receive items of those items' mean direction.

    Examples
    --------
    Three items of class 0 and one of class 1: the balanced mean is (0.5, 0.5), not the batch
    mean (0.75, 0.25).

    >>> X = np.array([[2.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> balanced_center(X, np.eye(2)).round(3).tolist()
    [[0.707, -0.707], [0.707, -0.707], [0.707, -0.707], [-0.707, 0.707]]
    """
    C = class_embeddings.shape[0]
    pred = baseline_scores(X, class_embeddings)[0]
    sums, counts = class_sums(X, pred, C)
    present = counts > 0
    mean = (sums[present] / counts[present, None]).mean(axis=0)
    out = np.empty_like(X)
    for rows in _row_chunks(X.shape[0], X.shape[1]):
        chunk = X[rows] / _row_norms(X[rows])[:, None] - mean.astype(X.dtype)
        norms = _row_norms(chunk)
        if not norms.all():
            first = rows.start + int(np.flatnonzero(norms == 0)[0])
            raise InputError(f"centring leaves item {first} at zero (it is the batch mean); use --center none")
        out[rows] = chunk / norms[:, None]
    return out


def center_views(views, class_embeddings, center="balanced"):
    """Apply ``center`` (one of :data:`CENTERING`) to every view and to the class embeddings.

    Returns
    -------
    views : dict
        View name -> centred items (the same arrays when ``center="none"``).
    class_embeddings : ndarray
        ``normalize(t - mean(t))``, or unchanged for ``"none"``.
    """
    check_center(center)
    if center == "none":
        return views, class_embeddings
    T = np.asarray(class_embeddings, dtype=np.float64)
    centred = {v: balanced_center(X, T) for v, X in views.items()}
    return centred, l2_normalize(T - T.mean(axis=0), name="centred class embeddings")
