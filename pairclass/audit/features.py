"""The audit's feature space: each view L2-normalised, then projected on the top principal components
of the views' rows (one PCA for all views).

The classifier and the neighbour search run on these projections: at 768-d the top 128 components
keep the neighbourhoods and the classes (measured in docs/audit.md), and they make 1M items x 2 views
a 1 GB materialised view instead of 6 GB. The PCA is fitted on a seeded sample. A source is read
twice, streaming: once for the sample, once to project every batch into a preallocated array.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from sklearn.decomposition import PCA

from ..crossvar import row_norms
from ..errors import input_error

__all__ = ["DIMS", "AuditItems", "Projection", "project", "read_items"]

# Components kept per view (a view no wider than this is kept as it is).
DIMS = 128
# Items the PCA is fitted on.
PCA_SAMPLE = 20_000


def _normalised(X):
    return X / row_norms(X)[:, None].astype(np.float32)


@dataclass
class Projection:
    """Normalisation and one PCA shared by the views (so that a row of one view can be searched among
    the other's); ``pca`` is None when the views are no wider than the components kept."""

    pca: PCA | None

    @classmethod
    def fit(cls, sample_views, dims=DIMS, seed=0):
        """Fit on ``{view: (n_sample, D)}`` rows, all views together."""
        X = np.concatenate([_normalised(np.asarray(V, dtype=np.float32)) for V in sample_views.values()])
        if X.shape[1] <= dims or X.shape[0] <= dims:
            return cls(None)
        return cls(PCA(dims, svd_solver="randomized", random_state=seed).fit(X))

    @property
    def dims(self):
        return None if self.pca is None else self.pca.n_components_

    def transform(self, X):
        """``(n, D)`` rows to float32 ``(n, dims)`` (or normalised ``(n, D)``)."""
        X = _normalised(np.asarray(X, dtype=np.float32))
        return X if self.pca is None else self.pca.transform(X).astype(np.float32)


@dataclass
class AuditItems:
    """The labelled items of a source, projected.

    Attributes
    ----------
    ids : ndarray of str, labels : ndarray of str
    features : dict
        ``{view: float32 (n_items, dims)}``.
    raw : dict
        ``{view: float32 (n_items, D)}`` when asked for (the zero-shot evidence), else empty.
    extra : pyarrow.Table
        The ``keep_cols``.
    n_unlabelled : int
        Rows without a label, left out.
    """

    ids: np.ndarray
    labels: np.ndarray
    features: dict
    raw: dict = field(default_factory=dict)
    extra: pa.Table | None = None
    n_unlabelled: int = 0


def read_items(source, *, dims=DIMS, seed=0, keep_raw=False):
    """Read a :class:`~pairclass.io.ParquetSource` (or any source) into :class:`AuditItems`.

    Memory: ``n_items x dims x 4`` bytes per view (plus ``n_items x D x 4`` with ``keep_raw``) and a
    few batches; duplicate ids are an error, as in ``ParquetSource.read_all``.
    """
    n = source.n_rows
    projection = Projection(None) if source.dim <= dims else Projection.fit(_sample(source, seed), dims, seed)
    width = projection.dims or source.dim
    features = {v: np.empty((n, width), dtype=np.float32) for v in source.views}
    raw = {v: np.empty((n, source.dim), dtype=np.float32) for v in source.views} if keep_raw else {}
    ids, labels, extra, keep = [], [], [], np.empty(n, dtype=bool)
    for batch in source.batches():
        rows = slice(batch.start, batch.start + len(batch.ids))
        for v, X in batch.views.items():
            features[v][rows] = projection.transform(X)
            if keep_raw:
                raw[v][rows] = X
        keep[rows] = batch.labels.is_valid().to_numpy(zero_copy_only=False)
        # Keep plain Python values, not the batch's arrow arrays (and the buffers they hold).
        ids += batch.ids.cast(pa.string()).to_pylist()
        labels += batch.labels.to_pylist()
        extra.append(pa.table({c: pa.array(col.to_pylist(), col.type) for c, col in batch.extra.items()})
                     if batch.extra else None)
    ids = np.asarray(ids, dtype=object)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise input_error(f"{dup.size} duplicate id(s), e.g. {dup[0]!r}", path=source.path, column=source.id_col)
    labels = np.asarray(labels, dtype=object)
    table = pa.concat_tables(extra).filter(pa.array(keep)) if extra and extra[0] is not None else None
    if not keep.all():
        features = {v: X[keep] for v, X in features.items()}
        raw = {v: X[keep] for v, X in raw.items()}
    return AuditItems(ids[keep], labels[keep], features, raw, table, int((~keep).sum()))


def project(views, dims=DIMS, seed=0):
    """In-memory views ``{view: (n, D)}`` to their projections (PCA fitted on a seeded sample)."""
    n = next(iter(views.values())).shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, PCA_SAMPLE), replace=False))
    projection = Projection.fit({v: np.asarray(X, dtype=np.float32)[rows] for v, X in views.items()}, dims, seed)
    return {v: projection.transform(X) for v, X in views.items()}


def _sample(source, seed):
    """A seeded sample of at most ``PCA_SAMPLE`` rows per view (one streaming pass)."""
    rows = np.sort(np.random.default_rng(seed).choice(source.n_rows, min(source.n_rows, PCA_SAMPLE),
                                                      replace=False))
    picked = {v: [] for v in source.views}
    for batch in source.batches():
        n = len(batch.ids)
        lo, hi = np.searchsorted(rows, [batch.start, batch.start + n])
        for v, X in batch.views.items():
            picked[v].append(X[rows[lo:hi] - batch.start])
    return {v: np.concatenate(parts) for v, parts in picked.items()}
