"""Generated clustered embeddings for the DML tests: the classes differ in a few dimensions and
large noise fills the others, so the raw cosine is a weak retriever that a trained head can fix."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def clustered(n_classes=8, per_class=30, dim=24, signal_dims=4, noise=1.5, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.zeros((n_classes, dim))
    centers[:, :signal_dims] = rng.normal(size=(n_classes, signal_dims)) * 2.0
    X = np.repeat(centers, per_class, axis=0)
    X[:, :signal_dims] += rng.normal(scale=0.3, size=(X.shape[0], signal_dims))
    X[:, signal_dims:] += rng.normal(scale=noise, size=(X.shape[0], dim - signal_dims))
    labels = np.repeat(np.array([f"class{i}" for i in range(n_classes)], dtype=object), per_class)
    return X.astype(np.float32), labels


def diverging(held_out, n_classes=10, per_class=30, dim=16, seed=0):
    """Classes told apart by dimensions 0-3, except the ``held_out`` class codes, which differ only
    in dimensions 4-7, where the other classes carry large noise. A head trained on the others learns
    to ignore dimensions 4-7, which is what tells the held-out classes apart."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=0.5, size=(n_classes * per_class, dim))
    for c in range(n_classes):
        rows = slice(c * per_class, (c + 1) * per_class)
        signal = slice(4, 8) if c in held_out else slice(0, 4)
        X[rows, signal] += rng.normal(size=4) * 1.5
        if c not in held_out:
            X[rows, 4:] += rng.normal(scale=3.0, size=(per_class, dim - 4))
    labels = np.repeat(np.array([f"class{i}" for i in range(n_classes)], dtype=object), per_class)
    return X.astype(np.float32), labels


def write_items(path, X, labels, *, view="clip_image_features", label_col="category"):
    table = pa.table({
        "product_id": [f"p{i}" for i in range(len(X))],
        view: pa.array(list(X), type=pa.list_(pa.float32())),
        label_col: list(labels),
    })
    pq.write_table(table, path)
    return path
