"""Readers and writers: embedding parquet files, class lists, predictions. Schema checks live here.

Every problem with a file raises :class:`~pairclass.errors.InputError` whose one-line message names
the file and the column. Writes go to a temporary file in the target folder and are renamed into
place, so an interrupted write never leaves a file that looks complete.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import input_error

__all__ = [
    "DEFAULT_ID_COL",
    "DEFAULT_VIEWS",
    "EmbeddingSet",
    "ClassSet",
    "atomic_path",
    "write_error",
    "read_table",
    "write_table",
    "embedding_matrix",
    "read_embeddings",
    "read_classes",
    "read_lines",
]

DEFAULT_ID_COL = "product_id"
DEFAULT_VIEWS = ("clip_image_features", "clip_text_features")
TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from e
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from e
    finally:
        tmp.unlink(missing_ok=True)


def write_error(path, error):
    """An ``OSError`` met while writing ``path`` (a read-only folder, a full disk, a parent that is a
    file, a name too long, a folder in the way) as a one-line :class:`~pairclass.errors.InputError`.

    Examples
    --------
    >>> str(write_error("out/e.parquet", OSError(28, "No space left on device")))
    'out/e.parquet: cannot write: No space left on device'
    """
    parent_is_file = isinstance(error, (FileExistsError, NotADirectoryError))
    problem = "a parent folder is a file" if parent_is_file else error.strerror or str(error)
    return input_error(f"cannot write: {problem}", path=path)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_table(table, path):
    """Write a pyarrow Table or pandas DataFrame atomically: CSV for ``.csv``, parquet otherwise."""
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        if Path(path).suffix.lower() == ".csv":
            pacsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)


def _check_file(path):
    path = Path(path)
    if not path.exists():
        raise input_error("file not found", path=path)
    if not path.is_file():
        raise input_error("not a file", path=path)
    return path


def read_table(path, columns=None):
    """Read a parquet or CSV file into a pyarrow Table, with file-named errors."""
    path = _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            table = pacsv.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            table = pq.read_table(path)
        else:
            raise input_error(
                f"unsupported file type {suffix!r}; expected one of {', '.join(TABLE_SUFFIXES)}",
                path=path,
            )
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise input_error(f"cannot read file: {str(e).splitlines()[0]}", path=path) from e
    if columns is not None:
        require_columns(table, columns, path)
        table = table.select(list(columns))
    return table


def require_columns(table, columns, path):
    for col in columns:
        if col not in table.column_names:
            have = ", ".join(table.column_names)
            raise input_error(f"column not found (columns: {have})", path=path, column=col)


def embedding_matrix(column, *, path=None, name=None):
    """Convert a list<float> column to a float32 matrix, checking shape and values.

    Raises ``InputError`` for a non-list type, nulls, ragged lengths, no rows, NaN or infinite
    values, and all-zero vectors.

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
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)):
        raise fail(f"expected list<float> embeddings, got {column.type}")
    if not (pa.types.is_floating(column.type.value_type) or pa.types.is_integer(column.type.value_type)):
        raise fail(f"expected list<float> embeddings, got {column.type}")
    if len(column) == 0:
        raise fail("no rows")
    if column.null_count:
        first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise fail(f"{column.null_count} missing embedding(s), first at row {first}")
    lengths = pc.list_value_length(column).to_numpy()
    if (lengths != lengths[0]).any():
        bad = int(np.flatnonzero(lengths != lengths[0])[0])
        raise fail(f"ragged embeddings: row {bad} has length {lengths[bad]}, row 0 has {lengths[0]}")
    if lengths[0] == 0:
        raise fail("embeddings have length 0")
    values = column.flatten()
    if values.null_count:
        raise fail("embeddings contain null values")
    X = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(column), -1)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise fail(f"{bad.size} row(s) with NaN or infinite values, first at row {bad[0]}")
    zero = ~X.any(axis=1)
    if zero.any():
        bad = np.flatnonzero(zero)
        raise fail(f"{bad.size} all-zero vector(s), first at row {bad[0]}")
    return X


@dataclass
class EmbeddingSet:
    """Items read from an embedding file: ids, one float32 matrix per view, optional labels."""

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


def _string_column(table, col, path, *, what):
    column = table.column(col)
    if column.null_count:
        first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise input_error(f"{column.null_count} missing {what}(s), first at row {first}", path=path, column=col)
    return np.asarray(column.cast(pa.string()).to_pylist(), dtype=object)


def read_embeddings(path, views=DEFAULT_VIEWS, *, id_col=DEFAULT_ID_COL, label_col=None):
    """Read an embedding parquet in the SQID layout.

    Parameters
    ----------
    path : path-like
        Parquet file with an id column and one list<float> column per view.
    views : sequence of str
        Embedding columns to read.
    id_col : str, default="product_id"
    label_col : str, optional
        Column of catalogue labels.

    Returns
    -------
    EmbeddingSet
    """
    path = _check_file(path)
    views = list(views)
    if not views:
        raise input_error("no embedding columns (views) given", path=path)
    if len(set(views)) != len(views):
        raise input_error(f"views repeat a column: {', '.join(views)}", path=path)
    wanted = [id_col, *views] + ([label_col] if label_col else [])
    table = read_table(path, columns=wanted)
    ids = _string_column(table, id_col, path, what="id")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise input_error(f"{dup.size} duplicate id(s), e.g. {dup[0]!r}", path=path, column=id_col)
    matrices = {v: embedding_matrix(table.column(v), path=path, name=v) for v in views}
    dims = {v: m.shape[1] for v, m in matrices.items()}
    if len(set(dims.values())) > 1:
        desc = ", ".join(f"{v}={d}" for v, d in dims.items())
        raise input_error(f"views have different dimensions ({desc})", path=path, column=views[-1])
    labels = _string_column(table, label_col, path, what="label") if label_col else None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
    return EmbeddingSet(path, ids, matrices, labels, id_col, label_col, meta)


@dataclass
class ClassSet:
    """Classes read from a file: names, optional prompts, optional precomputed embeddings."""

    path: Path
    names: list
    prompts: list | None = None
    embeddings: np.ndarray | None = None


def read_lines(path):
    """Non-blank, stripped lines of a UTF-8 text file (``#`` starts a comment line)."""
    path = _check_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise input_error("not a UTF-8 text file", path=path) from e
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _check_names(names, path, column):
    if any(not n for n in names):
        raise input_error("empty class name", path=path, column=column)
    seen = set()
    for n in names:
        if n in seen:
            raise input_error(f"duplicate class name {n!r}", path=path, column=column)
        seen.add(n)
    if len(names) < 2:
        raise input_error(f"need at least 2 classes, got {len(names)}", path=path, column=column)


def read_classes(path, *, name_col="name", prompt_col="prompt", embedding_col="embedding"):
    """Read a class list: a text file (one class per line), or a CSV/parquet with ``name`` and
    optional ``prompt`` and ``embedding`` columns.

    Returns
    -------
    ClassSet
    """
    path = _check_file(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        names = read_lines(path)
        _check_names(names, path, None)
        return ClassSet(path, names)
    table = read_table(path)
    require_columns(table, [name_col], path)
    names = [str(n).strip() for n in _string_column(table, name_col, path, what="class name")]
    _check_names(names, path, name_col)
    prompts = None
    if prompt_col in table.column_names:
        prompts = list(_string_column(table, prompt_col, path, what="prompt"))
    embeddings = None
    if embedding_col in table.column_names:
        embeddings = embedding_matrix(table.column(embedding_col), path=path, name=embedding_col)
    return ClassSet(path, names, prompts, embeddings)
