"""The bracket methods as plans of passes: pairwise, proto, cotrain and joint.

- ``pairwise``: the seed method, one :class:`~pairclass.PairwiseClassifier` per view (2 scans).
- ``proto``: pairwise with Fisher matches, then one prototype step: each *recognised* class
  embedding moves towards the mean direction of the ``n`` items the first bracket gave it
  (``normalize(t + n / (n + prior) * mean)``), and pairwise again (4 scans).
- ``cotrain``: two views. Each view runs ``proto``'s first half; the items on whose class the two
  views' brackets then agree become the labels: the pair statistics and the prototypes come only from
  them, a class moves when either view recognises it, and each view is bracketed once more (5 scans;
  6 with ``cos_min``/``diff_min``, whose filters depend on the moved embeddings). With one view the
  second learner is the zero-shot rule: the labels are the items on which the bracket and the
  full-embedding cosine agree.
- ``joint``: one label per item from both views at once: ``proto`` on the concatenated,
  per-view-normalised embeddings (a cosine there is the mean of the views' cosines).

Why two learners must agree: a class the batch barely holds (absent, or a few items among a big
neighbour's thousands) wins the tail of that neighbour, and its prototype, moved onto those items,
would draw more of them. Items two learners of different kinds give the same class are rarely such a
tail. With one view the zero-shot rule is that second learner: on full fashion-sub (one view, 27
classes) learning only from the items it agrees on keeps +4.0 points over the baseline where
learning from every bracket label kept +2.2, and it lifts every partial-batch setting of fashion-13
(with the ``min-count`` prior; docs/methods.md, "Robust on partial batches"). The zero-shot rule made
the tail an absent class wins, though, so its agreement keeps that tail: with one view the default
prior is one average class (:func:`prototypes.resolve_prior`).

Why only recognised classes move: a class absent from a batch can still win many items in the
bracket, on pair dimensions that encode something else (a brand of a present class). Taken together
those items point at the class they come from, and the zero-shot rule says so. Why a prior on the
class embedding: an absent class still collects a few items, the tail of a present neighbour; moved
all the way onto them, its embedding would sit inside that neighbour and draw more of its items.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.base import clone

from ..classify import baseline_scores
from .passes import Pass, Predict
from .prototypes import moved, prior_count, recognised, resolve_prior

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
    proto_prior : {"auto", "min-count", "class"}
        What a class embedding is worth in the prototype step (:func:`prototypes.prior_count`);
        ``"auto"`` is resolved here by the number of inputs (:func:`prototypes.resolve_prior`).
    """

    def __init__(self, estimator, class_embeddings, inputs, *, proto_prior="auto"):
        self.estimator = estimator
        self.class_embeddings = class_embeddings
        self.inputs = tuple(inputs)
        self.proto_prior = resolve_prior(proto_prior, len(self.inputs))

    def classifier(self, class_embeddings, match):
        """A started clone of the estimator on ``class_embeddings``; ``match`` unless one was set."""
        clf = clone(self.estimator).set_params(
            class_embeddings=class_embeddings, class_names=None, match=self.estimator.match or match)
        return clf.start(class_embeddings.shape[1])

    def prior(self, counts):
        return prior_count(self.proto_prior, counts, self.estimator.min_count)


def baseline(ctx):
    """Full-embedding cosine argmax per view (1 scan)."""
    T = ctx.class_embeddings

    def predict(batch):
        out = {}
        for v in ctx.inputs:
            pred, top, margin, share = baseline_scores(batch.x(v), T, batch.norms(v), probability=True)
            out[v] = {"pred": pred, "confidence": share, "top_cos": top, "margin": margin}
        return out

    yield from ()  # no pass: the predictions need nothing learned
    return Predict(predict)


def _digest(*arrays):
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _statistics(clf, codes=None):
    """A pass's map: each input's pair statistics (grouped by ``codes(batch)`` when given).

    Zero-shot statistics depend only on the class embeddings and the filters, so plans that ask for
    the same ones in one scan (``pairwise`` beside ``cotrain``, say) share one computation."""
    keys = {v: ("statistics", v, _digest(c.class_embeddings_), c.cos_min, c.diff_min) for v, c in clf.items()}

    def map_(batch):
        if codes is not None:
            labels = codes(batch)
            return {v: c.statistics(batch.x(v), labels, batch.norms(v)) for v, c in clf.items()}
        return {v: batch.memo(keys[v], lambda v=v, c=c: c.statistics(batch.x(v), None, batch.norms(v)))
                for v, c in clf.items()}

    return map_


def decisions(clf, view):
    """``decide(batch)``: the fitted classifier's decisions on the batch's ``view``, computed once per
    batch for every plan holding an identical classifier."""
    fitted = clf.stats_
    parts = [clf.class_embeddings_, fitted.keys, fitted.count, fitted.units]
    if fitted.squares_hi is not None:
        parts += [fitted.squares_hi, fitted.squares_lo]
    key = ("decide", view, _digest(*parts), clf.match, clf.k, clf.min_count, clf.seed, clf.tournament,
           clf.candidates)

    def decide(batch):
        return batch.memo(key, lambda: clf._decide(batch.x(view), batch.norms(view)))

    return decide


def _fit(clf, stats):
    for v, c in clf.items():
        c.fit_statistics(stats[v])
    return clf


def _predict(clf, joint=False):
    decide = {v: decisions(c, v) for v, c in clf.items()}

    def map_(batch):
        out = {}
        for v in clf:
            d = decide[v](batch)
            out[v] = {"pred": d.pred, "confidence": d.confidence, "margin": d.margin}
        return out

    return Predict(map_, {v: {"n_fallback_pairs": c.n_fallback_pairs_} for v, c in clf.items()}, joint=joint,
                   classifiers=dict(clf))


def _class_sums(clf, labels):
    """A pass's map: per input, the class sums of the rows grouped by ``labels(batch, input)``."""
    from ..crossvar import GroupStats

    def map_(batch):
        out = {}
        for v in clf:
            out[v] = GroupStats.from_rows(batch.x(v), labels(batch, v), batch.norms(v), squares=False)
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
    decide = {v: decisions(c, v) for v, c in first.items()}
    sums = yield Pass("prototypes", _class_sums(first, lambda b, v: decide[v](b).pred))
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
    """``cotrain``'s first stage: each view's ``proto`` stage, the classes the two views' brackets
    agree on (-1 where they disagree; with one view, where its bracket and the zero-shot cosine argmax
    disagree), and the class embeddings moved towards those items for the classes either view
    recognises.

    Returns
    -------
    refined : dict
        View -> refined class embeddings.
    stats : dict
        View -> statistics of the agreed items (pair statistics when no filter applies).
    agreed : callable
        ``agreed(batch)``: the agreed class per row, recomputed from the stage's classifiers.
    """
    views = ctx.inputs
    T = ctx.class_embeddings
    stage = yield from _proto_stage(ctx, views)
    decide = {v: decisions(c, v) for v, c in stage.items()}

    zero_shot_key = ("zero-shot", views[0], _digest(T))

    def agreed(batch):
        preds = [decide[v](batch).pred for v in views]
        if len(preds) == 1:
            preds.append(batch.memo(zero_shot_key,
                                    lambda: baseline_scores(batch.x(views[0]), T, batch.norms(views[0]))[0]))
        return np.where(preds[0] == preds[1], preds[0], -1)

    from ..crossvar import GroupStats

    def map_(batch):
        codes = agreed(batch)
        return {v: GroupStats.from_rows(batch.x(v), codes, batch.norms(v)) for v in views}

    stats = yield Pass("agreed prototypes", map_)
    C = T.shape[0]
    dense = {v: stats[v].dense(C) for v in views}
    known = np.logical_or.reduce([recognised(T, *dense[v]) for v in views])
    refined = {v: np.where(known[:, None], moved(T, *dense[v], prior_count=ctx.prior(dense[v][0])), T)
               for v in views}
    return refined, stats, agreed


def cotrain(ctx):
    """Co-training over two views, or over one view and the zero-shot rule (5 scans)."""
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
    return Predict(_on_stacked(final.map, stacked), final.diagnostics, joint=True, classifiers=final.classifiers)


def _on_stacked(map_, stacked):
    return lambda batch: map_(batch.with_views("joint", stacked))
