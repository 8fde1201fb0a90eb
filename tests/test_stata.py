"""StatA (pairclass.methods.stata) against a brute-force reference of its updates."""

import numpy as np
from scipy.special import softmax

from pairclass import PairwiseClassifier
from pairclass.classify import l2_normalize
from pairclass.methods.stata import anchored_statistics

from conftest import clustered, run_methods


def reference_stata(X, T, alpha=1.0, n_iter=10):
    """StatA written out per class, with (N, C, D) differences: the paper's updates, no shortcuts."""
    X = l2_normalize(X.astype(np.float64))
    cos = X @ T.T
    y = softmax(cos / cos.std(axis=1).mean(), axis=1)
    diff_text = X[:, None, :] - T[None, :, :]
    var0 = (y[:, :, None] * diff_text**2).sum(axis=(0, 1)) / len(X)
    mu, var = T.copy(), np.tile(var0, (len(T), 1))
    for step in range(n_iter + 1):
        log_lik = -0.5 * ((X[:, None, :] - mu[None]) ** 2 / var[None]).sum(axis=2)
        z = softmax(np.log(y) + log_lik / 50, axis=1)
        if step == n_iter:
            return z.argmax(axis=1)
        counts = np.bincount(z.argmax(axis=1), minlength=len(T))
        new_mu, new_var = np.empty_like(mu), np.empty_like(var)
        for k in range(len(T)):
            beta = counts[k] / (alpha + counts[k])
            mean = (z[:, k, None] * X).sum(axis=0) / z[:, k].sum()
            blend = beta * mean / np.linalg.norm(mean) + (1 - beta) * T[k]
            new_mu[k] = blend / np.linalg.norm(blend)
            within = (z[:, k, None] * (X - new_mu[k]) ** 2).sum(axis=0) / z[:, k].sum()
            new_var[k] = beta * within + (1 - beta) * (var0 + (T[k] - new_mu[k]) ** 2)
        mu, var = new_mu, np.maximum(new_var, np.finfo(np.float32).eps * new_var.max())


def views_and_classes(seed=0):
    X1, T, y = clustered(n_per_class=40, n_classes=5, dim=16, noise=0.8, nuisance=1.5, seed=seed)
    X2, _, _ = clustered(n_per_class=40, n_classes=5, dim=16, noise=1.0, nuisance=1.5, seed=seed + 10)
    return {"a": X1, "b": X2}, l2_normalize(T.astype(np.float64)), y


def test_stata_streamed_matches_the_brute_force_updates():
    views, T, _ = views_and_classes()
    got = run_methods(views, T, ["stata"], PairwiseClassifier(), batch_rows=23)[1]["stata"]
    for v, X in views.items():
        expected = reference_stata(X, T)
        np.testing.assert_array_equal(got[v], expected)
        # The mixture moved: it decides some items unlike the zero-shot rule.
        assert (expected != (l2_normalize(X) @ T.T).argmax(axis=1)).any()


def test_stata_on_a_batch_holding_two_of_five_classes_matches_the_reference():
    views, T, y = views_and_classes(1)
    held = np.isin(y, [1, 3])
    part = {v: X[held] for v, X in views.items()}
    got = run_methods(part, T, ["stata"], PairwiseClassifier(), batch_rows=17)[1]["stata"]
    for v, X in part.items():
        np.testing.assert_array_equal(got[v], reference_stata(X, T))


def test_a_class_that_wins_no_item_keeps_the_text_statistics():
    rng = np.random.default_rng(0)
    T = l2_normalize(rng.normal(size=(3, 6)))
    S, Q = rng.normal(size=(3, 6)), rng.uniform(1, 2, size=(3, 6))
    var0 = rng.uniform(0.1, 0.2, size=6)
    mu, var = anchored_statistics(S, Q, np.array([5.0, 2.0, 0.3]), np.array([6, 3, 0]), T, var0)
    np.testing.assert_allclose(mu[2], T[2])
    np.testing.assert_allclose(var[2], var0)
    # With many items a class is its items': beta -> 1.
    mu, _ = anchored_statistics(S, Q, np.array([5.0, 2.0, 0.3]), np.array([10**9, 3, 0]), T, var0)
    np.testing.assert_allclose(mu[0], S[0] / np.linalg.norm(S[0]), atol=1e-6)
