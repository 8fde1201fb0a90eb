"""Sources: items as validated record batches, from parquet (a file, a directory of part files or a
glob) or from arrays in memory.

A source reads only the columns it needs, ``batch_rows`` rows at a time, and checks each batch with
the same one-line errors as a whole-file read, naming the file and the row in it.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..batch import Batch
from ..errors import InputError, input_error
from .embeddings import DEFAULT_ID_COL, DEFAULT_VIEWS, EmbeddingSet, embedding_matrix

__all__ = ["DEFAULT_BATCH_ROWS", "ArraySource", "ParquetSource", "VIEWS_METADATA_KEY"]

# Rows per batch: large enough that per-batch overheads vanish, small enough that a batch and its
# temporaries (a few copies of it) stay near a hundred MB at 768-d (see scripts/bench_scale.py).
DEFAULT_BATCH_ROWS = 16_384
# Bytes read from a file at a time.
_READ_BUFFER = 1 << 20
# Schema metadata where `pairclass embed` names the embedding columns it wrote.
VIEWS_METADATA_KEY = "pairclass.views"


def _resolve_files(path):
    """The parquet files behind ``path``: itself, the files of a directory, or a glob's matches."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise input_error("no files match", path=text)
        return files
    path = Path(path)
    if not path.exists():
        raise input_error("file not found", path=path)
    if path.is_dir():
        files = sorted(Path(f) for f in ds.dataset(path, format="parquet").files)
        if not files:
            raise input_error("no parquet files in this directory", path=path)
        return files
    return [path]


def _read_schema(path):
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise input_error(f"cannot read file: {str(e).splitlines()[0]}", path=path) from e


def _decoded_metadata(schema):
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items() if k != b"pandas"}


class ParquetSource:
    """Items from parquet: a file, a directory of parquet files, or a glob, in sorted file order.

    Parameters
    ----------
    path : path-like or str
    views : sequence of str, optional
        Embedding columns. Default: those ``pairclass embed`` recorded in the metadata, else the
        SQID pair ``clip_image_features, clip_text_features``.
    id_col : str, default="product_id"
    label_col : str, optional
        Catalogue labels; nulls are unlabelled items. A list column (a category path, top first)
        needs ``label_level``.
    label_level : int, optional
        Which level of a list-valued label to use (0 = the top).
    labels : path-like, optional
        A parquet or CSV file holding the labels instead: the id column and ``label_col``, joined on
        the id (items it does not list are unlabelled). SQID ships embeddings, ESCI-S the categories.
    keep_cols : sequence of str
        Columns carried through to the output unchanged.
    batch_rows : int
        The most rows a batch holds.

    Attributes
    ----------
    files : list of Path
    n_rows : int
    dim : int
        Embedding width (read from the first row).
    metadata : dict
        The first file's schema metadata.
    """

    def __init__(self, path, views=None, *, id_col=DEFAULT_ID_COL, label_col=None, label_level=None, keep_cols=(),
                 batch_rows=DEFAULT_BATCH_ROWS, labels=None):
        self.path = path
        self.files = _resolve_files(path)
        schemas = [_read_schema(f) for f in self.files]
        self.metadata = _decoded_metadata(schemas[0])
        if views is None:
            views = json.loads(self.metadata.get(VIEWS_METADATA_KEY, "null")) or DEFAULT_VIEWS
        self.views = list(views)
        self.id_col, self.label_col, self.label_level = id_col, label_col, label_level
        self.keep_cols = list(keep_cols)
        if batch_rows < 1:
            raise InputError(f"batch rows must be at least 1, got {batch_rows}")
        self.batch_rows = batch_rows
        self._joined = None
        if labels is not None:
            if not label_col:
                raise InputError("--labels needs --label-col, the label column of that file")
            self._joined = _LabelFile(labels, id_col, label_col, label_level)
        self._check_columns(schemas)
        self.n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)
        self.dim = self._first_length()

    def _check_columns(self, schemas):
        where = self.files[0] if len(self.files) == 1 else self.path
        if not self.views:
            raise input_error("no embedding columns (views) given", path=where)
        if len(set(self.views)) != len(self.views):
            raise input_error(f"views repeat a column: {', '.join(self.views)}", path=where)
        roles = [("id", self.id_col), *(("view", v) for v in self.views)]
        own_labels = self.label_col and self._joined is None
        if own_labels:
            roles.append(("label", self.label_col))
        seen = {}
        for role, col in roles:
            if col in seen:
                raise input_error(f"one column cannot be both the {seen[col]} and the {role} column",
                                  path=where, column=col)
            seen[col] = role
        for path, schema in zip(self.files, schemas):
            for col in [self.id_col, *self.views, *([self.label_col] if own_labels else []), *self.keep_cols]:
                if col not in schema.names:
                    raise input_error(f"column not found (columns: {', '.join(schema.names)})", path=path, column=col)
            kind = schema.field(self.id_col).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
                raise input_error(f"ids must be strings or integers, got {kind}", path=path, column=self.id_col)
            if own_labels:
                kind = schema.field(self.label_col).type
                if _is_list(kind) and self.label_level is None:
                    raise input_error(f"labels are lists ({kind}), e.g. category paths: choose a level with "
                                      "--label-level N (0 = the top)", path=path, column=self.label_col)

    def _first_length(self):
        for path in self.files:
            for record in pq.ParquetFile(path, pre_buffer=False, buffer_size=_READ_BUFFER).iter_batches(
                    batch_size=1, columns=self.views):
                if record.num_rows:
                    dims = {v: int(embedding_matrix(record.column(v), path=path, name=v).shape[1]) for v in self.views}
                    if len(set(dims.values())) > 1:
                        desc = ", ".join(f"{v}={d}" for v, d in dims.items())
                        raise input_error(f"views have different dimensions ({desc})", path=path,
                                          column=self.views[-1])
                    return dims[self.views[0]]
        raise input_error("no rows", path=self.path)

    @property
    def columns(self):
        own = self.label_col and self._joined is None
        return [self.id_col, *self.views, *([self.label_col] if own else []), *self.keep_cols]

    def batches(self):
        """Validated :class:`~pairclass.batch.Batch` es, in file and row order."""
        index = start = 0
        for part, path in enumerate(self.files):
            row = 0
            try:
                # Buffered reads without pre-buffering: a batch's pages, not whole row groups, in memory.
                scan = pq.ParquetFile(path, pre_buffer=False, buffer_size=_READ_BUFFER).iter_batches(
                    batch_size=self.batch_rows, columns=self.columns)
                for record in scan:
                    if record.num_rows == 0:
                        continue
                    yield self.to_batch(record, path, row=row, index=index, start=start, part=part)
                    index += 1
                    start += record.num_rows
                    row += record.num_rows
            except (pa.ArrowInvalid, OSError) as e:
                raise input_error(f"cannot read file: {str(e).splitlines()[0]}", path=path) from e

    def to_batch(self, record, path, *, row=0, index=0, start=0, part=0):
        """One record batch of ``path`` (its rows from ``row`` on) as a validated
        :class:`~pairclass.batch.Batch`: every engine's batches come through here."""
        views = {v: embedding_matrix(record.column(v), path=path, name=v, dim=self.dim, first_row=row)
                 for v in self.views}
        ids = record.column(self.id_col)
        if ids.null_count:
            first = row + int(np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False))[0])
            raise input_error(f"{ids.null_count} missing id(s), first at row {first}", path=path, column=self.id_col)
        if self._joined is not None:
            labels = self._joined.lookup(ids)
        elif self.label_col:
            labels = _labels(record.column(self.label_col), self.label_level, path, self.label_col)
        else:
            labels = None
        extra = {c: record.column(c) for c in self.keep_cols}
        return Batch(index, start, views, ids, labels, part=part, extra=extra)

    def read_all(self):
        """Every item in memory, as an :class:`~pairclass.io.embeddings.EmbeddingSet` (ids and labels
        as str; duplicate ids are an error)."""
        batches = list(self.batches())
        if not batches:
            raise input_error("no rows", path=self.path)
        ids = np.asarray(pa.concat_arrays([b.ids.cast(pa.string()) for b in batches]).to_pylist(), dtype=object)
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1]
            raise input_error(f"{dup.size} duplicate id(s), e.g. {dup[0]!r}", path=self.path, column=self.id_col)
        views = {v: np.concatenate([b.views[v] for b in batches]) for v in self.views}
        labels = None
        if self.label_col:
            labels = np.asarray(pa.concat_arrays([b.labels for b in batches]).to_pylist(), dtype=object)
        return EmbeddingSet(self.files[0] if len(self.files) == 1 else Path(str(self.path)), ids, views, labels,
                            self.id_col, self.label_col, self.metadata)


def _is_list(kind):
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _labels(column, level, path, name):
    """Labels as strings (nulls kept); a list column gives its ``level``-th element (null if shorter)."""
    if _is_list(column.type):
        if level is None:
            raise input_error("labels are lists: choose a level with --label-level N", path=path, column=name)
        lengths = pc.fill_null(pc.list_value_length(column), 0)
        has = pc.greater(lengths, level)
        values = pc.list_element(pc.filter(column, has), level).cast(pa.string())
        return pc.replace_with_mask(pa.nulls(len(column), pa.string()), has, values)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    try:
        return column.cast(pa.string())
    except pa.ArrowNotImplementedError:
        raise input_error(f"labels must be strings, got {column.type}", path=path, column=name) from None


class _LabelFile:
    """Labels keyed by id, read from their own file and looked up batch by batch."""

    def __init__(self, path, id_col, label_col, level):
        import pandas as pd

        from .files import read_table

        table = read_table(path, columns=[id_col, label_col])
        ids = table.column(id_col)
        if ids.null_count:
            raise input_error(f"{ids.null_count} missing id(s)", path=path, column=id_col)
        self.labels = _labels(table.column(label_col).combine_chunks(), level, path, label_col)
        self.index = pd.Index(ids.cast(pa.string()).to_numpy(zero_copy_only=False))
        if not self.index.is_unique:
            dup = self.index[self.index.duplicated()][0]
            raise input_error(f"an id has several labels, e.g. {dup!r}", path=path, column=id_col)

    def lookup(self, ids):
        pos = self.index.get_indexer(ids.cast(pa.string()).to_numpy(zero_copy_only=False))
        found = pos >= 0
        return pc.if_else(pa.array(found), self.labels.take(pa.array(np.where(found, pos, 0))),
                          pa.nulls(len(pos), pa.string()))


class ArraySource:
    """Items from arrays in memory, served in batches like a file.

    Parameters
    ----------
    views : dict
        View name -> array of shape (n_items, n_features).
    ids, labels : array-like of shape (n_items,), optional
        Default ids are ``0..n_items-1``; labels may hold None (unlabelled).
    batch_rows : int
    """

    def __init__(self, views, ids=None, labels=None, *, batch_rows=DEFAULT_BATCH_ROWS):
        self.views = list(views)
        self._arrays = {v: np.asarray(X) for v, X in views.items()}
        shapes = {X.shape for X in self._arrays.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise InputError(f"views must be 2-D arrays of one shape, got {sorted(shapes)}")
        self.n_rows, self.dim = next(iter(shapes))
        self.ids = pa.array(np.arange(self.n_rows) if ids is None else ids)
        self.labels = None if labels is None else pa.array(labels).cast(pa.string())
        self.id_col, self.label_col, self.keep_cols = "id", None if labels is None else "label", []
        self.batch_rows = batch_rows
        self.metadata = {}
        self.path = "<arrays>"
        self.files = []

    def batches(self):
        for index, start in enumerate(range(0, self.n_rows, self.batch_rows)):
            rows = slice(start, min(start + self.batch_rows, self.n_rows))
            n = rows.stop - rows.start
            views = {v: embedding_matrix(pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(X[rows], dtype=np.float32).ravel()), self.dim), name=v, first_row=start)
                for v, X in self._arrays.items()}
            labels = None if self.labels is None else self.labels.slice(start, n)
            yield Batch(index, start, views, self.ids.slice(start, n), labels)
