import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pairclass.cli import app
from pairclass.classify import l2_normalize
from pairclass.methods import DEFAULT_METHOD, METHODS, recognised_classes, refine_class_embeddings, run_method
from pairclass.metrics import agreement_f1, hollow_agreement, label_scores

from conftest import clustered

PARAMS = dict(k=4, cos_min=None, diff_min=0.0, candidates=None, min_count=3, seed=0)


def two_views(seed=0):
    X1, T, y = clustered(n_per_class=40, n_classes=4, dim=20, noise=0.7, nuisance=2.0, seed=seed)
    X2, _, _ = clustered(n_per_class=40, n_classes=4, dim=20, noise=0.9, nuisance=2.0, seed=seed + 100)
    return {"a": X1, "b": X2}, l2_normalize(T.astype(np.float64)), y


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_deterministic_and_shaped(method):
    views, T, y = two_views()
    first = run_method(method, views, T, PARAMS)
    again = run_method(method, views, T, PARAMS)
    for v in views:
        assert first.pred[v].shape == y.shape
        assert set(np.unique(first.pred[v])) <= set(range(len(T)))
        np.testing.assert_array_equal(first.pred[v], again.pred[v])
        np.testing.assert_array_equal(first.confidence[v], again.confidence[v])


@pytest.mark.parametrize("method", [m for m in METHODS if m != "baseline"])
def test_no_method_buys_agreement_with_accuracy(method):
    """A method may make the views agree more only if they are also right more often."""
    for seed in range(3):
        views, T, y = two_views(seed)

        def summary(m):
            out = run_method(m, views, T, PARAMS)
            acc = {v: label_scores(y, p)["accuracy"] for v, p in out.pred.items()}
            return {"agreement_f1": agreement_f1(out.pred["b"], out.pred["a"]), "accuracy": acc}

        assert not hollow_agreement(summary(method), summary("baseline")), (method, seed)


def test_hollow_agreement_catches_views_agreeing_on_a_wrong_class():
    views, T, y = two_views()
    base = run_method("baseline", views, T, PARAMS)
    base_summary = {"agreement_f1": agreement_f1(base.pred["b"], base.pred["a"]),
                    "accuracy": {v: label_scores(y, p)["accuracy"] for v, p in base.pred.items()}}
    wrong = (y + 1) % len(T)
    collapsed = {"agreement_f1": agreement_f1(wrong, wrong),
                 "accuracy": {v: label_scores(y, wrong)["accuracy"] for v in views}}
    assert hollow_agreement(collapsed, base_summary)


def test_cotrain_statistics_use_only_items_the_views_agree_on(monkeypatch):
    import pairclass.methods as methods

    views, T, _ = two_views(1)
    firsts = {v: methods._proto(X, T, dict(PARAMS, match="fisher"))[0].pred for v, X in views.items()}
    seen = []
    original = methods._proto

    def spy(X, T, params, pseudo_labels=None, recognised=None):
        seen.append(None if pseudo_labels is None else pseudo_labels.copy())
        return original(X, T, params, pseudo_labels, recognised)

    monkeypatch.setattr(methods, "_proto", spy)
    run_method("cotrain", views, T, PARAMS)
    agreed = np.where(firsts["a"] == firsts["b"], firsts["a"], -1)
    assert seen[:2] == [None, None]
    assert len(seen) == 4
    for labels in seen[2:]:
        np.testing.assert_array_equal(labels, agreed)
    assert (agreed == -1).any() and (agreed >= 0).any()


@pytest.mark.parametrize(
    "method, transclip_params",
    [("cotrain_transclip", {}), ("cotrain_gmm", {"n_neighbors": 0, "mean_prior": 1.0})],
)
def test_cotrain_transclip_anchors_transclip_to_prototypes_refined_on_agreed_items(method, transclip_params):
    from pairclass.transclip import TransCLIPClassifier

    views, T, _ = two_views(2)
    firsts = {v: run_method("proto", {v: X}, T, PARAMS).pred[v] for v, X in views.items()}
    agreed = np.where(firsts["a"] == firsts["b"], firsts["a"], -1)
    assert (agreed == -1).any()
    out = run_method(method, views, T, PARAMS)
    recognised = recognised_classes(views["a"], T, agreed) | recognised_classes(views["b"], T, agreed)
    for v, X in views.items():
        moved = refine_class_embeddings(X, T, agreed, prior_count=PARAMS["min_count"])
        refined = np.where(recognised[:, None], moved, T)
        proba = TransCLIPClassifier(**transclip_params).fit(X, refined).predict_proba(X)
        np.testing.assert_array_equal(out.pred[v], proba.argmax(axis=1))
        np.testing.assert_allclose(out.confidence[v], proba.max(axis=1))


def test_joint_gives_one_label_per_item():
    views, T, y = two_views()
    out = run_method("joint", views, T, PARAMS)
    assert out.joint
    np.testing.assert_array_equal(out.pred["a"], out.pred["b"])


def test_refine_keeps_empty_classes_and_normalises():
    rng = np.random.default_rng(0)
    T = l2_normalize(rng.normal(size=(3, 5)))
    X = rng.normal(size=(10, 5))
    R = refine_class_embeddings(X, T, np.array([0] * 5 + [2] * 5))
    np.testing.assert_allclose(np.linalg.norm(R, axis=1), 1)
    np.testing.assert_array_equal(R[1], T[1])
    mean0 = l2_normalize(l2_normalize(X[:5]).sum(0, keepdims=True))[0]
    np.testing.assert_allclose(R[0], l2_normalize((T[0] + mean0)[None])[0])


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


def test_cli_unknown_method(make_files):
    emb, cls = make_files()
    result = CliRunner().invoke(app, ["classify", str(emb), "--classes", str(cls), "--method", "magic"])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: unknown method 'magic'; choose from {', '.join(METHODS)} or all\n")


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
            np.testing.assert_allclose(R[c], expected)
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
    np.testing.assert_allclose(refine_class_embeddings(X, T, pred),
                               refine_class_embeddings(X[pred >= 0], T, pred[pred >= 0]))


def test_pairwise_keeps_the_seed_match_and_proto_takes_fisher_matches():
    from pairclass import PairwiseClassifier

    views, T, _ = two_views(2)
    X = views["a"]
    seed = PairwiseClassifier(**PARAMS).fit(X, T).predict(X)
    np.testing.assert_array_equal(run_method("pairwise", views, T, PARAMS).pred["a"], seed)
    first = PairwiseClassifier(**PARAMS, match="fisher").fit(X, T).predict(X)
    refined = refine_class_embeddings(X, T, first, prior_count=PARAMS["min_count"])
    expected = PairwiseClassifier(**PARAMS, match="fisher").fit(X, refined).predict(X)
    np.testing.assert_array_equal(run_method("proto", views, T, PARAMS).pred["a"], expected)
    seed_proto = run_method("proto", views, T, dict(PARAMS, match="cosine")).pred["a"]
    assert (seed_proto != expected).any()


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


def test_proto_moves_only_recognised_classes_and_cotrain_takes_either_views(monkeypatch):
    from types import SimpleNamespace

    import pairclass.methods as methods

    # Every bracket (stubbed) returns the same labels: class 2 gets ten items of class 0's cluster
    # (the way an absent class wins items on misleading pair dimensions). Their mean is class 0's to
    # the zero-shot rule, so class 2 keeps its embedding.
    rng = np.random.default_rng(4)
    T = np.eye(3)
    X = np.abs(np.vstack([rng.normal([1.0, 0.0, 0.0], 0.2, size=(40, 3)), rng.normal([0.0, 1.0, 0.0], 0.2, size=(40, 3))]))
    labels = np.repeat([0, 1], 40)
    labels[:10] = 2
    seen = []

    def bracket(X, T, params, pseudo_labels=None):
        seen.append(np.array(T))
        return SimpleNamespace(pred=labels.copy(), confidence=np.ones(len(X))), 0

    monkeypatch.setattr(methods, "_pairwise", bracket)
    run_method("proto", {"a": X}, T, PARAMS)
    assert recognised_classes(X, T, labels).tolist() == [True, True, False]
    np.testing.assert_array_equal(seen[1][2], T[2])
    np.testing.assert_allclose(seen[1][:2], refine_class_embeddings(X, T, labels, prior_count=PARAMS["min_count"])[:2])
    assert not np.allclose(seen[1][:2], T[:2])

    # Two views: view b puts class 1's items where the zero-shot rule calls them class 0, yet view a
    # recognises class 1, so class 1 moves in both views' second bracket.
    views = {"a": X, "b": np.vstack([X[:40], X[40:, [1, 0, 2]]])}
    assert recognised_classes(views["b"], T, labels).tolist() == [True, False, False]
    seen.clear()
    run_method("cotrain", views, T, PARAMS)
    for refined in seen[-3::2]:  # each view: a bracket on T, then one on the refined embeddings
        moved = ~np.isclose(refined, T).all(axis=1)
        assert moved.tolist() == [True, True, False]


def test_class_prior_weighs_each_class_embedding_as_one_average_class_of_the_batch():
    from pairclass import PairwiseClassifier

    views, T, _ = two_views(2)
    X = views["a"]
    first = PairwiseClassifier(**PARAMS, match="fisher").fit(X, T).predict(X)
    recognised = recognised_classes(X, T, first)
    assert recognised.all()
    refined = refine_class_embeddings(X, T, first, prior_count=len(X) / len(T))
    expected = PairwiseClassifier(**PARAMS, match="fisher").fit(X, refined).predict(X)
    got = run_method("proto", {"a": X}, T, dict(PARAMS, proto_prior="class")).pred["a"]
    np.testing.assert_array_equal(got, expected)
    assert (got != run_method("proto", {"a": X}, T, PARAMS).pred["a"]).any()


def test_class_prior_in_cotrain_counts_only_the_items_the_views_agree_on(monkeypatch):
    from types import SimpleNamespace

    import pairclass.methods as methods

    # Stubbed brackets: each view always returns its own labels; they agree on 50 of 80 items.
    rng = np.random.default_rng(5)
    T = np.eye(2)
    X = np.abs(np.vstack([rng.normal([1.0, 0.0], 0.2, size=(40, 2)), rng.normal([0.0, 1.0], 0.2, size=(40, 2))]))
    views = {"a": X, "b": X.copy()}
    labels = {"a": np.repeat([0, 1], 40), "b": np.repeat([0, 1], 40)}
    labels["b"][:30] = 1
    seen = []

    def bracket(X, T, params, pseudo_labels=None):
        seen.append(np.array(T))
        view = "a" if X is views["a"] else "b"
        return SimpleNamespace(pred=labels[view].copy(), confidence=np.ones(len(X))), 0

    monkeypatch.setattr(methods, "_pairwise", bracket)
    run_method("cotrain", views, T, dict(PARAMS, proto_prior="class"))
    agreed = np.where(labels["a"] == labels["b"], labels["a"], -1)
    expected = refine_class_embeddings(X, T, agreed, prior_count=50 / 2)
    assert not np.allclose(expected, refine_class_embeddings(X, T, agreed, prior_count=80 / 2))
    for refined in seen[-3::2]:
        np.testing.assert_allclose(refined, expected)


def test_unknown_proto_prior_is_an_input_error():
    from pairclass.errors import InputError

    views, T, _ = two_views()
    with pytest.raises(InputError, match="unknown prototype prior 'items'; choose from min-count, class"):
        run_method("cotrain", views, T, dict(PARAMS, proto_prior="items"))
