"""StatA, the robustness peer, as a streamed plan (Zanella, Fuchs, De Vleeschouwer, Ben Ayed,
"Realistic test-time adaptation of vision-language models", CVPR 2025).

A Gaussian mixture over the items of each view, one diagonal covariance per class, whose
statistics are anchored to the text: class k's mean and covariance are a blend, with weight
``beta_k = n_k / (alpha + n_k)`` (``n_k`` the items whose assignment argmax is k), of the
assignment-weighted estimates and of the *anchor*, the class embedding ``t_k`` as mean and the
zero-shot covariance ``Sigma_0`` widened by ``(t_k - mu_k)^2``. A class that wins few items keeps
the text's statistics, so an absent class neither drifts onto a present class's items nor narrows
onto a few of them. The assignments are TransCLIP's: ``z_i ∝ y_i * exp(log N(x_i; mu_k, Sigma_k)
/ 50)``, with ``y_i`` the zero-shot softmax and the log-likelihood without its log-determinant, as
published. Everything is closed form; ``alpha = 1`` in all the paper's experiments.

Scans (all sums over the items): the zero-shot temperature; ``Sigma_0``; one per iteration for the
assignment-weighted sums, sums of squares and argmax counts; the predictions (13 with 10
iterations), each O(N C D). Departures from the published code:

- no kNN Laplacian term in the assignments: it needs every item at once (O(N^2) distances), and a
  streamed plan holds only class statistics between scans;
- the zero-shot temperature is the one pairclass's TransCLIP uses (logits of unit spread across the
  classes, :func:`~pairclass.transclip.auto_temperature`), not CLIP's fixed 0.01: MiniLM's cosines
  spread ~0.11 across classes, so 0.01 makes the text prior nearly one-hot and StatA collapses onto
  the zero-shot rule (measured in docs/methods.md, "Robust on partial batches").
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from ..classify import l2_normalize
from ..transclip import temperature_spread, weighted_sums, zero_shot_log_proba
from .passes import Pass, Predict

__all__ = ["ALPHA", "N_ITER", "anchor_covariance", "log_likelihood", "assignments", "anchored_statistics", "stata"]

ALPHA = 1.0  # the anchor's weight in items: the paper's one parameter, 1 in all its experiments
N_ITER = 10  # mean and covariance updates, as published
_LIKELIHOOD_SCALE = 1 / 50  # TransCLIP's weight of the log-likelihood against the zero-shot prior


def anchor_covariance(sq_sum, S, z_sum, T, n):
    """``Sigma_0 = (1/N) sum_i sum_k y_ik (x_i - t_k)^2`` per dimension, from the items' sum of
    squares ``sq_sum`` (D,), ``S = y.T @ X`` (C, D) and ``z_sum = y.sum(0)`` (C,), with the rows of
    ``y`` summing to 1."""
    return (sq_sum - 2 * np.einsum("kd,kd->d", T, S) + z_sum @ T**2) / n


def log_likelihood(X, mu, var):
    """``-0.5 sum_d (x_d - mu_kd)^2 / var_kd`` per (item, class), in float64, shape (N, C)."""
    X = X.astype(np.float64, copy=False)
    inv = 1 / var
    return -0.5 * ((X * X) @ inv.T - 2 * X @ (mu * inv).T + (mu**2 * inv).sum(axis=1))


def assignments(X, log_text, mu, var):
    """The z-step: ``softmax(log y + log N(x; mu_k, var_k) / 50)`` per item."""
    return softmax(log_text + _LIKELIHOOD_SCALE * log_likelihood(X, mu, var), axis=1)


def anchored_statistics(S, Q, z_sum, counts, T, var0, alpha=ALPHA):
    """StatA's mean and covariance step.

    Parameters
    ----------
    S, Q : ndarray of shape (n_classes, n_features)
        ``z.T @ X`` and ``z.T @ X**2``.
    z_sum : ndarray of shape (n_classes,)
        Assignment mass per class.
    counts : ndarray of shape (n_classes,)
        Items whose assignment argmax is the class.
    T : ndarray of shape (n_classes, n_features)
        Unit class embeddings (the anchor means).
    var0 : ndarray of shape (n_features,)
        The anchor covariance (:func:`anchor_covariance`).

    Returns
    -------
    mu : ndarray of shape (n_classes, n_features)
        ``normalize(beta_k normalize(S_k) + (1 - beta_k) t_k)``.
    var : ndarray of shape (n_classes, n_features)
        ``beta_k var_k + (1 - beta_k) (var0 + (t_k - mu_k)^2)``, ``var_k`` the assignment-weighted
        squared deviation from ``mu_k``.
    """
    beta = (counts / (alpha + counts))[:, None]
    norms = np.linalg.norm(S, axis=1, keepdims=True)
    mean = np.where(norms > 0, S / np.where(norms > 0, norms, 1), T)
    mu = l2_normalize(beta * mean + (1 - beta) * T, name="anchored means")
    mass = z_sum[:, None]
    within = np.maximum(Q - 2 * mu * S + mass * mu**2, 0) / np.where(mass > 0, mass, 1)
    var = beta * within + (1 - beta) * (var0 + (T - mu) ** 2)
    return mu, np.maximum(var, np.finfo(np.float32).eps * var.max())


def stata(ctx, alpha=ALPHA, n_iter=N_ITER):
    """StatA per view, streamed (3 + ``n_iter`` scans)."""
    views = ctx.inputs
    T = l2_normalize(np.asarray(ctx.class_embeddings, dtype=np.float64))

    def unit(batch, v):
        return batch.memo(("unit", v), lambda: batch.x(v) / batch.norms(v)[:, None].astype(np.float32))

    def spread(batch):
        return {v: (temperature_spread(unit(batch, v), T).sum(), batch.n,
                    np.einsum("ij,ij->j", unit(batch, v), unit(batch, v), dtype=np.float64)) for v in views}

    moments = yield Pass("StatA temperature", spread)
    temperature = {v: moments[v][0] / moments[v][1] for v in views}
    n = moments[views[0]][1]

    def log_text(batch, v):
        return batch.memo(("StatA log_text", v), lambda: zero_shot_log_proba(unit(batch, v), T, temperature[v]))

    def zero_shot(batch):
        out = {}
        for v in views:
            y = np.exp(log_text(batch, v))
            out[v] = (weighted_sums(y, unit(batch, v)), y.sum(axis=0))
        return out

    def sums(z, X):
        X = X.astype(np.float64)
        return z.T @ X, z.T @ (X * X), z.sum(axis=0), np.bincount(z.argmax(axis=1), minlength=z.shape[1])

    start = yield Pass("StatA anchor", zero_shot)
    var0 = {v: anchor_covariance(moments[v][2], *start[v], T, n) for v in views}
    mu = dict.fromkeys(views, T)
    var = {v: np.broadcast_to(var0[v], T.shape) for v in views}
    for _ in range(n_iter):
        def step(batch, mu=mu, var=var):
            return {v: sums(assignments(unit(batch, v), log_text(batch, v), mu[v], var[v]), unit(batch, v))
                    for v in views}

        stats = yield Pass("StatA step", step)
        updated = {v: anchored_statistics(*stats[v], T, var0[v], alpha) for v in views}
        mu, var = {v: u[0] for v, u in updated.items()}, {v: u[1] for v, u in updated.items()}

    def predict(batch):
        out = {}
        for v in views:
            z = assignments(unit(batch, v), log_text(batch, v), mu[v], var[v])
            out[v] = {"pred": z.argmax(axis=1), "confidence": z.max(axis=1)}
        return out

    return Predict(predict)
