"""Embedding columns: list<float> arrays to validated float32 matrices, and whole-file reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..crossvar import row_norms
from ..errors import input_error

__all__ = ["DEFAULT_ID_COL", "DEFAULT_VIEWS", "EmbeddingSet", "embedding_matrix", "read_embeddings"]

DEFAULT_ID_COL = "product_id"
DEFAULT_VIEWS = ("clip_image_features", "clip_text_features")
# Rows whose norm lies outside [2**-60, 2**60] are rescaled by a power of two (exact, and a cosine
# does not see scale), so that squares and products stay well inside float32's range.
_SCALE_LIMIT = 60


def embedding_matrix(column, *, path=None, name=None, dim=None, first_row=0):
    """Convert a list<float> column to a float32 matrix, checking shape and values.

    Raises ``InputError`` for a non-list type, nulls, ragged lengths (or a length other than ``dim``),
    no rows, NaN or infinite values, and all-zero vectors; rows are numbered from ``first_row``.
    Fixed-width float32 lists convert without a copy.

    Examples
    --------
    >>> embedding_matrix(pa.chunked_array([[[3.0, 4.0], [0.0, 1.0]]])).tolist()
    [[3.0, 4.0], [0.0, 1.0]]
    >>> embedding_matrix(pa.chunked_array([[[1.0, 0.0], [1.0]]]), path="e.parquet", name="v")
    Traceback (most recent call last):
    ...
    pairclass.errors.InputError: e.parquet: v: ragged embeddings: row 1 has length 1, row 0 has 2
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    fail = lambda problem: input_error(problem, path=path, column=name)  # noqa: E731
    kind = column.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) or not (
            pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
        raise fail(f"expected list<float> embeddings, got {kind}")
    if len(column) == 0:
        raise fail("no rows")
    if column.null_count:
        first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise fail(f"{column.null_count} missing embedding(s), first at row {first_row + first}")
    lengths = pc.list_value_length(column).to_numpy()
    expected = lengths[0] if dim is None else dim
    if (lengths != expected).any():
        bad = int(np.flatnonzero(lengths != expected)[0])
        raise fail(f"ragged embeddings: row {first_row + bad} has length {lengths[bad]}, row 0 has {expected}")
    if expected == 0:
        raise fail("embeddings have length 0")
    values = column.flatten()
    if values.null_count:
        raise fail("embeddings contain null values")
    X = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(column), -1)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise fail(f"{bad.size} row(s) with NaN or infinite values, first at row {first_row + bad[0]}")
    norms = row_norms(X)
    zero = norms == 0
    if zero.any():
        bad = np.flatnonzero(zero)
        raise fail(f"{bad.size} all-zero vector(s), first at row {first_row + bad[0]}")
    odd = np.abs(np.log2(norms)) > _SCALE_LIMIT
    if odd.any():
        X = X.copy()
        X[odd] *= np.exp2(-np.round(np.log2(norms[odd])))[:, None].astype(np.float32)
    return X


@dataclass
class EmbeddingSet:
    """Items read whole: ids, one float32 matrix per view, optional labels (None: unlabelled)."""

    path: Path
    ids: np.ndarray
    views: dict = field(default_factory=dict)
    labels: np.ndarray | None = None
    id_col: str = DEFAULT_ID_COL
    label_col: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def n_items(self):
        return self.ids.size


def read_embeddings(path, views=None, *, id_col=DEFAULT_ID_COL, label_col=None, label_level=None):
    """Read every item of a parquet file, directory or glob into memory (see
    :class:`~pairclass.io.source.ParquetSource` for the checks).

    Returns
    -------
    EmbeddingSet
    """
    from .source import ParquetSource

    source = ParquetSource(path, views, id_col=id_col, label_col=label_col, label_level=label_level)
    return source.read_all()
