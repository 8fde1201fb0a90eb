"""The prototype step: move class embeddings towards the items given to them, when the class is
recognised. Pure functions of per-class sums of normalised rows (``GroupStats.dense``), so the step
streams like everything else.
"""

from __future__ import annotations

import numpy as np

from ..classify import l2_normalize
from ..crossvar import GroupStats

__all__ = ["PROTO_PRIORS", "resolve_prior", "class_sums", "moved", "recognised", "refine_class_embeddings",
           "recognised_classes", "prior_count"]

# What a class embedding is worth against its items' mean in the prototype step.
PROTO_PRIORS = ("auto", "min-count", "class")


def resolve_prior(proto_prior, n_views):
    """The prior ``"auto"`` stands for: ``"class"`` with one view, ``"min-count"`` with two or more.

    With two views an item moves a class only when both views' brackets give it that class, and the
    tail that an absent class wins from a present neighbour seldom survives in both. With one view the
    second learner is the zero-shot rule, which made that tail in the first place, so its agreement
    keeps it; the class embedding itself must then hold the class back, and one average class of the
    items (``"class"``) makes a class that gathers a small share of them move little. Measured on
    StatA's protocol and the full sets in docs/methods.md ("Robust on partial batches").

    Examples
    --------
    >>> resolve_prior("auto", 1), resolve_prior("auto", 2), resolve_prior("min-count", 1)
    ('class', 'min-count', 'min-count')
    """
    if proto_prior not in PROTO_PRIORS:
        raise ValueError(f"unknown prototype prior {proto_prior!r}; choose from {', '.join(PROTO_PRIORS)}")
    if proto_prior == "auto":
        return "class" if n_views == 1 else "min-count"
    return proto_prior


def class_sums(X, labels, n_classes, norms=None):
    """Per class, the sum of the L2-normalised rows of ``X`` with ``labels == c`` and their count;
    rows with ``labels == -1`` are left out.

    Returns
    -------
    counts : ndarray of shape (n_classes,)
    sums : ndarray of shape (n_classes, n_features)

    Examples
    --------
    >>> counts, sums = class_sums(np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]]), np.array([0, 0, -1]), 2)
    >>> counts.tolist(), np.round(sums, 3).tolist()
    ([2, 0], [[0.6, 1.8], [0.0, 0.0]])
    """
    return GroupStats.from_rows(X, labels, norms, squares=False).dense(n_classes)


def moved(class_embeddings, counts, sums, *, prior_count=0):
    """``normalize(t_c + n_c / (n_c + prior_count) * normalize(sums_c))`` for classes with items;
    the others keep their embedding.

    With ``prior_count=0`` the text anchor and the items are on an equal footing and the result
    bisects the two directions; a positive ``prior_count`` shrinks the move of a class with few
    items, whose mean direction is the least reliable.
    """
    if not prior_count >= 0:
        raise ValueError(f"prior_count must be a count >= 0, got {prior_count!r}")
    has_items = counts > 0
    weight = counts[has_items] / (counts[has_items] + prior_count)
    refined = np.array(class_embeddings, dtype=np.float64)
    refined[has_items] = l2_normalize(refined[has_items] + weight[:, None] * l2_normalize(sums[has_items]))
    return refined


def recognised(class_embeddings, counts, sums):
    """Classes whose items' mean direction the zero-shot rule labels as the class itself.

    A prototype step is only trusted for these. A class absent from a batch can still win many items
    in a pairwise bracket, on pair dimensions that encode something else (one brand of a present
    class, say); taken together those items point at the class they come from, and the cosine argmax
    over the class embeddings names that class instead. Classes with no items are not recognised.
    """
    T = np.asarray(class_embeddings, dtype=np.float64)
    return (counts > 0) & ((sums @ T.T).argmax(axis=1) == np.arange(T.shape[0]))


def prior_count(proto_prior, counts, min_count):
    """What a class embedding weighs in items: ``min_count`` (the count below which the classifier
    already distrusts a pair's statistics: the mean of that many items counts half as much as the
    text anchor), or for ``"class"`` one average class of the labelled items, ``sum(counts) / C``
    (the prior ``cotrain_gmm`` puts on its means: safer when a batch holds few of the classes)."""
    if proto_prior not in PROTO_PRIORS[1:]:
        raise ValueError(f"unknown prototype prior {proto_prior!r}; choose from {', '.join(PROTO_PRIORS[1:])}")
    return counts.sum() / counts.size if proto_prior == "class" else min_count


def refine_class_embeddings(X, class_embeddings, pred, *, prior_count=0):
    """Move each class embedding towards the mean direction of the items assigned to it
    (:func:`moved` over :func:`class_sums`); items with ``pred == -1`` are left out.

    Examples
    --------
    >>> T = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> X = np.array([[0.0, 1.0], [0.0, 1.0]])
    >>> np.round(refine_class_embeddings(X, T, np.array([0, 0])), 3).tolist()
    [[0.707, 0.707], [0.0, 1.0]]
    >>> np.round(refine_class_embeddings(X, T, np.array([0, 0]), prior_count=2), 3).tolist()
    [[0.894, 0.447], [0.0, 1.0]]
    """
    counts, sums = class_sums(X, np.asarray(pred), class_embeddings.shape[0])
    return moved(class_embeddings, counts, sums, prior_count=prior_count)


def recognised_classes(X, class_embeddings, labels):
    """:func:`recognised` over the items ``X`` with ``labels`` (-1: left out).

    Examples
    --------
    >>> T = np.eye(2)
    >>> recognised_classes(np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]]), T, np.array([0, 0, 1])).tolist()
    [True, True]
    >>> recognised_classes(np.array([[0.2, 0.8], [0.3, 0.7], [0.1, 0.9]]), T, np.array([0, 0, 1])).tolist()
    [False, True]
    """
    counts, sums = class_sums(X, np.asarray(labels), np.shape(class_embeddings)[0])
    return recognised(class_embeddings, counts, sums)
