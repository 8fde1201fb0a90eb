"""pairclass audit: label issues from the pairwise classifier and cleanlab, library and CLI."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pairclass.audit import audit_labels, combine_views, fit_calibration, pair_scores, run_audit
from pairclass.classify import PairwiseClassifier, pair_index
from pairclass.cli import app

N_CLASSES, DIM, PER_CLASS = 5, 32, 80


def noisy_items(n_flips=40, seed=0):
    """Two views clustered around per-class directions, with ``n_flips`` labels moved to another class."""
    rng = np.random.default_rng(seed)
    T = rng.normal(size=(N_CLASSES, DIM))
    y = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    views = {v: T[y] + rng.normal(0, 1.2, size=(y.size, DIM)) for v in ("image", "text")}
    flips = rng.choice(y.size, n_flips, replace=False)
    given = y.copy()
    given[flips] = (y[flips] + rng.integers(1, N_CLASSES, n_flips)) % N_CLASSES
    return views, T, y, given, flips


def write_files(tmp_path, views, T, given, *, label_col="category", names=None):
    names = names or [f"class {i}" for i in range(T.shape[0])]
    col = lambda X: pa.array([list(map(float, r)) for r in X], type=pa.list_(pa.float32()))  # noqa: E731
    items = {"product_id": [f"p{i}" for i in range(given.size)]}
    items.update({v: col(X) for v, X in views.items()})
    if label_col:
        items[label_col] = [names[i] for i in given]
    emb, cls = tmp_path / "emb.parquet", tmp_path / "classes.parquet"
    pq.write_table(pa.table(items), emb)
    pq.write_table(pa.table({"name": names, "embedding": col(T)}), cls)
    return emb, cls


def test_pair_scores_are_the_least_squares_potential_of_the_margins():
    views, T, _, _, _ = noisy_items()
    X = views["image"]
    clf = PairwiseClassifier(T, k=8, min_count=5).fit(X)
    s = pair_scores(clf, X[:20])
    margins = clf.pair_margins(X[:20])
    C = T.shape[0]
    sign = lambda a, c: 1 if a < c else -1  # noqa: E731
    for i in range(20):
        for a in range(C):
            ref = sum(margins[i, pair_index(a, c, C)] * sign(a, c) for c in range(C) if c != a)
            assert s[i, a] == pytest.approx(ref / C, abs=1e-5)
        # The potential reproduces the margins exactly when they are consistent; here it is their best fit.
        diffs = s[i][:, None] - s[i][None, :]
        a, b = np.triu_indices(C, 1)
        lsq = np.linalg.lstsq(np.eye(C)[a] - np.eye(C)[b], margins[i], rcond=None)[0]
        np.testing.assert_allclose(diffs, lsq[:, None] - lsq[None, :], atol=1e-5)


def test_calibration_is_a_likelihood_optimum():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(300, 4))
    labels = (scores + rng.gumbel(size=(300, 4)) * 0.5).argmax(axis=1)
    cal = fit_calibration(scores, labels)
    nll = lambda scale, off: -np.mean(  # noqa: E731
        np.log(combine_views([scale * scores + off])[np.arange(300), labels]))
    assert cal.nll == pytest.approx(nll(cal.scale, cal.offset) + 1e-3 * cal.offset @ cal.offset, rel=1e-4)
    for s in (0.5 * cal.scale, 2 * cal.scale):
        assert nll(s, cal.offset) > nll(cal.scale, cal.offset)


@pytest.mark.parametrize("prototypes", ["labels", "text"])
def test_flipped_labels_rank_first(prototypes):
    views, T, _, given, flips = noisy_items()
    out = audit_labels(views, T, given, prototypes=prototypes, k=12, min_count=5)
    top = np.argsort(out.rank)[: flips.size]
    precision = np.isin(top, flips).mean()
    chance = flips.size / given.size
    assert precision >= 0.8 > 4 * chance
    assert np.isin(flips, np.flatnonzero(out.is_issue)).mean() >= 0.7
    # Suggested labels point back to the true class for most flagged flips.
    _, _, y, _, _ = noisy_items()
    hit = flips[out.is_issue[flips]]
    assert (out.suggested[hit] == y[hit]).mean() >= 0.8
    assert (out.suggested != given).all()


def test_clean_data_flags_few():
    views, T, y, _, _ = noisy_items()
    out = audit_labels(views, T, y, k=12, min_count=5)
    assert out.is_issue.mean() < 0.05


def test_ranks_put_flagged_items_first_by_quality():
    views, T, _, given, _ = noisy_items()
    out = audit_labels(views, T, given, k=12, min_count=5)
    n_flag = int(out.is_issue.sum())
    assert sorted(out.rank.tolist()) == list(range(1, given.size + 1))
    assert out.is_issue[out.rank <= n_flag].all()
    flagged_by_rank = np.argsort(out.rank)[:n_flag]
    assert np.all(np.diff(out.quality[flagged_by_rank]) >= 0)


def test_run_audit_writes_every_row_and_matches_the_cli(tmp_path):
    views, T, _, given, flips = noisy_items()
    emb, cls = write_files(tmp_path, views, T, given)
    out = tmp_path / "issues.parquet"
    result = run_audit(emb, cls, label_col="category", views=["image", "text"], k=12, min_count=5,
                       seed=3, out=out)
    table = pq.read_table(out)
    assert table.num_rows == given.size == result.n_items
    assert table.column("product_id").to_pylist() == [f"p{i}" for i in range(given.size)]
    issues = table.filter(pa.compute.field("is_issue")).sort_by("rank")
    assert issues.column("product_id").to_pylist() == result.flagged_ids
    assert all(r.startswith(("both views prefer", "image prefers", "text prefers"))
               for r in issues.column("reason").to_pylist())
    flagged_idx = [int(i[1:]) for i in result.flagged_ids]
    assert np.isin(flagged_idx[: flips.size // 2], flips).mean() >= 0.8

    res = CliRunner().invoke(app, [
        "audit", str(emb), "--classes", str(cls), "--label-col", "category", "--views", "image,text",
        "--k", "12", "--min-count", "5", "--seed", "3", "--json",
    ])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == result.to_json()


def test_cli_table_and_out(tmp_path):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": views["image"]}, T, given)
    out = tmp_path / "issues.csv"
    res = CliRunner().invoke(app, [
        "audit", str(emb), "--classes", str(cls), "--label-col", "category", "--views", "image",
        "--k", "12", "--min-count", "5", "--top", "5", "--out", str(out),
    ])
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    assert "image prefers" in res.stderr
    assert len(out.read_text().splitlines()) == given.size + 1


def test_same_seed_same_output(tmp_path):
    views, T, _, given, _ = noisy_items()
    a = audit_labels(views, T, given, k=12, min_count=5, seed=7)
    b = audit_labels(views, T, given, k=12, min_count=5, seed=7)
    np.testing.assert_array_equal(a.rank, b.rank)
    np.testing.assert_array_equal(a.quality, b.quality)


def _invoke(emb, cls, label_col="category"):
    return CliRunner().invoke(app, [
        "audit", str(emb), "--classes", str(cls), "--label-col", label_col, "--views", "image",
    ])


def test_error_missing_label_column(tmp_path):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": views["image"]}, T, given, label_col=None)
    res = _invoke(emb, cls)
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == (
        f"Error: {emb}: category: column not found (columns: product_id, image)"
    )


def test_error_labels_not_among_classes(tmp_path):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": views["image"]}, T, given)
    pq.write_table(pa.table({"name": [f"class {i}" for i in range(4)],
                             "embedding": pq.read_table(cls).column("embedding").slice(0, 4)}), cls)
    res = _invoke(emb, cls)
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == (
        f"Error: {emb}: category: 1 label(s) are not among the classes, e.g. 'class 4'"
    )


def test_error_single_class(tmp_path):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": views["image"]}, T, np.zeros_like(given))
    res = _invoke(emb, cls)
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == (
        f"Error: {emb}: category: all items carry the single label 'class 0'; "
        "the audit needs at least 2 classes"
    )


def test_error_bad_prototypes(tmp_path):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": views["image"]}, T, given)
    res = CliRunner().invoke(app, [
        "audit", str(emb), "--classes", str(cls), "--label-col", "category", "--views", "image",
        "--prototypes", "centroids",
    ])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == "Error: prototypes must be one of labels, text; got 'centroids'"
