"""Class files: a text list of names, or a CSV/parquet with names, prompts and embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import input_error
from .embeddings import embedding_matrix
from .files import TABLE_SUFFIXES, check_file, read_lines, read_table, require_columns

__all__ = ["ClassSet", "read_classes", "string_column"]


@dataclass
class ClassSet:
    """Classes read from a file: names, optional prompts, optional precomputed embeddings."""

    path: Path
    names: list
    prompts: list | None = None
    embeddings: np.ndarray | None = None


def string_column(table, col, path, *, what):
    """A column as an object array of str; a null is an error naming the first row."""
    import pyarrow as pa

    column = table.column(col)
    if column.null_count:
        first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise input_error(f"{column.null_count} missing {what}(s), first at row {first}", path=path, column=col)
    return np.asarray(column.cast(pa.string()).to_pylist(), dtype=object)


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
    path = check_file(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        names = read_lines(path)
        _check_names(names, path, None)
        return ClassSet(path, names)
    table = read_table(path)
    require_columns(table, [name_col], path)
    names = [str(n).strip().lstrip("\ufeff") for n in string_column(table, name_col, path, what="class name")]
    _check_names(names, path, name_col)
    prompts = None
    if prompt_col in table.column_names:
        prompts = list(string_column(table, prompt_col, path, what="prompt"))
    embeddings = None
    if embedding_col in table.column_names:
        embeddings = embedding_matrix(table.column(embedding_col), path=path, name=embedding_col)
    return ClassSet(path, names, prompts, embeddings)
