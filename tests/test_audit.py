"""pairclass audit: each signal against a brute-force reference, the combination on known flips, the
issues table and summary, the report data, the CLI and its one-line errors."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from typer.testing import CliRunner

from pairclass.audit import (
    audit_arrays, fit_product, nearest_neighbours, neighbour_votes, out_of_fold_proba, pair_scores, project,
    run_audit,
)
from pairclass.classify import PairwiseClassifier, pair_index
from pairclass.cli import app
from pairclass.report import AuditReport, write_audit_report

N_CLASSES, DIM, PER_CLASS, N_FLIPS = 5, 32, 80, 40
NAMES = [f"class {i}" for i in range(N_CLASSES)]


def noisy_items(n_flips=N_FLIPS, seed=0, per_class=PER_CLASS):
    """Two views clustered around per-class directions, with ``n_flips`` labels moved to another class."""
    rng = np.random.default_rng(seed)
    T = rng.normal(size=(N_CLASSES, DIM))
    y = np.repeat(np.arange(N_CLASSES), per_class)
    views = {v: (T[y] + rng.normal(0, 1.2, size=(y.size, DIM))).astype(np.float32) for v in ("image", "text")}
    flips = rng.choice(y.size, n_flips, replace=False)
    given = y.copy()
    given[flips] = (y[flips] + rng.integers(1, N_CLASSES, n_flips)) % N_CLASSES
    return views, T, y, given, flips


def write_files(tmp_path, views, T, given, *, label_col="category", names=NAMES, extra=None):
    col = lambda X: pa.array([list(map(float, r)) for r in X], type=pa.list_(pa.float32()))  # noqa: E731
    items = {"product_id": [f"p{i}" for i in range(len(given))]}
    items.update({v: col(X) for v, X in views.items()})
    if label_col:
        items[label_col] = [None if i is None else names[i] for i in given]
    items.update(extra or {})
    emb, cls = tmp_path / "emb.parquet", tmp_path / "classes.parquet"
    pq.write_table(pa.table(items), emb)
    pq.write_table(pa.table({"name": names, "embedding": col(T)}), cls)
    return emb, cls


@pytest.fixture(scope="module")
def audited():
    views, T, y, given, flips = noisy_items()
    result = audit_arrays(project(views), given, NAMES, seed=3)
    return result, y, given, flips


# ------------------------------------------------------------------ signals against references
def test_out_of_fold_proba_is_cross_val_predict():
    views, _, _, given, _ = noisy_items()
    X = views["image"]
    cv = StratifiedKFold(5, shuffle=True, random_state=4)
    ref = cross_val_predict(LogisticRegression(max_iter=1000), X, given, cv=cv, method="predict_proba")
    np.testing.assert_allclose(out_of_fold_proba(X, given, N_CLASSES, seed=4), ref, atol=1e-5)


def test_out_of_fold_proba_learns_only_from_trusted_labels():
    views, _, _, given, flips = noisy_items()
    X = views["image"]
    trusted = np.ones(given.size, bool)
    trusted[flips] = False
    p = out_of_fold_proba(X, given, N_CLASSES, seed=1, trusted=trusted)
    relabelled = given.copy()
    relabelled[flips] = (given[flips] + 1) % N_CLASSES
    # The untrusted labels shape nothing but the folds, so keep the folds and change them.
    cv = StratifiedKFold(5, shuffle=True, random_state=1)
    for train, test in cv.split(X, given):
        train = train[trusted[train]]
        model = LogisticRegression(max_iter=1000).fit(X[train], relabelled[train])
        np.testing.assert_allclose(p[test], model.predict_proba(X[test]), atol=1e-5)


def test_out_of_fold_proba_stratifies_no_more_folds_than_the_largest_class_has_items():
    views, _, _, given, _ = noisy_items()
    keep = np.concatenate([np.flatnonzero(given == c)[:3] for c in range(N_CLASSES)])
    X, y = views["image"][keep], given[keep]
    cv = StratifiedKFold(3, shuffle=True, random_state=2)
    ref = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=cv, method="predict_proba")
    np.testing.assert_allclose(out_of_fold_proba(X, y, N_CLASSES, folds=5, seed=2), ref, atol=1e-5)


def test_out_of_fold_proba_gives_zero_to_a_class_no_training_item_carries():
    views, _, _, given, _ = noisy_items()
    p = out_of_fold_proba(views["image"], given, N_CLASSES + 2, seed=0)
    assert p.shape == (given.size, N_CLASSES + 2)
    assert (p[:, N_CLASSES:] == 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("cross", [False, True])
def test_exact_neighbours_are_the_brute_force_ones(cross):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    Q = rng.normal(size=(300, 8)).astype(np.float32) if cross else X
    found = nearest_neighbours(X, 5, Q if cross else None)
    d = ((Q[:, None] - X[None]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_array_equal(found, np.argsort(d, axis=1)[:, :5])


@pytest.mark.parametrize("storage", ["fp16", "fp32"])
def test_approximate_neighbours_recall_the_exact_ones(storage):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16))
    X = (centres[rng.integers(0, 20, 4000)] + 0.3 * rng.normal(size=(4000, 16))).astype(np.float32)
    exact = nearest_neighbours(X, 10, exact=True)
    approx = nearest_neighbours(X, 10, exact=False, seed=2, storage=storage)
    assert not (approx == np.arange(4000)[:, None]).any()
    assert np.mean([np.isin(a, e).mean() for a, e in zip(approx, exact)]) >= 0.9
    np.testing.assert_array_equal(approx, nearest_neighbours(X, 10, exact=False, seed=2, storage=storage))


def test_float16_rows_find_the_float32_rows_neighbours():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 32)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    half = nearest_neighbours(X, 10, exact=False, seed=0, storage="fp16")
    full = nearest_neighbours(X, 10, exact=False, seed=0, storage="fp32")
    assert np.mean([np.isin(h, f).mean() for h, f in zip(half, full)]) >= 0.99


def test_an_unknown_storage_is_refused():
    with pytest.raises(ValueError, match="fp16, fp32"):
        nearest_neighbours(np.zeros((10, 2), np.float32), 2, storage="int8")


def test_neighbour_votes_count_the_trusted_neighbours():
    rng = np.random.default_rng(2)
    idx = rng.integers(-1, 50, size=(50, 7))
    labels = rng.integers(0, 4, 50)
    trusted = rng.random(50) < 0.7
    votes, voters = neighbour_votes(idx, labels, 4, trusted=trusted)
    for i in range(50):
        ref = np.zeros(4)
        for j in idx[i]:
            if j >= 0 and trusted[j]:
                ref[labels[j]] += 1
        np.testing.assert_array_equal(votes[i], ref)
        assert voters[i] == ref.sum()


def test_product_of_experts_is_a_likelihood_optimum():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(300, 4))
    labels = (signal + rng.gumbel(size=(300, 4)) * 0.5).argmax(axis=1)
    features = [signal, rng.normal(size=(300, 4))]  # the second carries nothing
    fit = fit_product(features, labels)

    def nll(w, offset):
        z = w[0] * features[0] + w[1] * features[1] + offset
        return -log_softmax(z, axis=1)[np.arange(300), labels].mean() + 1e-3 * offset @ offset

    assert fit.nll == pytest.approx(nll(fit.weights, fit.offset), rel=1e-4)
    assert fit.weights[0] > 5 * fit.weights[1]
    for step in ([0.2, 0], [-0.2, 0], [0, 0.2]):
        assert nll(fit.weights * (1 + np.array(step)) + np.array(step) * 0.1, fit.offset) > fit.nll


@pytest.mark.parametrize("candidates", [N_CLASSES, 3])
def test_pair_scores_are_the_potential_of_the_candidates_margins(candidates):
    views, T, _, given, _ = noisy_items()
    X = views["image"]
    clf = PairwiseClassifier(T, k=8, min_count=5).fit(X)
    s = pair_scores(clf, X[:20], given=given[:20], candidates=candidates)
    margins = clf.pair_margins(X[:20])
    cos = X[:20] @ clf.class_embeddings_.T
    for i in range(20):
        cands = set(np.argsort(-cos[i])[:candidates].tolist())
        if given[i] not in cands:
            cands.remove(int(np.argsort(-cos[i])[candidates - 1]))
            cands.add(int(given[i]))
        for a in cands:
            ref = sum(margins[i, pair_index(a, c, N_CLASSES)] * (1 if a < c else -1) for c in cands if c != a)
            assert s[i, a] == pytest.approx(ref / candidates, abs=1e-5)
        others = [c for c in range(N_CLASSES) if c not in cands]
        assert all(s[i, c] < min(s[i, a] for a in cands) for c in others)


# ----------------------------------------------------------------------- the combination
def test_flipped_labels_rank_first_and_the_flagged_count_is_near_the_flips(audited):
    result, y, given, flips = audited
    rank = result.items["rank"].to_numpy()
    top = np.argsort(rank)[: flips.size]
    assert np.isin(top, flips).mean() >= 0.9
    flagged = result.items["is_label_issue"].to_numpy(zero_copy_only=False)
    assert flips.size / 1.5 <= flagged.sum() <= 1.5 * flips.size
    suggested = np.array([NAMES.index(s) for s in result.items["suggested_label"].to_pylist()])
    hit = flips[flagged[flips]]
    assert (suggested[hit] == y[hit]).mean() >= 0.9
    assert (suggested != given).all()


def test_every_signal_alone_finds_the_flips():
    views, T, _, given, flips = noisy_items()
    for signals in (("classifier",), ("neighbours",)):
        result = audit_arrays(project(views), given, NAMES, signals=signals)
        top = np.argsort(result.items["rank"].to_numpy())[: flips.size]
        assert np.isin(top, flips).mean() >= 0.8, signals
        assert set(result.weights) == ({"classifier"} if signals == ("classifier",) else
                                       {"neighbours:image", "neighbours:text", "neighbours:image>text",
                                        "neighbours:text>image"})


def test_clean_labels_flag_few():
    views, _, y, _, _ = noisy_items()
    result = audit_arrays(project(views), y, NAMES)
    assert result.n_flagged <= 0.03 * y.size


def test_same_seed_same_ranking():
    views, _, _, given, _ = noisy_items()
    features = project(views, seed=5)
    a = audit_arrays(features, given, NAMES, seed=5)
    b = audit_arrays(project(views, seed=5), given, NAMES, seed=5)
    assert a.items.equals(b.items)


def test_issues_table_schema_and_summary(audited):
    result, _, given, _ = audited
    t = result.items
    assert t.column_names == ["product_id", "given_label", "suggested_label", "label_score", "is_label_issue",
                              "rank", "reasons"]
    score = t["label_score"].to_numpy()
    assert ((score >= 0) & (score <= 1)).all()
    rank = t["rank"].to_numpy()
    assert sorted(rank.tolist()) == list(range(1, given.size + 1))
    assert np.all(np.diff(score[np.argsort(rank)]) >= 0)
    flagged = t["is_label_issue"].to_numpy(zero_copy_only=False)
    reasons = np.array(t["reasons"].to_pylist(), dtype=object)
    assert all(reasons[flagged]) and not any(reasons[~flagged])
    summary = result.summary()
    assert [row["class"] for row in summary] == NAMES
    assert [row["items"] for row in summary] == np.bincount(given).tolist()
    assert sum(row["flagged"] for row in summary) == result.n_flagged == flagged.sum()
    assert sum(row["suggested_here"] for row in summary) == result.n_flagged
    for row in summary:
        assert 0 <= row["estimated_noise_rate"] <= 1
        assert sum(row["flagged_to"].values()) <= row["flagged"]
    top = result.top(5)
    assert [r["rank"] for r in top] == sorted(r["rank"] for r in top)


def test_reasons_name_the_evidence(audited):
    result, _, _, _ = audited
    first = result.top(1)[0]
    assert f"say {first['suggested_label']}" in first["reasons"] or f"says {first['suggested_label']}" in \
        first["reasons"]
    openings = ("neighbours in both views", "both views' neighbours", "image's neighbours", "text's neighbours",
                "the classifier")
    assert any(r["reasons"].startswith(openings) for r in result.top(20))


def test_report_data_from_the_result(audited, tmp_path):
    result, _, given, _ = audited
    report = result.report("items.parquet", max_suspects=7)
    assert isinstance(report, AuditReport)
    assert report.n_flagged == result.n_flagged == report.corrections.sum()
    assert report.suspects.num_rows == 7
    assert report.suspects["rank"].to_pylist() == [r["rank"] for r in result.top(7)]
    assert set(report.noise_rate) == set(NAMES)
    assert np.trace(report.corrections) == 0
    path = write_audit_report(report, tmp_path / "audit.html")
    assert result.top(1)[0]["product_id"] in path.read_text()


def test_zero_shot_audit_says_so_and_finds_flips(tmp_path):
    views, T, _, given, flips = noisy_items()
    result = audit_arrays(project(views), given, NAMES, raw=views, class_embeddings=T, signals=("zero-shot",),
                          rounds=1, k=12, min_count=5)
    assert result.evidence == "zero-shot" and "zero-shot" in result.note
    assert result.to_json()["evidence"] == "zero-shot"
    top = np.argsort(result.items["rank"].to_numpy())[: flips.size]
    assert np.isin(top, flips).mean() >= 0.7


# --------------------------------------------------------------------- files and the CLI
def _cli(*args):
    return CliRunner().invoke(app, ["audit", *map(str, args)])


def test_run_audit_reads_shards_keeps_columns_and_matches_the_cli(tmp_path):
    views, T, _, given, flips = noisy_items()
    titles = [f"title {i}" for i in range(given.size)]
    emb, cls = write_files(tmp_path, views, T, given, extra={"title": titles})
    shards = tmp_path / "shards"
    shards.mkdir()
    table = pq.read_table(emb)
    pq.write_table(table.slice(0, 150), shards / "part-0.parquet")
    pq.write_table(table.slice(150), shards / "part-1.parquet")
    out = tmp_path / "issues.parquet"
    one = run_audit(emb, cls, label_col="category", views=["image", "text"], keep_cols=["title"], seed=3, out=out)
    many = run_audit(shards, cls, label_col="category", views=["image", "text"], keep_cols=["title"], seed=3)
    assert one.items.equals(many.items)
    written = pq.read_table(out)
    assert written.equals(one.items)
    assert written["title"].to_pylist() == titles
    res = _cli(emb, "--classes", cls, "--label-col", "category", "--views", "image,text", "--keep-cols", "title",
               "--seed", 3, "--top", 5, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary == one.to_json(5)
    assert summary["n_flagged"] == one.n_flagged and len(summary["top"]) == 5
    assert {"n_items", "evidence", "signals", "classes", "top"} <= set(summary)


def test_cli_table_report_and_unlabelled_rows(tmp_path):
    views, T, _, given, _ = noisy_items()
    labels = [int(g) for g in given]
    labels[:3] = [None] * 3
    emb, cls = write_files(tmp_path, views, T, labels)
    report = tmp_path / "audit.html"
    res = _cli(emb, "--classes", cls, "--label-col", "category", "--views", "image,text", "--top", 5,
               "--out", tmp_path / "issues.csv", "--report", report)
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    assert "per class" in res.stderr and "3 items without a label were left out" in res.stderr
    assert len((tmp_path / "issues.csv").read_text().splitlines()) == given.size - 3 + 1
    assert report.read_text().startswith("<!DOCTYPE html>")


def test_cli_zero_shot_note(tmp_path):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, views, T, given)
    res = _cli(emb, "--classes", cls, "--label-col", "category", "--views", "image,text", "--zero-shot",
               "--k", 12, "--min-count", 5)
    assert res.exit_code == 0, res.output
    assert "Note: zero-shot evidence only" in " ".join(res.stderr.split())


def _error(tmp_path, given, *extra, n=None, views=None):
    base, T, _, _, _ = noisy_items()
    views = views or {"image": base["image"][: len(given)]}
    emb, cls = write_files(tmp_path, views, T, given)
    res = _cli(emb, "--classes", cls, "--label-col", "category", "--views", ",".join(views), *extra)
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1
    return res.stderr.strip(), emb


def test_error_single_class(tmp_path):
    line, emb = _error(tmp_path, np.zeros(50, int))
    assert line == f"Error: {emb}: category: all items carry the single label 'class 0'; the audit needs at least 2 classes"


def test_error_class_with_one_item(tmp_path):
    given = np.repeat([0, 1], 25)
    given[0] = 2
    line, emb = _error(tmp_path, given)
    assert line == (f"Error: {emb}: category: 1 class(es) have a single item, e.g. 'class 2'; the audit needs at "
                    "least 2 items per class it checks")


def test_error_label_not_among_classes(tmp_path):
    base, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": base["image"]}, T, given)
    pq.write_table(pa.table({"name": NAMES[:4], "embedding": pq.read_table(cls)["embedding"].slice(0, 4)}), cls)
    res = _cli(emb, "--classes", cls, "--label-col", "category", "--views", "image")
    assert res.exit_code == 2
    assert res.stderr.strip() == f"Error: {emb}: category: 1 label(s) are not among the classes, e.g. 'class 4'"


def test_error_two_rows(tmp_path):
    line, emb = _error(tmp_path, np.array([0, 1]))
    assert line == f"Error: {emb}: category: 2 labelled item(s); the audit needs at least 10"


def test_error_negative_seed(tmp_path):
    line, _ = _error(tmp_path, np.repeat([0, 1], 10), "--seed", "-1")
    assert line == "Error: Invalid value for '--seed': Input should be greater than or equal to 0"


def test_error_unknown_signal(tmp_path):
    line, _ = _error(tmp_path, np.repeat([0, 1], 10), "--signals", "classifier,votes")
    assert line == "Error: signals must be some of classifier, neighbours, zero-shot; got classifier, votes"


def test_error_missing_label_column(tmp_path):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": views["image"]}, T, given, label_col=None)
    res = _cli(emb, "--classes", cls, "--label-col", "category", "--views", "image")
    assert res.exit_code == 2
    assert res.stderr.strip() == f"Error: {emb}: category: column not found (columns: product_id, image)"


@pytest.mark.parametrize("target", ["emb", "cls", "report at the input"])
def test_an_output_onto_an_input_is_refused_and_the_input_kept(tmp_path, target):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": views["image"]}, T, given)
    before = {p: p.read_bytes() for p in (emb, cls)}
    victim = cls if target == "cls" else emb
    option = "--report" if target.startswith("report") else "--out"
    res = _cli(emb, "--classes", cls, "--label-col", "category", "--views", "image", option, victim)
    assert res.exit_code == 2
    assert res.stderr == f"Error: {victim}: is an input of this run ({victim}); choose another {option}\n"
    assert {p: p.read_bytes() for p in (emb, cls)} == before


@pytest.mark.parametrize("kind", ["parent is a file", "a folder is in the way"])
def test_a_failed_write_is_one_line(tmp_path, kind):
    views, T, _, given, _ = noisy_items()
    emb, cls = write_files(tmp_path, {"image": views["image"]}, T, given)
    if kind == "parent is a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "issues.parquet"
    else:
        out = tmp_path / "issues.parquet"
        out.mkdir()
    res = _cli(emb, "--classes", cls, "--label-col", "category", "--views", "image", "--out", out)
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"Error: {out}: cannot write: ")


def test_two_thousand_classes_stay_within_memory(tmp_path):
    """The zero-shot evidence plays each item's top classes, never every pair of 2,000 classes (a
    1,999,000 x 2,000 float32 matrix would be 16 GB): the whole audit allocates under 1 GiB."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n_classes, dim = 2000, 8
    T = rng.normal(size=(n_classes, dim)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), 2)
    views = {"image": (T[y] + rng.normal(0, 0.1, size=(y.size, dim))).astype(np.float32)}
    names = [f"class {i}" for i in range(n_classes)]
    emb, cls = write_files(tmp_path, views, T, y, names=names)
    tracemalloc.start()
    try:
        result = run_audit(emb, cls, label_col="category", views=["image"], zero_shot=True, k=4, min_count=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 30
    assert result.items.num_rows == y.size and len(result.classes) == n_classes
    # the items sit on their own class embeddings: few of their labels are suspect
    assert result.n_flagged < 0.05 * y.size
