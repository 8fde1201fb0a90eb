"""Sinks: where the last scan's rows go. Nothing appears at the target until :meth:`commit`, so a run
that fails leaves the previous output as it was.

- ``FILE.parquet`` (or ``.pq``, ``.csv``): one file, streamed into a temporary file beside it and
  renamed into place.
- ``DIR/`` (or a path with no suffix): a parquet dataset, one part file per part of the source,
  written into a temporary folder beside it that replaces ``DIR`` at the end.
- :class:`MemorySink`: a pyarrow Table in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .files import current_umask, write_error

__all__ = ["DatasetSink", "FileSink", "MemorySink", "open_sink"]

FILE_SUFFIXES = (".parquet", ".pq", ".csv")


def open_sink(out):
    """A :class:`FileSink` for a file name with a table suffix, else a :class:`DatasetSink`."""
    text = str(out)
    path = Path(out)
    if text.endswith(("/", os.sep)) or path.suffix.lower() not in FILE_SUFFIXES:
        return DatasetSink(path)
    return FileSink(path)


def _plain(table):
    """Dictionary columns as plain strings (what CSV holds)."""
    return pa.table({name: col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
                     for name, col in zip(table.column_names, table.columns)})


class FileSink:
    """One parquet or CSV file, written atomically. Its temporary file is made at once, so a target
    that cannot be written fails before any work."""

    def __init__(self, path):
        self.path = Path(path)
        self.csv = self.path.suffix.lower() == ".csv"
        self._writer = None
        self._schema = None
        try:
            if self.path.is_dir():
                raise IsADirectoryError(21, "is a directory")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as e:
            raise write_error(self.path, e) from None
        os.close(fd)
        self._tmp = Path(tmp)

    def write(self, table, part=0):
        try:
            if self._writer is None:
                self._schema = _plain(table).schema if self.csv else table.schema
                self._writer = (pacsv.CSVWriter(self._tmp, self._schema) if self.csv
                                else pq.ParquetWriter(self._tmp, self._schema))
            table = _plain(table) if self.csv else table
            self._writer.write_table(table.cast(self._schema))
        except OSError as e:
            self.abort()
            raise write_error(self.path, e) from None

    def commit(self):
        try:
            self._writer.close()
            os.chmod(self._tmp, 0o666 & ~current_umask())
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.abort()
            raise write_error(self.path, e) from None

    def abort(self):
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
            self._writer = None
        self._tmp.unlink(missing_ok=True)


class DatasetSink:
    """A folder of parquet part files, ``part-00000.parquet`` and on, one per part of the source."""

    def __init__(self, path):
        self.path = Path(path)
        self._part = None
        self._writer = None
        self._schema = None
        try:
            if self.path.exists() and not self.path.is_dir():
                raise FileExistsError(17, "exists and is not a folder")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        except OSError as e:
            raise write_error(self.path, e) from None

    @property
    def staging(self):
        """The temporary folder that :meth:`commit` puts in place: an engine whose workers write the
        part files themselves writes them here."""
        return self._tmp

    def write(self, table, part=0):
        try:
            if self._schema is None:
                self._schema = table.schema
            if part != self._part:
                self._close_part()
                self._part = part
                self._writer = pq.ParquetWriter(self._tmp / f"part-{part:05d}.parquet", self._schema)
            self._writer.write_table(table.cast(self._schema))
        except OSError as e:
            self.abort()
            raise write_error(self.path, e) from None

    def _close_part(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self):
        try:
            self._close_part()
            os.chmod(self._tmp, 0o777 & ~current_umask())
            old = None
            if self.path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
                os.replace(self.path, old / "previous")
            os.replace(self._tmp, self.path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as e:
            self.abort()
            raise write_error(self.path, e) from None

    def abort(self):
        try:
            self._close_part()
        except OSError:
            pass
        shutil.rmtree(self._tmp, ignore_errors=True)


class MemorySink:
    """The rows as one pyarrow Table (:attr:`table` after :meth:`commit`)."""

    def __init__(self):
        self._tables = []
        self.table = None

    def write(self, table, part=0):
        self._tables.append(table)

    def commit(self):
        self.table = pa.concat_tables(self._tables) if self._tables else None

    def abort(self):
        self._tables = []

