"""Evidence to one probability per class: a weighted product of experts with class offsets.

``log p(c | i) = sum_s w_s F_s[i, c] + b_c - log Z_i``, where each ``F_s`` is one signal's
log-probabilities (or scores), ``w_s >= 0`` its weight and ``b`` per-class offsets (sum zero), all
fitted by maximum likelihood of the given labels. With one signal this is temperature scaling plus
class offsets. Weights are per signal, so the fit has ``n_signals + n_classes`` parameters and no
minority of wrong labels can be memorised; a signal that adds nothing gets a weight near zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

__all__ = ["Product", "fit_product"]

# A weak ridge on the offsets keeps them finite when a class has no labelled item.
_RIDGE = 1e-3
# The fit runs on a seeded sample of at most this many items (n_signals + n_classes parameters), and
# of at most this many feature values (so thousands of classes stay within memory).
MAX_FIT_ITEMS = 100_000
MAX_FIT_VALUES = 50_000_000
_CHUNK = 65_536


@dataclass(frozen=True)
class Product:
    """A fitted product of experts.

    Attributes
    ----------
    weights : ndarray of shape (n_signals,)
    offset : ndarray of shape (n_classes,)
    nll : float
        Mean negative log-likelihood of the given labels at the fit (with the ridge term).
    """

    weights: np.ndarray
    offset: np.ndarray
    nll: float

    def log_proba(self, features):
        """Log-probabilities of shape (n_items, n_classes) for a list of (n_items, n_classes) features."""
        n = features[0].shape[0]
        out = np.empty(features[0].shape, dtype=np.float64)
        for start in range(0, n, _CHUNK):
            rows = slice(start, start + _CHUNK)
            z = sum(w * np.asarray(F[rows], dtype=np.float64) for w, F in zip(self.weights, features))
            out[rows] = log_softmax(z + self.offset, axis=1)
        return out

    def proba(self, features):
        return np.exp(self.log_proba(features))


def fit_product(features, labels, *, fit_on=None, seed=0):
    """Fit the weights and offsets of a product of experts to the given labels.

    Parameters
    ----------
    features : list of ndarray of shape (n_items, n_classes)
    labels : ndarray of shape (n_items,)
        Class indices.
    fit_on : ndarray of shape (n_items,), dtype bool, optional
        Fit on these items only (the audit's second round: the labels the first did not flag).
    seed : int
        Seeds the sample of at most ``MAX_FIT_ITEMS`` items (and ``MAX_FIT_VALUES`` values).

    Returns
    -------
    Product

    Examples
    --------
    >>> s = np.array([[1.0, -1.0], [0.5, -0.5], [-1.0, 1.0], [-0.2, 0.2], [0.3, -0.3]])
    >>> fit = fit_product([s], np.array([0, 0, 1, 1, 0]))
    >>> bool(fit.weights[0] > 0), fit.log_proba([s]).argmax(axis=1).tolist()
    (True, [0, 0, 1, 1, 0])
    """
    rows = np.arange(labels.size) if fit_on is None else np.flatnonzero(fit_on)
    most = min(MAX_FIT_ITEMS, max(1_000, MAX_FIT_VALUES // (len(features) * features[0].shape[1])))
    if rows.size > most:
        rows = np.sort(np.random.default_rng(seed).choice(rows, most, replace=False))
    F = np.stack([np.asarray(f[rows], dtype=np.float64) for f in features])
    y = labels[rows]
    S, n, C = F.shape
    onehot = np.zeros((n, C))
    onehot[np.arange(n), y] = 1.0

    def nll(params):
        w, offset = params[:S], params[S:]
        logp = log_softmax(np.tensordot(w, F, axes=1) + offset, axis=1)
        resid = np.exp(logp) - onehot
        value = -logp[np.arange(n), y].sum() / n + _RIDGE * offset @ offset
        grad_w = np.einsum("snc,nc->s", F, resid) / n
        grad_offset = resid.sum(axis=0) / n + 2 * _RIDGE * offset
        return value, np.concatenate([grad_w, grad_offset])

    spread = np.array([f.std() for f in F])
    start = np.concatenate([1.0 / S / np.where(spread > 0, spread, 1.0), np.zeros(C)])
    fit = minimize(nll, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * S + [(None, None)] * C)
    offset = fit.x[S:] - fit.x[S:].mean()
    return Product(fit.x[:S].copy(), offset, float(fit.fun))
