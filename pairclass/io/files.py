"""Files: atomic writes, whole-table reads, text lines, and the guard that keeps outputs off inputs.

Every problem with a file raises :class:`~pairclass.errors.InputError` whose one-line message names
the file. Writes go to a temporary file in the target folder and are renamed into place, so an
interrupted write never leaves a file that looks complete.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import input_error

__all__ = [
    "TABLE_SUFFIXES", "atomic_path", "current_umask", "write_error", "check_file", "check_output", "check_outputs", "read_lines", "read_table", "require_columns",
    "write_table",
]

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
        os.chmod(tmp, 0o666 & ~current_umask())
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
    parent_is_file = isinstance(error, NotADirectoryError) or (
        isinstance(error, FileExistsError) and not error.strerror.startswith("exists"))
    problem = "a parent folder is a file" if parent_is_file else error.strerror or str(error)
    return input_error(f"cannot write: {problem}", path=path)


def current_umask():
    """The process's umask (reading it means setting it, so it is set straight back)."""
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


def check_file(path):
    path = Path(path)
    if not path.exists():
        raise input_error("file not found", path=path)
    if not path.is_file():
        raise input_error("not a file", path=path)
    return path


def check_outputs(inputs, **outputs):
    """:func:`check_output` for each output given, by option name (``out=..., report=...``)."""
    for option, out in outputs.items():
        if out is not None:
            check_output(out, inputs, option=f"--{option}")


def check_output(out, inputs, *, option="--out"):
    """Refuse an output that is one of the ``inputs`` (same resolved path, or the same file by inode),
    or lies inside an input directory; and one whose name the system refuses."""
    out = Path(out)
    try:
        target = out.resolve()
        exists = out.exists()
    except OSError as e:
        raise write_error(out, e) from None
    for given in inputs:
        given = Path(given)
        source = given.resolve()
        same = target == source or (exists and given.exists() and os.path.samefile(out, given))
        if same or (given.is_dir() and source in target.parents):
            raise input_error(f"is an input of this run ({given}); choose another {option}", path=out)


def read_table(path, columns=None):
    """Read a parquet or CSV file into a pyarrow Table, with file-named errors."""
    path = check_file(path)
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


def require_columns(table_or_schema, columns, path):
    names = table_or_schema.names if isinstance(table_or_schema, pa.Schema) else table_or_schema.column_names
    for col in columns:
        if col not in names:
            raise input_error(f"column not found (columns: {', '.join(names)})", path=path, column=col)


def read_lines(path):
    """Non-blank, stripped lines of a UTF-8 text file (``#`` starts a comment line; a byte-order
    mark is dropped)."""
    path = check_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise input_error("not a UTF-8 text file", path=path) from e
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
