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


def write_items(path, X, labels, *, view="clip_image_features", label_col="category"):
    table = pa.table({
        "product_id": [f"p{i}" for i in range(len(X))],
        view: pa.array(list(X), type=pa.list_(pa.float32())),
        label_col: list(labels),
    })
    pq.write_table(table, path)
    return path
