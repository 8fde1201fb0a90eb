"""Reading and writing: sources of item batches, sinks for predictions, class files, atomic files.

Schema and value checks live here: every problem with a file raises
:class:`~pairclass.errors.InputError` whose one-line message names the file and the column.
"""

from .cache import ViewCache
from .classes import ClassSet, read_classes, string_column
from .embeddings import DEFAULT_ID_COL, DEFAULT_VIEWS, EmbeddingSet, embedding_matrix, read_embeddings
from .lock import exclusive, remove_leftovers
from .files import (
    TABLE_SUFFIXES, atomic_path, check_file, check_output, check_outputs, read_lines, read_table, require_columns, write_error,
    write_table,
)
from .sink import DatasetSink, FileSink, MemorySink, open_sink
from .source import DEFAULT_BATCH_ROWS, VIEWS_METADATA_KEY, ArraySource, ParquetSource

__all__ = [
    "DEFAULT_BATCH_ROWS", "DEFAULT_ID_COL", "DEFAULT_VIEWS", "TABLE_SUFFIXES", "VIEWS_METADATA_KEY",
    "ArraySource", "ClassSet", "DatasetSink", "EmbeddingSet", "FileSink", "MemorySink", "ParquetSource",
    "ViewCache", "atomic_path", "exclusive", "remove_leftovers", "check_file", "check_output", "check_outputs", "embedding_matrix", "open_sink", "read_classes",
    "read_embeddings", "read_lines", "read_table", "require_columns", "string_column", "write_error", "write_table",
]
