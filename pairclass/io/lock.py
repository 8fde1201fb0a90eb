"""An exclusive lock on an output for the length of a run, so that two runs never write one file."""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ..errors import input_error
from .files import write_error

__all__ = ["exclusive", "lock_path", "remove_leftovers"]


def lock_path(path):
    """The lock file of ``path``: ``EMB.parquet`` -> ``.EMB.parquet.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def exclusive(path):
    """Hold an exclusive ``flock`` on the lock file of ``path`` for the block; the lock file is removed after.

    Raises
    ------
    InputError
        At once, when another process (or another run in this one) holds the lock, or when the lock file
        cannot be created (a read-only folder, a parent that is a file, a name too long).
    """
    lock = lock_path(path)
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise write_error(path, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise input_error("another run is writing this output; wait for it to finish or pass another --out",
                              path=path) from None
        # The holder before us removes the file on release; a lock on that removed file locks nothing.
        try:
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def remove_leftovers(path):
    """Delete the temporary files (and folders) a killed run left beside ``path``; call it holding
    :func:`exclusive` on ``path``, so that no live run's are among them."""
    path = Path(path)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
