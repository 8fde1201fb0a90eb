import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def clustered(n_per_class=60, n_classes=4, dim=24, noise=0.6, nuisance=1.0, seed=0):
    """Items around one-hot class directions; class embeddings carry a random nuisance part on the
    noise dimensions, so the full cosine is misled while a few dimensions separate each pair."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.normal(0, noise, size=(labels.size, dim))
    X[np.arange(labels.size), labels] += 2.0
    T = np.zeros((n_classes, dim))
    T[np.arange(n_classes), np.arange(n_classes)] = 1.0
    T[:, n_classes:] = rng.normal(0, nuisance / np.sqrt(dim), size=(n_classes, dim - n_classes))
    return X.astype(np.float32), T.astype(np.float32), labels


def embedding_array(X):
    return pa.array([list(map(float, row)) for row in X], type=pa.list_(pa.float32()))


@pytest.fixture
def make_files(tmp_path):
    """Write a small two-view SQID-layout parquet and a class parquet; returns their paths."""

    def make(n_per_class=30, n_classes=3, dim=16, seed=0, label_col="category"):
        X, T, y = clustered(n_per_class, n_classes, dim, seed=seed)
        X2, _, _ = clustered(n_per_class, n_classes, dim, seed=seed + 1)
        names = [f"class {i}" for i in range(n_classes)]
        items = pa.table({
            "product_id": [f"p{i}" for i in range(len(y))],
            "clip_image_features": embedding_array(X),
            "clip_text_features": embedding_array(X2),
            label_col: [names[i] for i in y],
        })
        classes = pa.table({"name": names, "embedding": embedding_array(T)})
        emb, cls = tmp_path / "emb.parquet", tmp_path / "classes.parquet"
        pq.write_table(items, emb)
        pq.write_table(classes, cls)
        return emb, cls

    return make


def predictions(table, method, views):
    """``{view: class indices}`` of ``method`` from a predictions table (joint methods: one column)."""
    out = {}
    for v in views:
        name = f"{method}__pred" if f"{method}__pred" in table.column_names else f"{v}__{method}__pred"
        out[v] = np.asarray(table.column(name).combine_chunks().indices)
    return out


def run_methods(views, T, methods, estimator=None, labels=None, batch_rows=10_000, **options):
    """Run the pipeline on arrays; returns ``(outcome, {method: {view: class indices}})``."""
    from pairclass import PairwiseClassifier
    from pairclass.io import ArraySource, MemorySink
    from pairclass.pipeline import classify

    sink = MemorySink()
    names = [f"class {i}" for i in range(len(T))]
    source = ArraySource(views, labels=None if labels is None else [names[i] for i in labels], batch_rows=batch_rows)
    outcome = classify(source, estimator or PairwiseClassifier(), T, names, methods=methods, sink=sink, **options)
    return outcome, {m: predictions(sink.table, m, list(views)) for m in outcome.methods if m != "default"}


@pytest.fixture(scope="module")
def enc():
    """The tiny random open_clip model (tests/data/tiny-clip.json) on the CPU, with one torch thread."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    from embed_support import TINY_CONFIG
    from pairclass.embed import load_clip

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_clip(str(TINY_CONFIG), random_weights=True, device="cpu", precision="fp32")
    torch.set_num_threads(threads)
