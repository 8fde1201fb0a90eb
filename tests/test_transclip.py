import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

import pairclass.classify
import pairclass.transclip
from pairclass.transclip import TransCLIPClassifier, auto_temperature, knn_graph, transclip_zs


def _unit(M):
    return M / np.linalg.norm(M, axis=1, keepdims=True)


def _softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


def dense_transclip(X, T, *, lambda_, n_neighbors, n_iter, temperature, mean_prior=None, n_confident=8, z_steps=5):
    """Straightforward O(N^2) TransCLIP-ZS: dense affinities, item-by-item loops, the full Gaussian form;
    ``mean_prior`` adds ``mean_prior * n / C`` items at each class embedding to its mean's sum."""
    X, T = _unit(X), _unit(T)
    n, d = X.shape
    C = T.shape[0]
    y = np.array([_softmax(X[i] @ T.T / temperature) for i in range(n)])
    W = np.zeros((n, n))
    for i in range(n):
        sims = [(X[i] @ X[j], j) for j in range(n) if j != i]
        for s, j in sorted(sims, reverse=True)[:n_neighbors]:
            W[i, j] = s
    z = y.copy()
    mu = np.zeros((C, d))
    prior = 0.0 if mean_prior is None else mean_prior * n / C
    for c in range(C):
        chosen = np.argsort(-z[:, c])[:n_confident] if mean_prior is None else range(n)
        for i in chosen:
            mu[c] += z[i, c] * X[i]
        mu[c] += prior * T[c]
        mu[c] /= np.linalg.norm(mu[c])
    var = np.full(d, 1.0 / d)
    for step in range(n_iter + 1):
        log_lik = np.array([[-0.5 * np.sum((X[i] - mu[c]) ** 2 / var) for c in range(C)] for i in range(n)])
        for _ in range(z_steps):
            old = z.copy()
            for i in range(n):
                pull = sum((W[i, j] + W[j, i]) * old[j] for j in range(n)) / (2 * max(n_neighbors, 1))
                z[i] = _softmax(lambda_ * np.log(y[i]) + log_lik[i] / 50 + pull)
        if step == n_iter:
            break
        for c in range(C):
            s = sum(z[i, c] * X[i] for i in range(n)) + prior * T[c]
            mu[c] = s / np.linalg.norm(s)
        var = sum(z[i, c] * (X[i] - mu[c]) ** 2 for i in range(n) for c in range(C)) / n
    return z


def shifted_problem(n=600, c=5, d=32, shift=1.5, seed=0):
    """Well-separated clusters whose class text embeddings sit off the cluster centres."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((c, d)))
    labels = rng.integers(0, c, n)
    X = _unit(centres[labels] + 0.25 * rng.standard_normal((n, d)))
    T = _unit(centres + shift * _unit(rng.standard_normal((c, d))))
    return X, T, labels


@pytest.mark.parametrize(
    "variant", [{}, {"mean_prior": 0.5}, {"mean_prior": 1.0, "n_neighbors": 0}, {"n_neighbors": 0}]
)
def test_matches_dense_reference(variant):
    X, T, _ = shifted_problem(n=40, c=3, d=6, seed=1)
    kw = dict(dict(lambda_=0.7, n_neighbors=3, n_iter=4, temperature=0.05), **variant)
    pred, proba = transclip_zs(X, T, **kw)
    ref = dense_transclip(X, T, **kw)
    np.testing.assert_allclose(proba, ref, rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(pred, ref.argmax(axis=1))


def test_float32_items_agree_with_dense_reference():
    X, T, _ = shifted_problem(n=40, c=3, d=6, seed=2)
    kw = dict(lambda_=1.0, n_neighbors=3, n_iter=3, temperature=0.1)
    _, proba = transclip_zs(X.astype(np.float32), T, **kw)
    np.testing.assert_allclose(proba, dense_transclip(X, T, **kw), atol=1e-4)


def test_no_neighbours_builds_no_graph(monkeypatch):
    def quadratic(*args):
        raise AssertionError("the kNN graph was built")

    monkeypatch.setattr(pairclass.transclip, "knn_graph", quadratic)
    X, T, labels = shifted_problem(seed=9)
    pred = TransCLIPClassifier(T, n_neighbors=0, mean_prior=1.0).fit(X).predict(X)
    assert np.mean(pred == labels) > np.mean((X @ T.T).argmax(axis=1) == labels)


def absent_class_problem(seed=0, d=16):
    """Two present classes; a third class's text embedding sits near the first's cluster, but none of
    its items are in the batch."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((2, d)))
    offsets = _unit(rng.standard_normal((2, d)))
    T = _unit(np.stack([centres[0] + 0.8 * offsets[0], centres[0] + 0.9 * offsets[1], centres[1] + 0.8 * offsets[0]]))
    labels = np.repeat([0, 2], 300)
    X = _unit(centres[labels // 2] + 0.35 * rng.standard_normal((600, d)))
    return X, T, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_prior_keeps_an_absent_class_at_its_embedding(monkeypatch, seed):
    """The published update drags the absent class's mean onto the items of the present class it
    borders; the anchored one leaves it at its class embedding."""
    X, T, labels = absent_class_problem(seed)
    seen = []
    original = pairclass.transclip._log_likelihood
    monkeypatch.setattr(
        pairclass.transclip, "_log_likelihood", lambda X, mu, var: seen.append(mu) or original(X, mu, var)
    )
    TransCLIPClassifier(T, mean_prior=1.0).fit(X)
    anchored = seen[-1][1]
    seen.clear()
    TransCLIPClassifier(T).fit(X)
    published = seen[-1][1]
    cluster = _unit(X[labels == 0].mean(axis=0, keepdims=True))[0]
    assert anchored @ T[1] > 0.95
    assert published @ cluster > published @ T[1]
    assert anchored @ T[1] > published @ T[1] + 0.1


def test_knn_graph_matches_brute_force_across_chunks(monkeypatch):
    monkeypatch.setattr(pairclass.classify, "_CHUNK_ELEMENTS", 1)  # 256-row chunks
    X = _unit(np.random.default_rng(3).standard_normal((700, 5)))
    W = knn_graph(X, 3).toarray()
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    expected = np.zeros_like(S)
    for i in range(X.shape[0]):
        top = np.argsort(-S[i])[:3]
        expected[i, top] = S[i, top]
    np.testing.assert_allclose(W, expected)


def test_deterministic_and_seed_free():
    X, T, _ = shifted_problem(seed=4)
    a = TransCLIPClassifier(T, seed=0).fit(X).predict_proba(X)
    b = TransCLIPClassifier(T, seed=0).fit(X).predict_proba(X)
    c = TransCLIPClassifier(T, seed=123).fit(X).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_invariant_to_item_order():
    X, T, _ = shifted_problem(seed=5)
    perm = np.random.default_rng(0).permutation(X.shape[0])
    proba = TransCLIPClassifier(T).fit(X).predict_proba(X)
    proba_perm = TransCLIPClassifier(T).fit(X[perm]).predict_proba(X[perm])
    back = np.empty_like(proba_perm)
    back[perm] = proba_perm
    np.testing.assert_allclose(back, proba, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beats_zero_shot_when_text_embeddings_are_off_centre(seed):
    X, T, labels = shifted_problem(seed=seed)
    zero_shot = np.mean((X @ T.T).argmax(axis=1) == labels)
    transductive = np.mean(TransCLIPClassifier(T).fit(X).predict(X) == labels)
    assert zero_shot < 0.85
    assert transductive >= zero_shot + 0.05


def test_strong_anchor_keeps_zero_shot_decision():
    X, T, _ = shifted_problem(seed=6)
    pred = TransCLIPClassifier(T, lambda_=1e4, temperature=0.01).fit(X).predict(X)
    np.testing.assert_array_equal(pred, (X @ T.T).argmax(axis=1))


def test_class_names_and_new_batch_is_solved_afresh():
    X, T, _ = shifted_problem(seed=7)
    names = np.array(["a", "b", "c", "d", "e"])
    clf = TransCLIPClassifier(T, class_names=names).fit(X[:300])
    fresh = TransCLIPClassifier(T, class_names=names).fit(X[300:])
    np.testing.assert_array_equal(clf.predict(X[300:]), fresh.predict(X[300:]))
    assert set(clf.predict(X[:300])) <= set(names)
    assert clf.assignments_.shape == (300, 5)


def test_auto_temperature_is_mean_cosine_spread():
    X, T, _ = shifted_problem(seed=8)
    clf = TransCLIPClassifier(T).fit(X)
    assert clf.temperature_ == pytest.approx(np.mean(np.std(X @ T.T, axis=1)))
    assert auto_temperature(X, T) == pytest.approx(clf.temperature_)
    assert TransCLIPClassifier(T, temperature=0.01).fit(X).temperature_ == 0.01


@pytest.mark.parametrize(
    "params",
    [{"lambda_": -1.0}, {"n_neighbors": -1}, {"n_iter": -1}, {"temperature": 0.0}, {"temperature": "hot"},
     {"lambda_": "big"}, {"mean_prior": -0.5}, {"mean_prior": "strong"}],
)
def test_bad_params_raise(params):
    X, T, _ = shifted_problem(n=20)
    with pytest.raises(InvalidParameterError):
        TransCLIPClassifier(T, **params).fit(X)


def test_bad_inputs_raise():
    X, T, _ = shifted_problem(n=20)
    with pytest.raises(ValueError, match="class_embeddings has 31 features, but X has 32 features"):
        TransCLIPClassifier(T[:, :31]).fit(X)
    with pytest.raises(ValueError, match="at least 2 classes; got 1"):
        TransCLIPClassifier(T[:1]).fit(X)
    with pytest.raises(ValueError, match="class_names has duplicates"):
        TransCLIPClassifier(T, class_names=["a", "a", "b", "c", "d"]).fit(X)
    with pytest.raises(ValueError, match="expecting 32"):
        TransCLIPClassifier(T).fit(X).predict(X[:, :31])
