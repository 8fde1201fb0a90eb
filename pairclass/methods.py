"""Classification methods over one or two views, each returning per-view predictions.

Every method takes the views (name -> item matrix), the L2-normalised class embeddings and the
pairwise parameters, and returns a :class:`MethodOutput`. ``run.py`` runs the ones asked for and
scores them side by side.

- ``baseline``: full-embedding cosine argmax per view.
- ``pairwise``: the seed method, :class:`~pairclass.PairwiseClassifier` per view.
- ``proto``: pairwise after one transductive step that moves each class embedding towards the mean
  of the ``n`` items the pairwise method gave it (halfway on the sphere, scaled by
  ``n / (n + min_count)``), for the classes whose items' mean direction the zero-shot rule still
  labels as that class (:func:`recognised_classes`; the others keep their embedding). With
  ``proto_prior="class"`` the class embedding is worth one average class of the batch instead of
  ``min_count`` items (``n / (n + N/C)``): small classes move less, which is safer on batches
  holding only a few of the classes and costs accuracy on full catalogues. This and
  every method built on it score each match with ``PairwiseClassifier(match="fisher")``: the pair's dimensions and the full
  cosine, each against the midpoint between the pair's two pseudo-classes and weighted by its Fisher
  discriminant; ``pairwise`` keeps the seed's match.
- ``cotrain``: with two views, the pair statistics and class prototypes come only from items on whose
  class the two views' ``proto`` predictions agree, and a class moves if either view recognises it;
  then each view is re-bracketed.
- ``joint``: one label per item from both views at once: ``proto`` on the concatenated,
  per-view-normalised embeddings (a cosine there is the mean of the views' cosines).
- ``transclip``: TransCLIP-ZS, the transductive peer (see :mod:`pairclass.transclip`).
- ``cotrain_transclip``: TransCLIP-ZS anchored to the class embeddings that ``cotrain``'s first
  stage refines (towards the items whose views agree), instead of to the raw text embeddings.
- ``cotrain_gmm``: the same refined class embeddings anchor both the assignments and the class means
  of TransCLIP's Gaussian mixture (a prior worth one average class per mean), with no kNN graph, so
  it stays linear in the items and a class absent from the batch keeps its embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .classify import PairwiseClassifier, _row_chunks, _row_norms, baseline_scores, l2_normalize
from .errors import InputError

__all__ = [
    "METHODS", "DEFAULT_METHOD", "MethodOutput", "class_sums", "run_method", "refine_class_embeddings",
    "recognised_classes", "PROTO_PRIORS", "check_proto_prior",
]

METHODS = ("baseline", "pairwise", "proto", "cotrain", "joint", "transclip", "cotrain_transclip", "cotrain_gmm")
DEFAULT_METHOD = "cotrain"
# What a class embedding is worth against its items' mean in the prototype step.
PROTO_PRIORS = ("min-count", "class")
_MIN_COUNT = PairwiseClassifier().min_count


def check_proto_prior(proto_prior):
    """Raise :class:`InputError` unless ``proto_prior`` is one of :data:`PROTO_PRIORS`."""
    if proto_prior not in PROTO_PRIORS:
        raise InputError(f"unknown prototype prior {proto_prior!r}; choose from {', '.join(PROTO_PRIORS)}")


@dataclass
class MethodOutput:
    """Per-view class indices and confidences; ``joint`` methods give every view the same label."""

    pred: dict
    confidence: dict
    joint: bool = False
    diagnostics: dict = field(default_factory=dict)


def class_sums(X, pred, n_classes):
    """Per class, the sum of the L2-normalised rows of ``X`` with ``pred == c`` and their count;
    rows with ``pred == -1`` are left out.

    Chunked: a scaled one-hot product sums the normalised rows without copying ``X`` whole.

    Examples
    --------
    >>> sums, counts = class_sums(np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]]), np.array([0, 0, -1]), 2)
    >>> np.round(sums, 3).tolist(), counts.tolist()
    ([[0.6, 1.8], [0.0, 0.0]], [2, 0])
    """
    X = np.asarray(X)
    sums = np.zeros((n_classes, X.shape[1]))
    for rows in _row_chunks(X.shape[0], max(n_classes, X.shape[1])):
        chunk = X[rows]
        norms = _row_norms(chunk)
        if not norms.all():
            raise ValueError(f"X has an all-zero row at row {rows.start + np.flatnonzero(norms == 0)[0]}")
        p = pred[rows]
        kept = np.flatnonzero(p >= 0)
        weights = np.zeros((n_classes, chunk.shape[0]), dtype=chunk.dtype)
        weights[p[kept], kept] = 1 / norms[kept]
        sums += weights @ chunk
    counts = np.bincount(pred[pred >= 0], minlength=n_classes)
    return sums, counts


def refine_class_embeddings(X, class_embeddings, pred, *, prior_count=0):
    """Move each class embedding towards the mean direction of the items assigned to it.

    ``normalize(t_c + n_c / (n_c + prior_count) * normalize(mean of normalize(x) over items with
    pred == c))`` for the ``n_c`` items with ``pred == c``; items with ``pred == -1`` are left out and
    classes with no items keep their embedding. With ``prior_count=0`` the text anchor and the items
    are on an equal footing and the result bisects the two directions; a positive ``prior_count``
    shrinks the move of a class with few items, whose mean direction is the least reliable.

    Examples
    --------
    >>> T = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> X = np.array([[0.0, 1.0], [0.0, 1.0]])
    >>> np.round(refine_class_embeddings(X, T, np.array([0, 0])), 3).tolist()
    [[0.707, 0.707], [0.0, 1.0]]
    >>> np.round(refine_class_embeddings(X, T, np.array([0, 0]), prior_count=2), 3).tolist()
    [[0.894, 0.447], [0.0, 1.0]]
    """
    if not prior_count >= 0:
        raise ValueError(f"prior_count must be a count >= 0, got {prior_count!r}")
    sums, counts = class_sums(X, pred, class_embeddings.shape[0])
    return _moved(class_embeddings, sums, counts, prior_count=prior_count)


def _moved(class_embeddings, sums, counts, *, prior_count=0):
    has_items = counts > 0
    weight = counts[has_items] / (counts[has_items] + prior_count)
    refined = np.array(class_embeddings, dtype=np.float64)
    refined[has_items] = l2_normalize(
        refined[has_items] + weight[:, None] * l2_normalize(sums[has_items])
    )
    return refined


def recognised_classes(X, class_embeddings, labels):
    """Classes whose items' mean direction the zero-shot rule labels as the class itself.

    A prototype step is only trusted for these. A class absent from a batch can still win many items
    in a pairwise bracket, on pair dimensions that encode something else (one brand of a present
    class, say); taken together those items point at the class they come from, and the cosine argmax
    over the class embeddings names that class instead. Classes with no items (``labels == c``
    nowhere) are not recognised.

    Examples
    --------
    >>> T = np.eye(2)
    >>> recognised_classes(np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]]), T, np.array([0, 0, 1])).tolist()
    [True, True]
    >>> recognised_classes(np.array([[0.2, 0.8], [0.3, 0.7], [0.1, 0.9]]), T, np.array([0, 0, 1])).tolist()
    [False, True]
    """
    return _recognised(class_embeddings, *class_sums(X, labels, np.shape(class_embeddings)[0]))


def _recognised(class_embeddings, sums, counts):
    T = np.asarray(class_embeddings, dtype=np.float64)
    return (counts > 0) & ((sums @ T.T).argmax(axis=1) == np.arange(T.shape[0]))


def _refined(X, T, source, params, recognised=None):
    """``refine_class_embeddings`` for the ``recognised`` classes (default: those ``X`` recognises from
    ``source``); the others keep their embedding. One pass over ``X`` for both.

    The prior count is the classifier's ``min_count``, the number of items below which it already
    distrusts a class's statistics: the mean of that many items counts half as much as the text
    anchor, the mean of many items nearly as much. With ``proto_prior="class"`` it is the labelled
    items per class, the prior ``cotrain_gmm`` puts on its means.
    An absent class can still collect a few items, the tail of a present neighbour; moved all the
    way, its embedding would sit inside that neighbour and draw more of its items."""
    sums, counts = class_sums(X, source, T.shape[0])
    if recognised is None:
        recognised = _recognised(T, sums, counts)
    if params.get("proto_prior", "min-count") == "class":
        prior_count = counts.sum() / counts.size
    else:
        prior_count = params.get("min_count", _MIN_COUNT)
    return np.where(recognised[:, None], _moved(T, sums, counts, prior_count=prior_count), T)


def _pairwise(X, T, params, pseudo_labels=None):
    clf = PairwiseClassifier(**{k: v for k, v in params.items() if k != "proto_prior"})
    clf.fit(X, T, pseudo_labels=pseudo_labels)
    return clf.decide(X), clf.n_fallback_pairs_


def _proto(X, T, params, pseudo_labels=None, recognised=None):
    """Pairwise, one prototype step, pairwise again (statistics from ``pseudo_labels`` if given; the
    step moves the ``recognised`` classes, by default those this view recognises)."""
    first, _ = _pairwise(X, T, params, pseudo_labels)
    source = first.pred if pseudo_labels is None else pseudo_labels
    return _pairwise(X, _refined(X, T, source, params, recognised), params, pseudo_labels)


def _agreed_sources(views, T, params):
    """Per view, the labels that refine its class embeddings: ``proto``'s predictions, kept (with
    two views) only where both views' predictions agree, -1 elsewhere; and the classes to refine,
    those that any view recognises from those labels."""
    sources = {v: _proto(X, T, params)[0].pred for v, X in views.items()}
    if len(views) == 2:
        a, b = sources.values()
        sources = dict.fromkeys(views, np.where(a == b, a, -1))
    recognised = np.logical_or.reduce([recognised_classes(X, T, sources[v]) for v, X in views.items()])
    return sources, recognised


def _transclip(views, class_embeddings, seed, **params):
    """TransCLIP-ZS per view; ``class_embeddings`` maps each view to its class embeddings and
    ``params`` go to :class:`~pairclass.transclip.TransCLIPClassifier`."""
    from .transclip import TransCLIPClassifier

    out = {}
    for v, X in views.items():
        proba = TransCLIPClassifier(seed=seed, **params).fit(X, class_embeddings[v]).predict_proba(X)
        out[v] = (proba.argmax(axis=1), proba.max(axis=1))
    return MethodOutput({v: o[0] for v, o in out.items()}, {v: o[1] for v, o in out.items()})


def run_method(method, views, class_embeddings, params):
    """Run one method over the views.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    views : dict
        View name -> item matrix of shape (n_items, n_features).
    class_embeddings : ndarray of shape (n_classes, n_features)
        L2-normalised.
    params : dict
        :class:`PairwiseClassifier` parameters (``k``, ``cos_min``, ``diff_min``, ``candidates``,
        ``min_count``, ``seed``, ``tournament``, ``match``). ``match`` None or absent: the
        method's own, ``"cosine"`` for ``pairwise`` and ``"fisher"`` for the methods built on ``proto``.
        Optional ``proto_prior``, one of :data:`PROTO_PRIORS` (default ``"min-count"``): what a
        class embedding is worth in the prototype step (see :mod:`pairclass.methods`).

    Returns
    -------
    MethodOutput
    """
    T = class_embeddings
    check_proto_prior(params.get("proto_prior", "min-count"))
    if params.get("match") is None:
        params = dict(params, match="cosine" if method == "pairwise" else "fisher")
    if method == "baseline":
        out = {v: baseline_scores(X, T) for v, X in views.items()}
        return MethodOutput({v: o[0] for v, o in out.items()}, {v: o[2] for v, o in out.items()})
    if method in ("pairwise", "proto"):
        step = _pairwise if method == "pairwise" else _proto
        out = {v: step(X, T, params) for v, X in views.items()}
        return MethodOutput(
            {v: d.pred for v, (d, _) in out.items()},
            {v: d.confidence for v, (d, _) in out.items()},
            diagnostics={v: {"n_fallback_pairs": n} for v, (_, n) in out.items()},
        )
    if method == "cotrain":
        if len(views) == 2:
            agreed, recognised = _agreed_sources(views, T, params)
            out = {v: _proto(X, T, params, agreed[v], recognised) for v, X in views.items()}
        else:
            out = {v: _proto(X, T, params) for v, X in views.items()}
        return MethodOutput(
            {v: d.pred for v, (d, _) in out.items()},
            {v: d.confidence for v, (d, _) in out.items()},
        )
    if method == "joint":
        widths = np.cumsum([0] + [X.shape[1] for X in views.values()])
        stacked = np.empty((len(next(iter(views.values()))), widths[-1]), dtype=np.float32)
        for X, lo, hi in zip(views.values(), widths[:-1], widths[1:]):
            stacked[:, lo:hi] = X / _row_norms(X)[:, None]
        decision, _ = _proto(stacked, np.hstack([T] * len(views)), params)
        return MethodOutput(
            {v: decision.pred for v in views},
            {v: decision.confidence for v in views},
            joint=True,
        )
    if method == "transclip":
        return _transclip(views, dict.fromkeys(views, T), params.get("seed", 0))
    if method in ("cotrain_transclip", "cotrain_gmm"):
        sources, recognised = _agreed_sources(views, T, params)
        refined = {v: _refined(X, T, sources[v], params, recognised) for v, X in views.items()}
        gmm = dict(n_neighbors=0, mean_prior=1.0) if method == "cotrain_gmm" else {}
        return _transclip(views, refined, params.get("seed", 0), **gmm)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
