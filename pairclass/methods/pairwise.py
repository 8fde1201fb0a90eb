"""The bracket methods as plans of passes: pairwise, proto, cotrain and joint.

- ``pairwise``: the seed method, one :class:`~pairclass.PairwiseClassifier` per view (2 scans).
- ``proto``: pairwise with Fisher matches, then one prototype step: each *recognised* class
  embedding moves towards the mean direction of the ``n`` items the first bracket gave it
  (``normalize(t + n / (n + prior) * mean)``), and pairwise again (4 scans).
- ``cotrain``: two views. Each view runs ``proto``'s first half; the items on whose class the two
  views' brackets then agree become the labels: the pair statistics and the prototypes come only from
  them, a class moves when either view recognises it, and each view is bracketed once more (5 scans;
  6 with ``cos_min``/``diff_min``, whose filters depend on the moved embeddings).
- ``joint``: one label per item from both views at once: ``proto`` on the concatenated,
  per-view-normalised embeddings (a cosine there is the mean of the views' cosines).

Why only recognised classes move: a class absent from a batch can still win many items in the
bracket, on pair dimensions that encode something else (a brand of a present class). Taken together
those items point at the class they come from, and the zero-shot rule says so. Why a prior on the
class embedding: an absent class still collects a few items, the tail of a present neighbour; moved
all the way onto them, its embedding would sit inside that neighbour and draw more of its items.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from .passes import Pass, Predict
from .prototypes import moved, prior_count, recognised

__all__ = ["Context", "baseline", "pairwise", "proto", "cotrain", "joint"]


class Context:
    """What a plan is built from: the estimator (the settings), the class embeddings, the inputs.

    Parameters
    ----------
    estimator : PairwiseClassifier
        Its parameters are the settings of every classifier a plan makes (cloned).
    class_embeddings : ndarray of shape (n_classes, n_features)
        L2-normalised.
    inputs : sequence of str
        The views each batch carries.
    proto_prior : {"min-count", "class"}
        What a class embedding is worth in the prototype step (:func:`prototypes.prior_count`).
    """

    def __init__(self, estimator, class_embeddings, inputs, *, proto_prior="min-count"):
        self.estimator = estimator
        self.class_embeddings = class_embeddings
        self.inputs = tuple(inputs)
        self.proto_prior = proto_prior

    def classifier(self, class_embeddings, match):
        """A started clone of the estimator on ``class_embeddings``; ``match`` unless one was set."""
        clf = clone(self.estimator).set_params(
            class_embeddings=class_embeddings, class_names=None, match=self.estimator.match or match)
        return clf.start(class_embeddings.shape[1])

    def prior(self, counts):
        return prior_count(self.proto_prior, counts, self.estimator.min_count)


def baseline(ctx):
    """Full-embedding cosine argmax per view (1 scan)."""
    from ..classify import baseline_scores

    T = ctx.class_embeddings

    def predict(batch):
        out = {}
        for v in ctx.inputs:
            pred, top, margin = baseline_scores(batch.x(v), T, batch.norms(v))
            out[v] = {"pred": pred, "confidence": margin, "top_cos": top, "margin": margin}
        return out

    yield from ()  # no pass: the predictions need nothing learned
    return Predict(predict)


def _statistics(clf, codes=None):
    """A pass's map: each input's pair statistics (grouped by ``codes(batch)`` when given)."""

    def map_(batch):
        return {v: c.statistics(batch.x(v), None if codes is None else codes(batch), batch.norms(v))
                for v, c in clf.items()}

    return map_


def _fit(clf, stats):
    for v, c in clf.items():
        c.fit_statistics(stats[v])
    return clf


def _predict(clf, joint=False):
    def map_(batch):
        out = {}
        for v, c in clf.items():
            d = c._decide(batch.x(v), batch.norms(v))
            out[v] = {"pred": d.pred, "confidence": d.confidence}
        return out

    return Predict(map_, {v: {"n_fallback_pairs": c.n_fallback_pairs_} for v, c in clf.items()}, joint=joint)


def _class_sums(clf, labels):
    """A pass's map: per input, the class sums of the rows grouped by ``labels(batch, input)``."""
    from ..crossvar import GroupStats

    def map_(batch):
        out = {}
        for v in clf:
            X, codes = batch.x(v), labels(batch, v)
            keep = codes >= 0
            out[v] = GroupStats.from_rows(X[keep], codes[keep], batch.norms(v)[keep], squares=False)
        return out

    return map_


def pairwise(ctx):
    """The seed method (2 scans)."""
    clf = {v: ctx.classifier(ctx.class_embeddings, "cosine") for v in ctx.inputs}
    stats = yield Pass("pair statistics", _statistics(clf))
    return _predict(_fit(clf, stats))


def _proto_stage(ctx, inputs):
    """``proto``'s first half, per input: a Fisher bracket, then its recognised classes moved towards
    their items. Returns the refined class embeddings per input (3 scans)."""
    T = ctx.class_embeddings
    first = {v: ctx.classifier(T, "fisher") for v in inputs}
    _fit(first, (yield Pass("pair statistics", _statistics(first))))
    sums = yield Pass("prototypes", _class_sums(first, lambda b, v: first[v]._decide(b.x(v), b.norms(v)).pred))
    C = T.shape[0]
    refined = {}
    for v in inputs:
        counts, s = sums[v].dense(C)
        refined[v] = np.where(recognised(T, counts, s)[:, None], moved(T, counts, s, prior_count=ctx.prior(counts)), T)
    second = {v: ctx.classifier(refined[v], "fisher") for v in inputs}
    return _fit(second, (yield Pass("pair statistics", _statistics(second))))


def proto(ctx, joint=False):
    """Pairwise, one prototype step, pairwise again (4 scans)."""
    return _predict((yield from _proto_stage(ctx, ctx.inputs)), joint=joint)


def agreed_stage(ctx):
    """``cotrain``'s first stage: each view's ``proto`` stage, the classes its bracket and the other
    view's agree on (-1 where they disagree), and the class embeddings moved towards those items for
    the classes either view recognises.

    Returns
    -------
    refined : dict
        View -> refined class embeddings.
    stats : dict
        View -> statistics of the agreed items (pair statistics when no filter applies).
    agreed : callable
        ``agreed(batch)``: the agreed class per row, recomputed from the stage's classifiers.
    """
    a, b = ctx.inputs
    stage = yield from _proto_stage(ctx, ctx.inputs)

    def agreed(batch):
        def compute():
            pa, pb = (stage[v]._decide(batch.x(v), batch.norms(v)).pred for v in (a, b))
            return np.where(pa == pb, pa, -1)

        return batch.memo(("agreed", id(stage)), compute)

    from ..crossvar import GroupStats

    def map_(batch):
        codes = agreed(batch)
        keep = codes >= 0
        return {v: GroupStats.from_rows(batch.x(v)[keep], codes[keep], batch.norms(v)[keep]) for v in (a, b)}

    stats = yield Pass("agreed prototypes", map_)
    T = ctx.class_embeddings
    C = T.shape[0]
    dense = {v: stats[v].dense(C) for v in (a, b)}
    known = np.logical_or.reduce([recognised(T, *dense[v]) for v in (a, b)])
    refined = {v: np.where(known[:, None], moved(T, *dense[v], prior_count=ctx.prior(dense[v][0])), T)
               for v in (a, b)}
    return refined, stats, agreed


def cotrain(ctx):
    """Co-training over two views (5 scans; one view: ``proto``)."""
    if len(ctx.inputs) != 2:
        return (yield from proto(ctx))
    refined, stats, agreed = yield from agreed_stage(ctx)
    final = {v: ctx.classifier(T, "fisher") for v, T in refined.items()}
    est = ctx.estimator
    if est.cos_min is not None or est.diff_min > 0:
        # The filters compare each item with the moved embeddings: one more scan.
        stats = yield Pass("pair statistics", _statistics(final, agreed))
    return _predict(_fit(final, stats))


def joint(ctx):
    """``proto`` on the views side by side (4 scans): one label per item."""
    views = ctx.inputs

    def stacked(batch):
        X = np.hstack([batch.x(v) / batch.norms(v)[:, None].astype(np.float32) for v in views])
        return {"joint": X}

    T = np.hstack([ctx.class_embeddings] * len(views)) / np.sqrt(len(views))
    inner = Context(ctx.estimator, T, ("joint",), proto_prior=ctx.proto_prior)
    plan = proto(inner, joint=True)
    request = next(plan)
    try:
        while True:
            result = yield Pass(request.label, _on_stacked(request.map, stacked))
            request = plan.send(result)
    except StopIteration as done:
        final = done.value
    return Predict(_on_stacked(final.map, stacked), final.diagnostics, joint=True)


def _on_stacked(map_, stacked):
    return lambda batch: map_(batch.with_views("joint", stacked))
