"""TransCLIP-ZS: transductive zero-shot classification (Zanella, Gérin, Ben Ayed, NeurIPS 2024).

A peer method, implemented from the paper's description. Over the unlabelled items it fits a Gaussian
mixture (class means on the unit sphere, one diagonal covariance shared by all classes), ties each item's
assignment to its k nearest neighbours (a Laplacian term on a sparse kNN cosine graph) and anchors the
assignments to the zero-shot text predictions with a KL penalty of weight ``lambda_``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .classify import check_classes, l2_normalize, row_chunks

__all__ = ["TransCLIPClassifier", "transclip_zs", "knn_graph", "auto_temperature", "assignments", "update_mixture",
           "zero_shot_log_proba", "temperature_spread", "anchored_means", "weighted_sums"]

# Constants of the published zero-shot setting.
_N_CONFIDENT = 8  # items per class whose mean starts that class's Gaussian
_Z_STEPS = 5  # assignment fixed-point steps per outer iteration
_LIKELIHOOD_SCALE = 1 / 50  # weight of the Gaussian log-likelihood in the assignment update


def auto_temperature(X, class_embeddings):
    """Temperature giving zero-shot logits of unit spread: the mean over items of the standard
    deviation of the item's cosines across classes.

    CLIP's fixed ``0.01`` assumes CLIP's cosine scale; this adapts to any embedding model.

    Examples
    --------
    >>> round(auto_temperature(np.array([[1.0, 0.0], [0.0, 1.0]]), np.eye(2)), 3)
    0.5
    """
    Xn = l2_normalize(np.asarray(X, dtype=np.float64))
    T = l2_normalize(np.asarray(class_embeddings, dtype=np.float64), name="class_embeddings")
    return float(temperature_spread(Xn, T).sum() / Xn.shape[0])


def temperature_spread(X, class_embeddings):
    """Per unit row of ``X``, the standard deviation of its cosines across the classes (float64);
    their mean is :func:`auto_temperature`."""
    return _matmul(X, class_embeddings.T).std(axis=1)


def knn_graph(X, n_neighbors):
    """Sparse kNN affinity graph of the rows of ``X`` (assumed L2-normalised), self excluded.

    Row ``i`` holds the cosines of ``i`` to its ``n_neighbors`` most similar other rows. Built from
    chunked ``X @ X.T`` blocks with ``argpartition``, so memory stays O(N * (k + chunk)).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_items, n_items)

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> knn_graph(X, 1).toarray().round(1).tolist()
    [[0.0, 0.8, 0.0], [0.8, 0.0, 0.0], [0.0, 0.6, 0.0]]
    """
    n = X.shape[0]
    k = min(n_neighbors, n - 1)
    cols = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=np.float64)
    for rows in row_chunks(n, n):
        sim = X[rows] @ X.T
        local = np.arange(sim.shape[0])
        sim[local, rows.start + local] = -np.inf
        top = np.argpartition(sim, -k, axis=1)[:, -k:]
        cols[rows] = top
        vals[rows] = np.take_along_axis(sim, top, axis=1)
    return sparse.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def transclip_zs(X, class_embeddings, *, lambda_=1.0, n_neighbors=3, n_iter=10, temperature=0.01, mean_prior=None):
    """TransCLIP-ZS assignments of the items ``X`` to the classes ``class_embeddings``.

    Parameters
    ----------
    X : ndarray of shape (n_items, n_features)
        Item embeddings (normalised here).
    class_embeddings : ndarray of shape (n_classes, n_features)
        Class (text) embeddings (normalised here).
    lambda_, n_neighbors, n_iter, temperature, mean_prior
        See :class:`TransCLIPClassifier`; ``temperature`` is a float here.

    Returns
    -------
    pred : ndarray of shape (n_items,)
        Argmax class index.
    proba : ndarray of shape (n_items, n_classes)
        Final assignments ``z`` (rows sum to 1).

    Examples
    --------
    >>> X = np.array([[1.0, 0.1], [0.9, 0.3], [0.2, 1.0], [0.1, 0.9]])
    >>> transclip_zs(X, np.eye(2), n_neighbors=1)[0].tolist()
    [0, 0, 1, 1]
    """
    X = l2_normalize(X)
    T = l2_normalize(np.asarray(class_embeddings, dtype=X.dtype), name="class_embeddings")
    n, d = X.shape
    log_text = zero_shot_log_proba(X, T, temperature)
    log_prior = lambda_ * log_text
    z = np.exp(log_text)
    laplacian = None
    if n_neighbors:
        W = knn_graph(X, n_neighbors)
        laplacian = (W + W.T).tocsr() / (2 * n_neighbors)
    prior_mass = None if mean_prior is None else mean_prior * n / T.shape[0]
    mu = _initial_means(X, z) if prior_mass is None else anchored_means(weighted_sums(z, X), T, prior_mass)
    var = np.full(d, 1.0 / d)
    sq_sum = np.einsum("ij,ij->j", X, X, dtype=np.float64)
    for step in range(n_iter + 1):
        z = assignments(X, log_prior, mu, var, laplacian, z)
        if step == n_iter:
            break
        mu, var = update_mixture(weighted_sums(z, X), z.sum(axis=0), sq_sum, n, mu, T, prior_mass)
    return z.argmax(axis=1), z


def zero_shot_log_proba(X, class_embeddings, temperature):
    """``log softmax(cos(x, T) / temperature)`` for unit rows ``X`` and ``class_embeddings``."""
    return _log_softmax(_matmul(X, class_embeddings.T) / temperature)


def assignments(X, log_prior, mu, var, laplacian=None, z=None):
    """The z-step: ``z_i ∝ prior_i * exp(log p_i / 50 + sum_j L_ij z_j)``, 5 fixed-point steps with
    the graph term (which reads ``z``); without it one step is the fixed point."""
    log_lik = _log_likelihood(X, mu, var)
    for _ in range(_Z_STEPS if laplacian is not None else 1):
        logits = log_prior + _LIKELIHOOD_SCALE * log_lik
        z = np.exp(_log_softmax(logits if laplacian is None else logits + laplacian @ z))
    return z


def update_mixture(S, z_sum, sq_sum, n, mu, class_embeddings, prior_mass):
    """The mean and covariance step from the assignment-weighted sums ``S = z.T @ X`` (C, D), the
    assignment mass per class ``z_sum`` and the items' per-dimension sum of squares.

    Returns
    -------
    mu : ndarray of shape (n_classes, n_features)
    var : ndarray of shape (n_features,)
    """
    mu = _normalize_or_keep(S, mu) if prior_mass is None else anchored_means(S, class_embeddings, prior_mass)
    var = (sq_sum - 2 * np.einsum("cd,cd->d", mu, S) + z_sum @ mu**2) / n
    return mu, np.maximum(var, np.finfo(np.float64).eps * var.max())


def _matmul(A, B):
    """``A @ B`` in float32 when either operand is float32 (the items' dtype), returned as float64."""
    dtype = np.float32 if np.float32 in (A.dtype, B.dtype) else np.float64
    return (A.astype(dtype, copy=False) @ B.astype(dtype, copy=False)).astype(np.float64, copy=False)


def weighted_sums(z, X):
    """``z.T @ X``: per class, the assignment-weighted sum of the rows (C, D), in float64."""
    return _matmul(z.T, X)


def _log_softmax(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def _normalize_or_keep(S, previous):
    """Row-normalise ``S``; a row that is all zero keeps its previous value."""
    norms = np.linalg.norm(S, axis=1, keepdims=True)
    return np.where(norms > 0, S / np.where(norms > 0, norms, 1), previous)


def anchored_means(S, T, prior_mass):
    """MAP class means on the sphere: the assignment-weighted sums plus ``prior_mass`` items at the
    class embeddings, normalised."""
    return l2_normalize(S + prior_mass * T, name="anchored class means")


def _initial_means(X, z):
    """Per class, the z-weighted mean of its ``_N_CONFIDENT`` most confident items, normalised."""
    m = min(_N_CONFIDENT, X.shape[0])
    top = np.argpartition(-z, m - 1, axis=0)[:m]  # (m, C)
    weights = np.take_along_axis(z, top, axis=0)
    means = np.einsum("mc,mcd->cd", weights, X[top].astype(np.float64))
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def _log_likelihood(X, mu, var):
    """Gaussian log-likelihood per (item, class) up to a per-item constant (which the softmax drops):
    ``x @ (mu_c / var) - 0.5 * sum(mu_c**2 / var)``."""
    return _matmul(X, (mu / var).T) - 0.5 * (mu**2 / var).sum(axis=1)


class TransCLIPClassifier(ClassifierMixin, BaseEstimator):
    """TransCLIP-ZS: transductive zero-shot classification with a GMM, a kNN Laplacian and a text anchor.

    ``fit`` solves for the assignments of the very items it is given; it learns no rule for new
    items. ``predict(X)`` and ``predict_proba(X)`` return the fitted assignments when ``X`` is the
    array given to ``fit`` (same shape and values); for any other ``X`` they solve afresh on that
    ``X`` with the fitted class embeddings, which is the transductive meaning of predicting a batch.

    The objective, minimised over assignments ``z``, class means ``mu`` and a shared diagonal
    covariance ``Sigma`` by block majorise-minimise steps::

        - (1/N) sum_i z_i . log p_i  -  sum_ij w_ij z_i . z_j  +  lambda_ sum_i KL(z_i || y_i)

    ``p_i`` is the Gaussian likelihood of item i under each class, ``w`` the kNN cosine graph and
    ``y_i = softmax(cos(x_i, T) / temperature)`` the zero-shot prediction. Each of ``n_iter`` outer
    iterations runs 5 decoupled z-steps
    ``z_i ∝ y_i**lambda_ * exp(log p_i / 50 + sum_j (w_ij + w_ji) z_j / (2 n_neighbors))``,
    then sets ``mu_c`` to the normalised z-weighted mean and ``Sigma`` to the z-weighted squared
    deviation; a last z-step ends it. The means start from each class's 8 most confident zero-shot
    items, ``Sigma`` from ``I / n_features`` (the published zero-shot settings).

    Two departures from the paper, both off by default (``cotrain_gmm`` uses both):

    - ``mean_prior=m`` gives each mean a prior at its class embedding ``t_c`` worth ``m * N / C``
      items (the idea of StatA, Zanella et al., CVPR 2025): ``mu_c = normalize(sum_i z_ic x_i +
      m (N/C) t_c)``, started from the zero-shot ``z``. A class absent from the batch keeps its
      embedding instead of drifting onto the items of a present class and taking them over.
    - ``n_neighbors=0`` drops the Laplacian term, whose kNN graph costs O(N^2) distance
      computations; what remains costs O(N C D) per iteration.

    Parameters
    ----------
    class_embeddings : array-like of shape (n_classes, n_features)
        Class (text) embeddings, normalised here.
    class_names : array-like of shape (n_classes,), default=None
        Labels returned by ``predict`` (default ``0..n_classes-1``).
    lambda_ : float, default=1.0
        Weight of the KL anchor to the zero-shot prediction (the paper's zero-shot value is 1).
    n_neighbors : int, default=3
        Neighbours per item in the Laplacian graph; 0 drops the Laplacian term.
    n_iter : int, default=10
        Outer iterations (mean and covariance updates).
    temperature : float or "auto", default="auto"
        Softmax temperature of the zero-shot prediction: logits are ``cos / temperature``. CLIP uses
        0.01 (logit scale 100), fitted to CLIP's image-text cosines, whose spread across classes is a
        few hundredths. Other embedding models spread their cosines differently (MiniLM text-text:
        about 0.1), so "auto" divides by the mean per-item standard deviation of the cosines across
        classes (:func:`auto_temperature`), giving logits of unit spread. Pass 0.01 for CLIP's value.
    mean_prior : float or None, default=None
        None: the published means (the normalised z-weighted mean). A number ``m``: MAP means under a
        prior at the class embeddings worth ``m`` classes of average size (``m * N / C`` items).
    seed : int, default=0
        Accepted so every pairclass method takes the same arguments; TransCLIP-ZS draws nothing at
        random and its output does not depend on it.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (``class_names`` given to ``fit``, else ``0..n_classes-1``).
    class_embeddings_ : ndarray of shape (n_classes, n_features)
        L2-normalised class embeddings.
    n_features_in_ : int
        Embedding width.
    temperature_ : float
        Temperature used (resolved from "auto" on the fitted items).
    assignments_ : ndarray of shape (n_items, n_classes)
        Final assignments ``z`` of the fitted items.

    References
    ----------
    M. Zanella, B. Gérin, I. Ben Ayed. Boosting Vision-Language Models with Transduction. NeurIPS 2024.

    Examples
    --------
    >>> X = np.array([[1.0, 0.1], [0.9, 0.3], [0.2, 1.0], [0.1, 0.9]])
    >>> TransCLIPClassifier(np.eye(2), n_neighbors=1).fit(X).predict(X).tolist()
    [0, 0, 1, 1]
    """

    _parameter_constraints: dict = {
        "class_embeddings": ["array-like"],
        "class_names": ["array-like", None],
        "lambda_": [Interval(Real, 0, None, closed="left")],
        "n_neighbors": [Interval(Integral, 0, None, closed="left")],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "mean_prior": [Interval(Real, 0, None, closed="left"), None],
        "seed": ["random_state"],
    }

    def __init__(self, class_embeddings, *, class_names=None, lambda_=1.0, n_neighbors=3, n_iter=10,
                 temperature="auto", mean_prior=None, seed=0):
        self.class_embeddings = class_embeddings
        self.class_names = class_names
        self.lambda_ = lambda_
        self.n_neighbors = n_neighbors
        self.n_iter = n_iter
        self.temperature = temperature
        self.mean_prior = mean_prior
        self.seed = seed

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Solve TransCLIP-ZS on the items ``X`` (zero-shot: ``y`` is not used).

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
        y : None

        Returns
        -------
        self
        """
        X = validate_data(self, X, reset=True, dtype=[np.float32, np.float64])
        if X.shape[0] < 2:
            raise ValueError(f"TransCLIP-ZS needs at least 2 items; got {X.shape[0]}")
        self.class_embeddings_, self.classes_ = check_classes(self.class_embeddings, self.class_names, X.shape[1])
        self._fit_X = X
        self.temperature_, self.assignments_ = self._solve(X)
        return self

    def _solve(self, X):
        T = self.class_embeddings_
        temperature = auto_temperature(X, T) if self.temperature == "auto" else float(self.temperature)
        _, z = transclip_zs(
            X, T, lambda_=self.lambda_, n_neighbors=self.n_neighbors, n_iter=self.n_iter, temperature=temperature,
            mean_prior=self.mean_prior,
        )
        return temperature, z

    def predict_proba(self, X):
        """Assignments ``z`` of the items (the fitted ones when ``X`` is the fitted array).

        Returns
        -------
        ndarray of shape (n_items, n_classes)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        if X is self._fit_X or (X.shape == self._fit_X.shape and np.array_equal(X, self._fit_X)):
            return self.assignments_
        if X.shape[0] < 2:
            raise ValueError(f"TransCLIP-ZS needs at least 2 items; got {X.shape[0]}")
        return self._solve(X)[1]

    def predict(self, X):
        """Class of each item: the argmax of :meth:`predict_proba`.

        Returns
        -------
        ndarray of shape (n_items,)
        """
        pred = self.predict_proba(X).argmax(axis=1)
        return self.classes_[pred]
