"""A local cache of the validated views, so later scans skip the parquet decode.

The first scan appends each batch (views as fixed-width float32 lists, ids, labels and carried
columns) to one Arrow IPC file; later scans memory-map it and read the arrays without a copy. Its
pages belong to the file, not to the process: the kernel drops them under memory pressure.

Writing is bound by the disk, not the CPU, so a thread writes while the scan computes; a short
queue bounds the batches waiting for it.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from pathlib import Path

import pyarrow as pa

from ..batch import Batch

__all__ = ["ViewCache"]


class ViewCache:
    """Batches written once, read back by every later scan.

    Parameters
    ----------
    directory : path-like, optional
        Where the cache's folder is made (default: the system's temporary folder); the folder is
        removed by :meth:`close`.
    """

    def __init__(self, directory=None):
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="pairclass-cache-", dir=directory))
        self.path = self.dir / "views.arrow"
        self._sink = None
        self._writer = None
        self._layout = []  # (start, part, view names, extra names, has labels) per batch
        self._queue = queue.Queue(maxsize=2)
        self._error = None
        self._thread = None

    def write(self, batch):
        """Queue one batch for appending (call in scan order)."""
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="pairclass-cache", daemon=True)
            self._thread.start()
        self._layout.append((batch.start, batch.part, list(batch.views), list(batch.extra), batch.labels is not None))
        self._queue.put(batch)

    def _drain(self):
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._append(batch)
                except BaseException as e:  # handed to the scan by write() or finish()
                    self._error = e

    def _append(self, batch):
        columns = {"__id": batch.ids}
        for v, X in batch.views.items():
            columns[f"view:{v}"] = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])
        if batch.labels is not None:
            columns["__label"] = batch.labels
        for c, arr in batch.extra.items():
            columns[f"extra:{c}"] = arr
        record = pa.record_batch(list(columns.values()), names=list(columns))
        if self._writer is None:
            self._sink = pa.OSFile(str(self.path), "wb")
            self._writer = pa.ipc.new_file(self._sink, record.schema)
        self._writer.write_batch(record)

    def finish(self):
        """Wait for the writes and close the file: from now on :meth:`batches` reads it."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None

    def batches(self):
        reader = pa.ipc.open_file(pa.memory_map(str(self.path)))
        for index, (start, part, views, extra, has_labels) in enumerate(self._layout):
            record = reader.get_batch(index)
            arrays = {}
            for v in views:
                column = record.column(f"view:{v}")
                arrays[v] = column.values.to_numpy().reshape(len(column), -1)
            yield Batch(index, start, arrays, record.column("__id"),
                        record.column("__label") if has_labels else None, part=part,
                        extra={c: record.column(f"extra:{c}") for c in extra})

    def close(self):
        self.finish()
        shutil.rmtree(self.dir, ignore_errors=True)
