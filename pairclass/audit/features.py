"""The audit's feature space: each view L2-normalised, then projected on the top principal components
of the views' rows (one PCA for all views).

The classifier and the neighbour search run on these projections: at 768-d the top 128 components
keep the neighbourhoods and the classes (measured in docs/audit.md), and they make 1M items x 2 views
a 1 GB materialised view instead of 6 GB. The PCA is fitted on a seeded sample. A source is scanned
twice through an engine (local threads or Ray Data jobs): once for the sample, once to project every
batch into a preallocated array on the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b

import numpy as np
import pyarrow as pa
from sklearn.decomposition import PCA

from ..crossvar import row_norms
from ..errors import input_error
from ..methods.passes import Rows

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
        if self.pca is None:
            return X
        # In float64, rounded to float32: a matrix product's last bits follow the number of rows, and
        # the rounding hides them, so a row projects the same whatever its batch (and engine).
        W = self.pca.components_.astype(np.float64)
        return ((X.astype(np.float64) - self.pca.mean_) @ W.T).astype(np.float32)


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


def read_items(source, *, dims=DIMS, seed=0, keep_raw=False, engine=None):
    """Read a :class:`~pairclass.io.ParquetSource` (or any source) into :class:`AuditItems`.

    Two scans through ``engine`` (default: a :class:`~pairclass.engines.LocalEngine`): the PCA
    sample, then every batch projected; a Ray engine runs both as Ray Data jobs, and the projected
    rows come back to the driver in the source's order. Memory on the driver: ``n_items x dims x 4``
    bytes per view (plus ``n_items x D x 4`` with ``keep_raw``) and a few batches; duplicate ids are
    an error, as in ``ParquetSource.read_all``.
    """
    from ..engines import LocalEngine

    engine = engine or LocalEngine()
    n = source.n_rows
    projection = Projection(None)
    if source.dim > dims:
        projection = Projection.fit(_sample(source, engine, seed), dims, seed)
    width = projection.dims or source.dim
    sink = _Filler(n, source.views, width, source.dim if keep_raw else None)
    engine.scan(source, lambda batch: (None, _projected(batch, projection, keep_raw)), sink=sink)
    if sink.filled != n:
        raise input_error(f"read {sink.filled:,} rows of {n:,}", path=source.path)
    ids = np.asarray(sink.ids, dtype=object)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise input_error(f"{dup.size} duplicate id(s), e.g. {dup[0]!r}", path=source.path, column=source.id_col)
    keep, features, raw = sink.keep, sink.features, sink.raw
    labels = np.asarray(sink.labels, dtype=object)
    table = pa.concat_tables(sink.extra).filter(pa.array(keep)) if sink.extra and sink.extra[0].num_columns else None
    if not keep.all():
        features = {v: X[keep] for v, X in features.items()}
        raw = {v: X[keep] for v, X in raw.items()}
    return AuditItems(ids[keep], labels[keep], features, raw, table, int((~keep).sum()))


# The projection scan's output columns besides the kept ones.
_ID, _LABEL = "__audit_id", "__audit_label"


def _matrix_column(X):
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(X).reshape(-1)), X.shape[1])


def _projected(batch, projection, keep_raw):
    """One batch as rows: id, label, kept columns, each view projected (and as given, with ``keep_raw``)."""
    columns = {_ID: batch.ids.cast(pa.string()), _LABEL: batch.labels}
    columns.update(batch.extra)
    for v, X in batch.views.items():
        columns[f"__audit_features:{v}"] = _matrix_column(projection.transform(X))
        if keep_raw:
            columns[f"__audit_raw:{v}"] = _matrix_column(X)
    return pa.table(columns)


class _Filler:
    """A sink for the projection scan: its rows, in scan order, into preallocated arrays (and
    plain Python values, so that no batch's buffers stay held)."""

    def __init__(self, n, views, width, raw_dim):
        self.features = {v: np.empty((n, width), dtype=np.float32) for v in views}
        self.raw = {} if raw_dim is None else {v: np.empty((n, raw_dim), dtype=np.float32) for v in views}
        self.keep = np.empty(n, dtype=bool)
        self.ids, self.labels, self.extra = [], [], []
        self.filled = 0

    def write(self, table, part=0):
        m = table.num_rows
        if self.filled + m > self.keep.size:
            raise input_error(f"more rows than the {self.keep.size:,} the files' metadata counts")
        rows = slice(self.filled, self.filled + m)
        for name, out in (("features", self.features), ("raw", self.raw)):
            for v, X in out.items():
                X[rows] = table.column(f"__audit_{name}:{v}").combine_chunks().flatten().to_numpy().reshape(m, -1)
        labels = table.column(_LABEL)
        self.keep[rows] = labels.is_valid().to_numpy(zero_copy_only=False)
        self.ids += table.column(_ID).to_pylist()
        self.labels += labels.to_pylist()
        kept = [c for c in table.column_names if not c.startswith("__audit_")]
        self.extra.append(pa.table({c: pa.array(table.column(c).to_pylist(), table.column(c).type) for c in kept}))
        self.filled += m


def project(views, dims=DIMS, seed=0):
    """In-memory views ``{view: (n, D)}`` to their projections (PCA fitted on a seeded sample)."""
    n = next(iter(views.values())).shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, PCA_SAMPLE), replace=False))
    projection = Projection.fit({v: np.asarray(X, dtype=np.float32)[rows] for v, X in views.items()}, dims, seed)
    return {v: projection.transform(X) for v, X in views.items()}


def _sample(source, engine, seed):
    """A seeded sample of about ``PCA_SAMPLE`` rows per view (one scan): the rows whose id hashes
    (keyed by the seed) below ``PCA_SAMPLE / n_rows``, in hash order. It depends on the ids only, not
    on how the items are split into files and batches, nor on the engine."""
    share = min(1.0, PCA_SAMPLE / source.n_rows)

    def pick(batch):
        keys = id_hashes(batch.ids, seed)
        chosen = keys < share
        return Rows.of(0, {"key": keys[chosen], **{v: X[chosen] for v, X in batch.views.items()}}), None

    picked = engine.scan(source, pick).stacked()
    order = np.argsort(picked.pop("key"), kind="stable")
    return {v: X[order] for v, X in picked.items()}


def id_hashes(ids, seed):
    """Each id's blake2b hash keyed by ``seed``, as a float in [0, 1).

    Examples
    --------
    >>> keys = id_hashes(pa.array(["a", "b"]), 0)
    >>> bool(((keys >= 0) & (keys < 1)).all()), bool(id_hashes(pa.array(["b"]), 0)[0] == keys[1])
    (True, True)
    """
    key = int(seed).to_bytes(8, "little", signed=True)
    digests = b"".join(blake2b(str(i).encode(), digest_size=8, key=key).digest()
                       for i in ids.cast(pa.string()).to_pylist())
    return (np.frombuffer(digests, dtype="<u8") >> np.uint64(11)) / 2.0 ** 53
