"""Retrieval metrics (pairclass.metrics) against brute-force references and pytorch-metric-learning."""

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from pairclass.metrics import map_at_r, opis, opis_thresholds, recall_at_k


def _normalised(n=60, dim=5, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = rng.integers(0, n_classes, size=n).astype(str)
    return X, labels


def _ranked(X, labels, i):
    sims = X @ X[i]
    sims[i] = -np.inf
    order = np.argsort(-sims, kind="stable")[: len(X) - 1]
    return labels[order] == labels[i]


def test_recall_and_map_match_brute_force():
    X, labels = _normalised()
    recalls, aps = {1: [], 3: [], 10: [], 100: []}, []
    for i in range(len(X)):
        hits = _ranked(X, labels, i)
        r = int(hits.sum())
        for k in recalls:
            recalls[k].append(hits[:k].any())
        aps.append(sum(hits[:j + 1].sum() / (j + 1) for j in range(r) if hits[j]) / r)
    got = recall_at_k(X, labels, ks=recalls)
    assert got == pytest.approx({k: np.mean(v) for k, v in recalls.items()})
    assert got[100] == 1.0
    assert map_at_r(X, labels) == pytest.approx(np.mean(aps))


def test_recall_and_map_match_pml_accuracy_calculator():
    X, labels = _normalised(n=80, n_classes=5, seed=1)
    codes = np.unique(labels, return_inverse=True)[1]
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"), knn_func=CustomKNN(CosineSimilarity()),
    )
    emb, lab = torch.from_numpy(X), torch.from_numpy(codes)
    ref = calc.get_accuracy(emb, lab, emb, lab, ref_includes_query=True)
    assert recall_at_k(X, labels, ks=(1,))[1] == pytest.approx(ref["precision_at_1"], abs=1e-6)
    assert map_at_r(X, labels) == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-6)


def test_chunked_pass_gives_the_same_numbers(monkeypatch):
    X, labels = _normalised(n=50, seed=2)
    whole = recall_at_k(X, labels), map_at_r(X, labels), opis(X, labels)
    monkeypatch.setattr("pairclass.classify._CHUNK_ELEMENTS", 7 * 50)  # 7 queries per chunk
    assert recall_at_k(X, labels) == pytest.approx(whole[0])
    assert map_at_r(X, labels) == pytest.approx(whole[1])
    assert opis(X, labels) == pytest.approx(whole[2])


def test_singleton_classes_are_not_queries():
    X = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]]
    X[1, 1] = 0.1
    labels = np.array(["a", "a", "b", "c"])
    assert recall_at_k(X, labels, ks=(1,)) == {1: 1.0}
    assert map_at_r(X, labels) == 1.0


def _utility_brute_force(X, labels, thresholds):
    sims = X @ X.T
    curves = []
    for c in np.unique(labels):
        inside = labels == c
        pos = [sims[i, j] for i in np.flatnonzero(inside) for j in np.flatnonzero(inside) if i != j]
        neg = [sims[i, j] for i in np.flatnonzero(inside) for j in np.flatnonzero(~inside)]
        curve = []
        for t in thresholds:
            tpr = np.mean(np.array(pos) >= t)
            tnr = np.mean(np.array(neg) < t)
            curve.append(0.0 if tpr + tnr == 0 else 2 * tpr * tnr / (tpr + tnr))
        curves.append(curve)
    return np.array(curves)


def test_opis_matches_brute_force_variance_of_utility_curves():
    X, labels = _normalised(n=40, n_classes=3, seed=3)
    thresholds = np.linspace(-0.5, 0.8, 9)
    U = _utility_brute_force(X, labels, thresholds)
    assert opis(X, labels, thresholds=thresholds) == pytest.approx(U.var(axis=0).mean())
    assert opis(X, labels, thresholds=thresholds) > 0


def test_opis_is_zero_when_all_classes_share_one_utility_curve():
    # Each class is the same 3-point configuration placed in its own coordinate block: identical
    # within-class similarities and all cross-class similarities 0, so identical utility curves.
    shape = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
    X = np.zeros((9, 6))
    for c in range(3):
        X[3 * c:3 * c + 3, 2 * c:2 * c + 2] = shape
    labels = np.repeat(["a", "b", "c"], 3)
    assert opis(X, labels) == pytest.approx(0.0, abs=1e-12)
    assert opis(X, labels, thresholds=np.linspace(-1, 1, 21)) == pytest.approx(0.0, abs=1e-12)
    X[0] = [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert opis(X, labels, thresholds=np.linspace(-1, 1, 21)) > 1e-3


def test_opis_thresholds_span_the_far_range():
    X, labels = _normalised(n=120, n_classes=4, seed=4)
    t = opis_thresholds(X, labels, far_range=(0.01, 0.1), n_thresholds=5)
    sims = X @ X.T
    neg = sims[labels[:, None] != labels[None, :]]
    assert t.size == 5 and t[0] < t[-1]
    assert np.mean(neg >= t[0]) == pytest.approx(0.1, abs=0.01)
    assert np.mean(neg >= t[-1]) == pytest.approx(0.01, abs=0.01)
