"""The mixture methods as plans: TransCLIP-ZS (the transductive peer) and the two anchored to
``cotrain``'s refined class embeddings.

- ``transclip``: TransCLIP-ZS per view (:mod:`pairclass.transclip`). Its kNN graph needs every item at
  once: the plan gathers the views in memory, so it refuses more than :data:`IN_MEMORY_LIMIT` items.
- ``cotrain_transclip``: TransCLIP-ZS anchored to the class embeddings ``cotrain``'s first stage
  refines towards the items whose views agree, instead of to the raw text embeddings (in memory too).
- ``cotrain_gmm``: the same refined embeddings anchor TransCLIP's Gaussian mixture twice: the
  assignments (KL term) and the class means (a prior at each refined embedding worth one average
  class, N/C items, as in StatA). No kNN graph, so it streams: one scan per mixture iteration.
"""

from __future__ import annotations

import numpy as np

from ..classify import l2_normalize
from ..transclip import (
    TransCLIPClassifier, anchored_means, assignments, temperature_spread, update_mixture, weighted_sums,
    zero_shot_log_proba,
)
from .pairwise import agreed_stage
from .passes import Pass, Predict, Rows

__all__ = ["IN_MEMORY_LIMIT", "transclip", "cotrain_transclip", "cotrain_gmm"]

# Items up to which the kNN-graph methods run: their graph costs O(N^2 D) and they hold every view.
IN_MEMORY_LIMIT = 200_000
# TransCLIP-ZS's published zero-shot settings, which the streamed mixture shares.
_DEFAULTS = TransCLIPClassifier(None)


def _in_memory(ctx, class_embeddings):
    """Gather every view (1 scan), solve TransCLIP-ZS per view on its class embeddings, and hand
    the rows' assignments out in the last scan."""
    rows = yield Pass("gather items", lambda b: Rows.of(b.start, {v: b.x(v) for v in ctx.inputs}))
    views = rows.stacked()
    proba = {v: TransCLIPClassifier(class_embeddings[v], seed=ctx.estimator.seed).fit(X).predict_proba(X)
             for v, X in views.items()}

    def predict(batch):
        rows = slice(batch.start, batch.start + batch.n)
        return {v: {"pred": p[rows].argmax(axis=1), "confidence": p[rows].max(axis=1)} for v, p in proba.items()}

    return Predict(predict)


def transclip(ctx):
    """TransCLIP-ZS per view (2 scans, in memory)."""
    return (yield from _in_memory(ctx, dict.fromkeys(ctx.inputs, ctx.class_embeddings)))


def cotrain_transclip(ctx):
    """TransCLIP-ZS on ``cotrain``'s refined class embeddings (6 scans, in memory)."""
    refined, _, _ = yield from agreed_stage(ctx)
    return (yield from _in_memory(ctx, refined))


def cotrain_gmm(ctx, mean_prior=1.0):
    """TransCLIP's mixture without its graph, anchored to ``cotrain``'s refined class embeddings
    (``cotrain``'s 4 scans, then 2 + ``n_iter`` for the mixture and the predictions)."""
    refined, _, _ = yield from agreed_stage(ctx)
    views = ctx.inputs
    T = {v: l2_normalize(refined[v].astype(np.float32)) for v in views}

    def unit(batch, v):
        return batch.memo(("unit", v), lambda: batch.x(v) / batch.norms(v)[:, None].astype(np.float32))

    def spread(batch):
        return {v: (temperature_spread(unit(batch, v), T[v]).sum(), batch.n,
                    np.einsum("ij,ij->j", unit(batch, v), unit(batch, v), dtype=np.float64)) for v in views}

    moments = yield Pass("mixture temperature", spread)
    temperature = {v: moments[v][0] / moments[v][1] for v in views}
    n = moments[views[0]][1]
    sq_sum = {v: moments[v][2] for v in views}
    prior_mass = mean_prior * n / refined[views[0]].shape[0]
    lam = _DEFAULTS.lambda_

    def log_text(batch, v):
        return batch.memo(("log_text", v), lambda: zero_shot_log_proba(unit(batch, v), T[v], temperature[v]))

    def start(batch):
        return {v: weighted_sums(np.exp(log_text(batch, v)), unit(batch, v)) for v in views}

    S = yield Pass("mixture start", start)
    mu = {v: anchored_means(S[v], T[v], prior_mass) for v in views}
    var = {v: np.full(T[v].shape[1], 1.0 / T[v].shape[1]) for v in views}

    def z(batch, v, mu, var):
        return assignments(unit(batch, v), lam * log_text(batch, v), mu[v], var[v])

    for _ in range(_DEFAULTS.n_iter):
        def step(batch, mu=mu, var=var):
            out = {}
            for v in views:
                zv = z(batch, v, mu, var)
                out[v] = (weighted_sums(zv, unit(batch, v)), zv.sum(axis=0))
            return out

        sums = yield Pass("mixture step", step)
        updated = {v: update_mixture(sums[v][0], sums[v][1], sq_sum[v], n, mu[v], T[v], prior_mass)
                   for v in views}
        mu, var = {v: u[0] for v, u in updated.items()}, {v: u[1] for v, u in updated.items()}

    def predict(batch):
        out = {}
        for v in views:
            zv = z(batch, v, mu, var)
            out[v] = {"pred": zv.argmax(axis=1), "confidence": zv.max(axis=1)}
        return out

    return Predict(predict)
