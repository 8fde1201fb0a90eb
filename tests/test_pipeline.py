"""The streaming pipeline: sources, scans, sinks and streamed metrics against in-memory references."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, f1_score
from typer.testing import CliRunner

from pairclass import PairwiseClassifier, run_classify
from pairclass.classify import l2_normalize
from pairclass.cli import app
from pairclass.engines import LocalEngine
from pairclass.errors import InputError
from pairclass.io import ArraySource, MemorySink, ParquetSource
from pairclass.methods import METHODS, Method
from pairclass.pipeline import classify

from conftest import clustered, embedding_array, predictions, run_methods

ROOT = Path(__file__).resolve().parent.parent
VIEWS = ["clip_image_features", "clip_text_features"]
EST = dict(k=4, min_count=3)
runner = CliRunner()


def data(n_per_class=30, n_classes=4, dim=12, seed=0):
    X1, T, y = clustered(n_per_class, n_classes, dim, noise=0.8, nuisance=2.0, seed=seed)
    X2, _, _ = clustered(n_per_class, n_classes, dim, noise=0.9, nuisance=2.0, seed=seed + 50)
    return {VIEWS[0]: X1, VIEWS[1]: X2}, l2_normalize(T.astype(np.float64)), y


def write_shards(folder, views, labels, names, cuts, ids=None):
    """The items as parquet part files split at ``cuts``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    ids = [f"p{i}" for i in range(n)] if ids is None else ids
    for part, rows in enumerate(np.split(np.arange(n), cuts)):
        pq.write_table(pa.table({
            "product_id": [ids[i] for i in rows],
            **{v: embedding_array(X[rows]) for v, X in views.items()},
            "category": [names[labels[i]] for i in rows],
        }), folder / f"part-{part:03d}.parquet")
    return folder


def class_file(path, T, names):
    pq.write_table(pa.table({"name": names, "embedding": embedding_array(T)}), path)
    return path


def run_source(source, T, names, methods, **options):
    sink = MemorySink()
    outcome = classify(source, PairwiseClassifier(**EST), T, names, methods=methods, sink=sink, **options)
    return outcome, sink.table


@pytest.mark.parametrize("method", list(METHODS))
def test_sharded_small_batches_give_exactly_the_in_memory_predictions(tmp_path, method):
    views, T, y = data()
    names = [f"c{i}" for i in range(len(T))]
    folder = write_shards(tmp_path / "shards", views, y, names, [7, 50, 51, 90])
    streamed, table = run_source(ParquetSource(folder, VIEWS, label_col="category", batch_rows=13), T, names,
                                 [method])
    whole, memory = run_source(ArraySource(views, labels=[names[i] for i in y], batch_rows=len(y)), T, names,
                               [method])
    assert streamed.diagnostics["n_scans"] > 1 or method == "baseline"
    for m in whole.methods:
        if m == "default":
            continue
        got, expected = predictions(table, m, VIEWS), predictions(memory, m, VIEWS)
        for v in VIEWS:
            np.testing.assert_array_equal(got[v], expected[v], err_msg=f"{m} {v}")
    assert streamed.methods == whole.methods


def test_item_order_and_shard_boundaries_do_not_change_predictions(tmp_path):
    views, T, y = data(seed=1)
    names = [f"c{i}" for i in range(len(T))]
    order = np.random.default_rng(0).permutation(len(y))
    ids = [f"p{i}" for i in range(len(y))]
    first = write_shards(tmp_path / "a", views, y, names, [60])
    shuffled = write_shards(tmp_path / "b", {v: X[order] for v, X in views.items()}, y[order], names, [3, 4, 100],
                            ids=[ids[i] for i in order])
    methods = ["pairwise", "cotrain", "joint", "cotrain_gmm"]
    _, a = run_source(ParquetSource(first, VIEWS, batch_rows=64), T, names, methods)
    _, b = run_source(ParquetSource(shuffled, VIEWS, batch_rows=5), T, names, methods)
    assert b.column("product_id").to_pylist() == [ids[i] for i in order]
    for m in methods:
        pa_, pb = predictions(a, m, VIEWS), predictions(b, m, VIEWS)
        for v in VIEWS:
            np.testing.assert_array_equal(pb[v], pa_[v][order], err_msg=m)


def test_demo_data_streamed_equals_in_memory():
    source = ParquetSource(ROOT / "data" / "demo.parquet", ["product_name", "description"], label_col="category",
                           batch_rows=100)
    classes = pq.read_table(ROOT / "data" / "demo_classes.parquet")
    T = np.asarray(classes.column("embedding").to_pylist())
    names = classes.column("name").to_pylist()
    methods = ["pairwise", "proto", "cotrain", "joint"]
    streamed, table = run_source(source, T, names, methods)
    data_ = source.read_all()
    whole, memory = run_source(ArraySource(data_.views, labels=data_.labels, batch_rows=2000), T, names, methods)
    for m in methods:
        for v, p in predictions(table, m, data_.views).items():
            np.testing.assert_array_equal(p, predictions(memory, m, data_.views)[v])
    assert streamed.methods == whole.methods


def test_engines_threads_and_the_cache_change_nothing(tmp_path):
    views, T, y = data(seed=2)
    names = [f"c{i}" for i in range(len(T))]
    folder = write_shards(tmp_path / "s", views, y, names, [40])
    runs = [run_source(ParquetSource(folder, VIEWS, batch_rows=9), T, names, ["cotrain"],
                       engine=LocalEngine(workers), cache=cache, cache_dir=tmp_path / "cache")[1]
            for workers, cache in ((1, True), (2, True), (2, False), (3, True))]
    for other in runs[1:]:
        assert other.equals(runs[0])
    assert not any((tmp_path / "cache").iterdir())  # the cache is gone after the run


def test_no_batch_is_larger_than_batch_rows(tmp_path, monkeypatch):
    import pairclass.io.source as source_module

    views, T, y = data()
    names = [f"c{i}" for i in range(len(T))]
    folder = write_shards(tmp_path / "s", views, y, names, [100])
    seen = []
    original = source_module.embedding_matrix

    def spy(column, **kwargs):
        seen.append(len(column))
        return original(column, **kwargs)

    monkeypatch.setattr(source_module, "embedding_matrix", spy)
    run_source(ParquetSource(folder, VIEWS, batch_rows=11), T, names, ["cotrain"])
    assert max(seen) == 11 and sum(seen[2:]) == 2 * len(y)  # the first two: the width probe


def test_streamed_metrics_equal_scikit_learns(tmp_path):
    views, T, y = data(seed=3)
    names = [f"c{i}" for i in range(len(T))]
    labels = [names[i] for i in y]
    labels[:5] = ["not a class"] * 5
    outcome, table = run_source(ArraySource(views, labels=labels, batch_rows=17), T, names, ["pairwise"])
    for m in ("baseline", "pairwise"):
        preds = {v: np.asarray(names)[p] for v, p in predictions(table, m, VIEWS).items()}
        for v in VIEWS:
            assert outcome.methods[m]["accuracy"][v] == pytest.approx(accuracy_score(labels, preds[v]))
            assert outcome.methods[m]["f1"][v] == pytest.approx(
                f1_score(labels, preds[v], average="weighted", zero_division=0))
        assert outcome.methods[m]["agreement_f1"] == pytest.approx(
            f1_score(preds[VIEWS[1]], preds[VIEWS[0]], average="weighted", zero_division=0))
    assert any("1 label(s) are not among the classes" in w for w in outcome.warnings)


def test_null_labels_are_unlabelled_and_counted():
    views, T, y = data(seed=4)
    names = [f"c{i}" for i in range(len(T))]
    keep = np.arange(len(y)) % 4 > 0
    labels = [names[c] if k else None for c, k in zip(y, keep)]
    outcome, table = run_source(ArraySource(views, labels=labels, batch_rows=16), T, names, ["baseline"])
    pred = predictions(table, "baseline", VIEWS)[VIEWS[0]]
    assert outcome.diagnostics["n_unlabelled"] == int((~keep).sum())
    assert outcome.methods["baseline"]["accuracy"][VIEWS[0]] == pytest.approx((pred[keep] == y[keep]).mean())
    assert any("have no label and are left out" in w for w in outcome.warnings)


def test_an_in_memory_method_past_its_limit_refuses_in_one_line(monkeypatch):
    views, T, _ = data()
    monkeypatch.setitem(METHODS, "transclip", Method(METHODS["transclip"].plan, "", 2, max_items=50, pairs=False))
    with pytest.raises(InputError, match=r"^transclip holds every item in memory and is limited to 50 items; this "
                       r"source has 120; use a streaming method \(baseline, pairwise, proto, cotrain, joint, "
                       r"cotrain_gmm, stata\)$"):
        run_methods(views, T, ["transclip"])


def test_duplicate_ids_across_shards_are_an_error(tmp_path):
    views, T, y = data()
    names = [f"c{i}" for i in range(len(T))]
    ids = [f"p{i % 100}" for i in range(len(y))]
    folder = write_shards(tmp_path / "s", views, y, names, [60], ids=ids)
    with pytest.raises(InputError, match="product_id: 20 duplicate id"):
        run_source(ParquetSource(folder, VIEWS), T, names, ["pairwise"])


def test_cli_reads_a_folder_or_a_glob_and_writes_a_dataset(tmp_path):
    views, T, y = data(seed=5)
    names = [f"c{i}" for i in range(len(T))]
    folder = write_shards(tmp_path / "in", views, y, names, [30, 70])
    cls = class_file(tmp_path / "classes.parquet", T, names)
    out = tmp_path / "preds"
    result = runner.invoke(app, ["classify", str(folder), "--classes", str(cls), "--label-col", "category",
                                 "--min-count", "3", "--k", "4", "--batch-rows", "16", "--out", f"{out}/", "--json"])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    table = pq.read_table(out)
    assert table.num_rows == len(y)
    assert pq.read_table(out / "part-00001.parquet").num_rows == 40
    glob = runner.invoke(app, ["classify", str(folder / "part-*.parquet"), "--classes", str(cls), "--label-col",
                               "category", "--min-count", "3", "--k", "4", "--out", str(tmp_path / "one.parquet"),
                               "--json"])
    assert glob.exit_code == 0, glob.stderr
    assert json.loads(glob.stdout)["methods"] == json.loads(result.stdout)["methods"]
    one = pq.read_table(tmp_path / "one.parquet")
    assert one.column("clip_image_features__cotrain__pred").to_pylist() == \
        pq.read_table(out).column("clip_image_features__cotrain__pred").to_pylist()


def test_out_may_not_be_an_input(tmp_path, make_files):
    emb, cls = make_files()
    before = emb.read_bytes(), cls.read_bytes()
    for target in (emb, cls, tmp_path / "." / emb.name):
        result = runner.invoke(app, ["classify", str(emb), "--classes", str(cls), "--out", str(target)])
        assert result.exit_code == 2
        assert result.stderr == f"Error: {target}: is an input of this run ({emb if target != cls else cls}); " \
            "choose another --out\n"
    result = runner.invoke(app, ["classify", str(emb), "--classes", str(cls), "--report", str(emb)])
    assert result.stderr == f"Error: {emb}: is an input of this run ({emb}); choose another --report\n"
    assert result.exit_code == 2
    assert (emb.read_bytes(), cls.read_bytes()) == before


def test_list_labels_need_a_level(tmp_path):
    views, T, y = data()
    names = [f"c{i}" for i in range(len(T))]
    path = tmp_path / "e.parquet"
    paths = [["Top", names[c]] if i % 7 else ["Top"] for i, c in enumerate(y)]
    pq.write_table(pa.table({"product_id": [f"p{i}" for i in range(len(y))],
                             **{v: embedding_array(X) for v, X in views.items()},
                             "category": pa.array(paths, pa.list_(pa.string()))}), path)
    with pytest.raises(InputError, match=r"category: labels are lists \(list<element: string>\), e.g. category paths: "
                       r"choose a level with --label-level N \(0 = the top\)"):
        ParquetSource(path, VIEWS, label_col="category")
    result = run_classify(path, class_file(tmp_path / "c.parquet", T, names), label_col="category", label_level=1,
                          methods=["baseline"])
    expected = [names[c] if i % 7 else None for i, c in enumerate(y)]
    assert result.predictions.column("category").to_pylist() == expected
    assert result.diagnostics["n_unlabelled"] == sum(lab is None for lab in expected)


def test_keep_cols_are_carried_into_the_output(tmp_path, make_files):
    emb, cls = make_files()
    result = run_classify(emb, cls, keep_cols=["category"], methods=["baseline"])
    assert result.predictions.column("category").to_pylist() == pq.read_table(emb).column("category").to_pylist()


def test_plans_share_identical_statistics_and_decisions_within_a_scan(monkeypatch):
    views, T, y = data(seed=6)
    calls = []
    original = PairwiseClassifier.statistics

    def counting(self, X, codes=None, norms=None):
        calls.append(codes is None)
        return original(self, X, codes, norms)

    monkeypatch.setattr(PairwiseClassifier, "statistics", counting)
    _, alone = run_methods(views, T, ["cotrain"], PairwiseClassifier(**EST), batch_rows=1000)
    n_alone = len(calls)
    calls.clear()
    _, together = run_methods(views, T, ["cotrain", "proto", "pairwise"], PairwiseClassifier(**EST),
                              batch_rows=1000)
    # proto repeats cotrain's first stage exactly and pairwise's statistics are the first stage's.
    assert len(calls) == n_alone == 4
    for v in VIEWS:
        np.testing.assert_array_equal(together["cotrain"][v], alone["cotrain"][v])
    assert together["proto"][VIEWS[0]].shape == y.shape


def test_a_cache_that_would_not_fit_is_skipped_with_a_note(tmp_path, monkeypatch):
    import pairclass.pipeline as pipeline

    views, T, y = data(seed=7)
    names = [f"c{i}" for i in range(len(T))]
    folder = write_shards(tmp_path / "s", views, y, names, [50])
    _, cached = run_source(ParquetSource(folder, VIEWS, batch_rows=20), T, names, ["cotrain"])
    monkeypatch.setattr(pipeline, "_CACHE_MARGIN", 1 << 62)
    notes = []
    monkeypatch.setattr(pipeline.LogProgress, "note", lambda self, message: notes.append(message))
    made = []
    monkeypatch.setattr(pipeline, "ViewCache", lambda *a: made.append(a))
    _, reread = run_source(ParquetSource(folder, VIEWS, batch_rows=20), T, names, ["cotrain"])
    assert reread.equals(cached) and not made
    assert len(notes) == 1 and "later scans re-read the files" in notes[0]


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_reads_the_items_as_often_as_the_registry_says(method):
    views, T, _ = data(seed=8)
    outcome, _ = run_methods(views, T, [method], PairwiseClassifier(**EST))
    assert outcome.diagnostics["n_scans"] == METHODS[method].scans


def test_two_scans_keep_no_cache_and_three_do(tmp_path, monkeypatch):
    import pairclass.pipeline as pipeline

    views, T, y = data(seed=9)
    names = [f"c{i}" for i in range(len(T))]
    folder = write_shards(tmp_path / "s", views, y, names, [50])
    made = []
    original = pipeline.ViewCache
    monkeypatch.setattr(pipeline, "ViewCache", lambda *a: made.append(1) or original(*a))
    run_source(ParquetSource(folder, VIEWS), T, names, ["pairwise"])
    assert not made
    run_source(ParquetSource(folder, VIEWS), T, names, ["pairwise"], center="balanced")
    assert made == [1]


def test_one_final_label_per_item_says_how_it_was_chosen():
    views, T, y = data(seed=10)
    names = [f"c{i}" for i in range(len(T))]
    _, table = run_source(ArraySource(views, batch_rows=50), T, names, ["cotrain"])
    a, b = (np.asarray(table.column(f"{v}__cotrain__pred").combine_chunks().indices) for v in VIEWS)
    ca, cb = (np.asarray(table.column(f"{v}__cotrain__confidence")) for v in VIEWS)
    final = np.asarray(table.column("final__pred").combine_chunks().indices)
    chosen = np.array(table.column("final__from").to_pylist())
    agree = a == b
    assert (agree & (chosen == "both views")).sum() == agree.sum() > 0
    np.testing.assert_array_equal(final[agree], a[agree])
    disagree = ~agree
    assert disagree.any()
    np.testing.assert_array_equal(final[disagree], np.where(ca >= cb, a, b)[disagree])
    np.testing.assert_array_equal(chosen[disagree], np.where(ca >= cb, VIEWS[0], VIEWS[1])[disagree])
