"""The audit's evidence about each item's class, each an (n_items, n_classes) matrix.

- :func:`out_of_fold_proba`: class probabilities of a logistic regression trained on the embeddings
  with the given labels, every item predicted by a model that never saw it (seeded stratified folds).
- :func:`neighbour_votes`: how many of an item's nearest neighbours carry each label.

Both take a ``trusted`` mask: the second round of the audit trains and votes only with the labels
the first round did not flag, as cleanlab's ``CleanLearning`` retrains on the cleaned set.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

__all__ = ["log_votes", "neighbour_votes", "out_of_fold_proba"]

# Largest training set per fold: a linear model on a few hundred features has long converged by then,
# and the cap keeps a catalogue of millions to a few minutes.
MAX_TRAIN = 200_000
_PREDICT_ROWS = 65_536


def out_of_fold_proba(X, labels, n_classes, *, folds=5, seed=0, trusted=None, max_train=MAX_TRAIN):
    """Out-of-fold class probabilities of a multinomial logistic regression.

    Without ``trusted`` and ``max_train`` this is ``cross_val_predict(LogisticRegression(),
    X, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), method="predict_proba")``,
    with a zero column for each class that no training item carries.

    Parameters
    ----------
    X : ndarray of shape (n_items, n_features)
    labels : ndarray of shape (n_items,)
        Class indices in ``0..n_classes-1``.
    n_classes : int
    folds : int
        At most the largest class's count (scikit-learn cannot stratify more folds than that).
    seed : int
        Seeds the folds and the training subsample.
    trusted : ndarray of shape (n_items,), dtype bool, optional
        Train only on these items (all items are still predicted).
    max_train : int or None
        Train each fold on a seeded subsample of at most this many items.

    Returns
    -------
    ndarray of shape (n_items, n_classes), float32
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((labels.size, n_classes), dtype=np.float32)
    cv = StratifiedKFold(min(folds, np.bincount(labels).max()), shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class with fewer items than folds is simply absent from some folds' training sets.
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        splits = list(cv.split(np.zeros((labels.size, 1)), labels))
    for train, test in splits:
        if trusted is not None:
            train = train[trusted[train]]
        if max_train is not None and train.size > max_train:
            train = np.sort(rng.choice(train, max_train, replace=False))
        with warnings.catch_warnings():
            # Thousands of classes with a few items each are still classes, not a regression target.
            warnings.filterwarnings("ignore", "The number of unique classes is greater than 50%", UserWarning)
            model = LogisticRegression(max_iter=1000).fit(X[train], labels[train])
        for start in range(0, test.size, _PREDICT_ROWS):
            rows = test[start:start + _PREDICT_ROWS]
            out[rows[:, None], model.classes_] = model.predict_proba(X[rows])
    return out


def neighbour_votes(neighbours, labels, n_classes, *, trusted=None):
    """Count each label among every item's neighbours.

    Parameters
    ----------
    neighbours : ndarray of shape (n_items, k)
        Neighbour rows (-1: none).
    labels : ndarray of shape (n_items,)
    n_classes : int
    trusted : ndarray of shape (n_items,), dtype bool, optional
        Only these items vote.

    Returns
    -------
    votes : ndarray of shape (n_items, n_classes), float32
    voters : ndarray of shape (n_items,)
        Neighbours that voted.

    Examples
    --------
    >>> votes, voters = neighbour_votes(np.array([[1, 2], [0, 2], [0, 1]]), np.array([0, 1, 1]), 2)
    >>> votes.tolist(), voters.tolist()
    ([[0.0, 2.0], [1.0, 1.0], [1.0, 1.0]], [2, 2, 2])
    """
    n, k = neighbours.shape
    valid = neighbours >= 0
    if trusted is not None:
        valid &= trusted[np.maximum(neighbours, 0)]
    votes = np.zeros((n, n_classes), dtype=np.float32)
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))
    np.add.at(votes, (rows[valid], labels[neighbours[valid]]), 1.0)
    return votes, valid.sum(axis=1)


def log_votes(votes, voters, prior):
    """Log of the smoothed vote shares, ``log((votes_c + prior_c) / (voters + 1))``: one pseudo-vote
    spread by the class prior, so an item with few voters leans on the prior, not on zero."""
    return np.log((votes + prior) / (voters[:, None] + 1.0)).astype(np.float32)
