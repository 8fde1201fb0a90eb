import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pairclass import PairwiseClassifier
from pairclass.classify import Decision, l2_normalize
from pairclass.cli import app
from pairclass.errors import InputError
from pairclass.methods import DEFAULT_METHOD, METHODS, Context, recognised_classes, refine_class_embeddings
from pairclass.metrics import agreement_f1, hollow_agreement, label_scores
from pairclass.transclip import TransCLIPClassifier

from conftest import clustered, run_methods

EST = dict(k=4, min_count=3)


def two_views(seed=0):
    X1, T, y = clustered(n_per_class=40, n_classes=4, dim=20, noise=0.7, nuisance=2.0, seed=seed)
    X2, _, _ = clustered(n_per_class=40, n_classes=4, dim=20, noise=0.9, nuisance=2.0, seed=seed + 100)
    return {"a": X1, "b": X2}, l2_normalize(T.astype(np.float64)), y


def run(views, T, method, labels=None, batch_rows=10_000, **est):
    return run_methods(views, T, [method], PairwiseClassifier(**{**EST, **est}), labels=labels,
                       batch_rows=batch_rows)[1][method]


# Brute-force references, written with the estimator's array API and the prototype functions.
def fisher(T, X, y=None):
    return PairwiseClassifier(T, match="fisher", **EST).fit(X, y)


def reference_proto(X, T, prior=None):
    first = fisher(T, X).predict(X)
    counts = np.bincount(first, minlength=len(T))
    moved = refine_class_embeddings(X, T, first, prior_count=EST["min_count"] if prior is None else prior(counts))
    refined = np.where(recognised_classes(X, T, first)[:, None], moved, T)
    return fisher(refined, X).predict(X)


def reference_cotrain_embeddings(views, T, prior=None):
    preds = [reference_proto(X, T, prior) for X in views.values()]
    if len(preds) == 1:
        # With one view, the bracket must agree with the zero-shot rule.
        preds.append((views[next(iter(views))] @ T.T).argmax(axis=1))
    a, b = preds
    agreed = np.where(a == b, a, -1)
    known = np.logical_or.reduce([recognised_classes(X, T, agreed) for X in views.values()])
    counts = np.bincount(agreed[agreed >= 0], minlength=len(T))
    n0 = EST["min_count"] if prior is None else prior(counts)
    return agreed, {v: np.where(known[:, None], refine_class_embeddings(X, T, agreed, prior_count=n0), T)
                    for v, X in views.items()}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_deterministic_and_shaped(method):
    views, T, y = two_views()
    first, again = run(views, T, method), run(views, T, method)
    for v in views:
        assert first[v].shape == y.shape
        assert set(np.unique(first[v])) <= set(range(len(T)))
        np.testing.assert_array_equal(first[v], again[v])


@pytest.mark.parametrize("method", [m for m in METHODS if m != "baseline"])
def test_no_method_buys_agreement_with_accuracy(method):
    """A method may make the views agree more only if they are also right more often."""
    for seed in range(3):
        views, T, y = two_views(seed)
        summary = run_methods(views, T, [method], PairwiseClassifier(**EST), labels=y)[0].methods
        assert not hollow_agreement(summary[method], summary["baseline"]), (method, seed)


def test_hollow_agreement_catches_views_agreeing_on_a_wrong_class():
    views, T, y = two_views()
    base = run(views, T, "baseline")
    base_summary = {"agreement_f1": agreement_f1(base["b"], base["a"]),
                    "accuracy": {v: label_scores(y, p)["accuracy"] for v, p in base.items()}}
    wrong = (y + 1) % len(T)
    collapsed = {"agreement_f1": agreement_f1(wrong, wrong),
                 "accuracy": {v: label_scores(y, wrong)["accuracy"] for v in views}}
    assert hollow_agreement(collapsed, base_summary)


def test_pairwise_keeps_the_seed_match_and_proto_takes_fisher_matches():
    views, T, _ = two_views(2)
    X = views["a"]
    seed = PairwiseClassifier(T, **EST).fit(X).predict(X)
    np.testing.assert_array_equal(run(views, T, "pairwise")["a"], seed)
    expected = reference_proto(X, T)
    np.testing.assert_array_equal(run(views, T, "proto")["a"], expected)
    assert (run(views, T, "proto", match="cosine")["a"] != expected).any()


def average_class(counts):
    return counts.sum() / counts.size


@pytest.mark.parametrize("prior", ["min-count", "class"])
def test_cotrain_learns_from_the_items_both_views_agree_on(prior):
    views, T, _ = two_views(1)
    n0 = None if prior == "min-count" else average_class
    agreed, refined = reference_cotrain_embeddings(views, T, n0)
    assert (agreed == -1).any() and (agreed >= 0).any()
    got = run_methods(views, T, ["cotrain"], PairwiseClassifier(**EST), proto_prior=prior)[1]["cotrain"]
    for v, X in views.items():
        np.testing.assert_array_equal(got[v], fisher(refined[v], X, agreed).predict(X))
    # Learning from every item instead of the agreed ones decides some items differently.
    assert any((got[v] != fisher(refined[v], X).predict(X)).any() for v, X in views.items())


def proto_with(X, T, est):
    first = PairwiseClassifier(T, match="fisher", **est).fit(X).predict(X)
    moved = refine_class_embeddings(X, T, first, prior_count=est["min_count"])
    refined = np.where(recognised_classes(X, T, first)[:, None], moved, T)
    return PairwiseClassifier(refined, match="fisher", **est).fit(X).predict(X)


def test_cotrain_with_filters_filters_against_the_moved_embeddings():
    views, T, _ = two_views(3)
    est = dict(EST, cos_min=0.1, diff_min=0.02)
    a, b = (proto_with(X, T, est) for X in views.values())
    agreed = np.where(a == b, a, -1)
    known = np.logical_or.reduce([recognised_classes(X, T, agreed) for X in views.values()])
    got = run_methods(views, T, ["cotrain"], PairwiseClassifier(**est))[1]["cotrain"]
    for v, X in views.items():
        moved = np.where(known[:, None], refine_class_embeddings(X, T, agreed, prior_count=3), T)
        np.testing.assert_array_equal(got[v], PairwiseClassifier(moved, match="fisher", **est).fit(X, agreed).predict(X))


@pytest.mark.parametrize("method, params", [("cotrain_transclip", {}),
                                            ("cotrain_gmm", {"n_neighbors": 0, "mean_prior": 1.0})])
def test_cotrain_transclip_anchors_transclip_to_the_agreed_prototypes(method, params):
    views, T, _ = two_views(2)
    _, refined = reference_cotrain_embeddings(views, T)
    got = run(views, T, method, batch_rows=37)
    for v, X in views.items():
        proba = TransCLIPClassifier(refined[v], **params).fit(X).predict_proba(X)
        np.testing.assert_array_equal(got[v], proba.argmax(axis=1))


def test_joint_gives_one_label_per_item():
    views, T, _ = two_views()
    out = run(views, T, "joint")
    np.testing.assert_array_equal(out["a"], out["b"])
    stacked = np.hstack([l2_normalize(X) for X in views.values()])
    np.testing.assert_array_equal(out["a"], reference_proto(stacked, np.hstack([T, T]) / np.sqrt(2)))


def test_refine_keeps_empty_classes_and_normalises():
    rng = np.random.default_rng(0)
    T = l2_normalize(rng.normal(size=(3, 5)))
    X = rng.normal(size=(10, 5))
    R = refine_class_embeddings(X, T, np.array([0] * 5 + [2] * 5))
    np.testing.assert_allclose(np.linalg.norm(R, axis=1), 1)
    np.testing.assert_array_equal(R[1], T[1])
    mean0 = l2_normalize(l2_normalize(X[:5]).sum(0, keepdims=True))[0]
    np.testing.assert_allclose(R[0], l2_normalize((T[0] + mean0)[None])[0], atol=1e-6)


def test_prior_count_shrinks_the_move_of_a_class_with_few_items():
    rng = np.random.default_rng(5)
    T = l2_normalize(rng.normal(size=(3, 6)))
    X = rng.normal(size=(202, 6))
    pred = np.array([0] * 2 + [1] * 200)
    for prior_count in (0, 10):
        R = refine_class_embeddings(X, T, pred, prior_count=prior_count)
        for c, n in ((0, 2), (1, 200)):
            mean = l2_normalize(l2_normalize(X[pred == c]).sum(0, keepdims=True))[0]
            expected = l2_normalize((T[c] + n / (n + prior_count) * mean)[None])[0]
            np.testing.assert_allclose(R[c], expected, atol=1e-6)
        np.testing.assert_array_equal(R[2], T[2])
    bisector = refine_class_embeddings(X, T, pred)
    shrunk = refine_class_embeddings(X, T, pred, prior_count=10)
    moved = lambda R, c: np.arccos(np.clip(R[c] @ T[c], -1, 1))  # noqa: E731
    assert moved(shrunk, 0) < moved(bisector, 0) / 3
    assert moved(shrunk, 1) > 0.95 * moved(bisector, 1)
    with pytest.raises(ValueError, match="prior_count must be a count >= 0"):
        refine_class_embeddings(X, T, pred, prior_count=-2)


def test_refine_ignores_unassigned_items():
    rng = np.random.default_rng(1)
    T = l2_normalize(rng.normal(size=(2, 4)))
    X = rng.normal(size=(6, 4))
    pred = np.array([0, -1, 1, -1, 0, 1])
    np.testing.assert_array_equal(refine_class_embeddings(X, T, pred),
                                  refine_class_embeddings(X[pred >= 0], T, pred[pred >= 0]))


def test_recognised_classes_match_a_direct_centroid_argmax():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 5))
    T = l2_normalize(rng.normal(size=(4, 5)))
    labels = rng.integers(-1, 3, size=60)  # class 3 has no items, -1 items are left out
    expected = []
    for c in range(4):
        rows = l2_normalize(X[labels == c])
        expected.append(bool(len(rows)) and int(np.argmax(T @ rows.mean(0))) == c)
    assert recognised_classes(X, T, labels).tolist() == expected
    assert not all(expected[:3]) and any(expected)


def stub_brackets(monkeypatch, rows, labels):
    """Every bracket returns the preset label of each row (looked up by its bytes); returns the list
    of the class embeddings of every classifier the plans make."""
    index = {row.tobytes(): label for X in rows for row, label in zip(X, labels)}
    made = []
    original = Context.classifier

    def classifier(self, class_embeddings, match):
        made.append(np.array(class_embeddings))
        return original(self, class_embeddings, match)

    def decide(self, X, norms=None):
        pred = np.array([index[row.tobytes()] for row in X])
        ones = np.ones(len(X), np.float32)
        return Decision(pred, ones, ones, pred, ones, ones)

    monkeypatch.setattr(Context, "classifier", classifier)
    monkeypatch.setattr(PairwiseClassifier, "_decide", decide)
    return made


def test_proto_moves_only_recognised_classes_and_cotrain_takes_either_views(monkeypatch):
    # Class 2 gets ten items of class 0's cluster (the way an absent class wins items on misleading
    # pair dimensions). Their mean is class 0's to the zero-shot rule, so class 2 keeps its embedding.
    rng = np.random.default_rng(4)
    T = np.eye(3)
    X = np.abs(np.vstack([rng.normal([1.0, 0.0, 0.0], 0.2, size=(40, 3)),
                          rng.normal([0.0, 1.0, 0.0], 0.2, size=(40, 3))])).astype(np.float32)
    labels = np.repeat([0, 1], 40)
    labels[:10] = 2
    # View b puts class 1's items where the zero-shot rule calls them class 0.
    Xb = np.vstack([X[:40], X[40:, [1, 0, 2]]])
    made = stub_brackets(monkeypatch, [X, Xb], labels)
    run({"a": X}, T, "proto")
    assert recognised_classes(X, T, labels).tolist() == [True, True, False]
    np.testing.assert_array_equal(made[1][2], T[2])
    # One view: the class embedding weighs one average class, 80 / 3 items.
    np.testing.assert_allclose(made[1][:2], refine_class_embeddings(X, T, labels, prior_count=80 / 3)[:2])
    assert not np.allclose(made[1][:2], T[:2])

    # Yet view a recognises class 1, so class 1 moves in both views' last classifier.
    assert recognised_classes(Xb, T, labels).tolist() == [True, False, False]
    made.clear()
    run({"a": X, "b": Xb}, T, "cotrain")
    for refined in made[-2:]:
        assert (~np.isclose(refined, T).all(axis=1)).tolist() == [True, True, False]


def test_cli_method_all_reports_each_method(make_files):
    emb, cls = make_files()
    result = CliRunner().invoke(app, ["classify", str(emb), "--classes", str(cls), "--label-col", "category",
                                      "--method", "all", "--min-count", "3", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary["methods"]) == set(METHODS) | {"default"}
    assert summary["methods"]["default"] == summary["methods"][DEFAULT_METHOD]
    assert summary["methods"]["joint"]["agreement_f1"] is None
    for m in METHODS:
        assert set(summary["methods"][m]["accuracy"]) == {"clip_image_features", "clip_text_features"}
    # Every method made of pairwise classifiers reports its fallback pairs.
    assert set(summary["diagnostics"]["fallback_pairs"]) == {m for m, spec in METHODS.items() if spec.pairs}


def test_cli_unknown_method(make_files):
    emb, cls = make_files()
    result = CliRunner().invoke(app, ["classify", str(emb), "--classes", str(cls), "--method", "magic"])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: unknown method 'magic'; choose from {', '.join(METHODS)} or all\n")


@pytest.mark.parametrize("method", ["proto", "cotrain", "cotrain_gmm"])
def test_the_auto_prior_is_one_average_class_with_one_view_and_min_count_with_two(method):
    views, T, _ = two_views(5)
    one = {"a": views["a"]}

    def preds(views, prior):
        return run_methods(views, T, [method], PairwiseClassifier(**EST), proto_prior=prior)[1][method]

    for v, p in preds(views, "auto").items():
        np.testing.assert_array_equal(p, preds(views, "min-count")[v])
    np.testing.assert_array_equal(preds(one, "auto")["a"], preds(one, "class")["a"])
    assert (preds(one, "class")["a"] != preds(one, "min-count")["a"]).any()


def test_unknown_proto_prior_is_an_input_error():
    views, T, _ = two_views()
    with pytest.raises(InputError, match="unknown prototype prior 'items'; choose from auto, min-count, class"):
        run_methods(views, T, ["cotrain"], proto_prior="items")


@pytest.mark.parametrize("method", ["cotrain", "cotrain_transclip", "cotrain_gmm"])
def test_two_view_methods_on_one_view_learn_where_the_bracket_and_the_zero_shot_rule_agree(method):
    views, T, _ = two_views(4)
    X = views["a"]
    got = run({"a": X}, T, method)["a"]
    # With one view the default prior is one average class.
    agreed, refined = reference_cotrain_embeddings({"a": X}, T, average_class)
    assert (agreed == -1).any() and (agreed >= 0).any()
    if method == "cotrain":
        np.testing.assert_array_equal(got, fisher(refined["a"], X, agreed).predict(X))
        # Learning from every bracket label (proto) decides some items differently.
        assert (got != reference_proto(X, T)).any()
    else:
        params = {"n_neighbors": 0, "mean_prior": 1.0} if method == "cotrain_gmm" else {}
        np.testing.assert_array_equal(got, TransCLIPClassifier(refined["a"], **params).fit(X).predict(X))
