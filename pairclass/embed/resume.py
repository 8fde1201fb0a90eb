"""Chunked, resumable output: a sidecar folder of chunk files beside ``--out``, assembled atomically.

Each chunk is one parquet file, written atomically, holding the ids it covered, their embeddings and,
for items that failed, the reason. A rerun reads the chunks, skips the ids they hold and embeds the
rest. The final parquet takes each id's latest record, in manifest order, so no id is lost or repeated;
then the folder is removed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import input_error
from ..io import atomic_path, write_table

__all__ = ["ChunkStore", "embedding_column", "errors_path", "parts_dir"]

ID = "_id"
ERROR_COLUMN, ERROR_SOURCE, ERROR_REASON = "_error_column", "_error_source", "_error_reason"
CHUNK = re.compile(r"^chunk-(\d{6,})\.parquet$")


def parts_dir(out):
    """The sidecar folder for ``out``: ``EMB.parquet`` -> ``EMB.parquet.parts``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def errors_path(out):
    """The errors file for ``out``: ``EMB.parquet`` -> ``EMB.errors.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".errors.csv")


def embedding_column(X):
    """A (N, D) float array as a list<float32> column.

    Examples
    --------
    >>> embedding_column(np.array([[1.0, 0.0], [0.6, 0.8]])).to_pylist()
    [[1.0, 0.0], [0.6000000238418579, 0.800000011920929]]
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(X.ravel(), pa.float32()), X.shape[1]).cast(
        pa.list_(pa.float32())
    )


class ChunkStore:
    """The sidecar folder of one ``--out`` file.

    Parameters
    ----------
    out : path-like
        The final parquet.
    signature : dict
        What makes chunks compatible (backend, model, weights, columns, dimension). Chunks written
        under another signature are refused.
    columns : sequence of str
        The embedding columns each chunk holds.
    """

    def __init__(self, out, signature, columns):
        self.out = Path(out)
        self.dir = parts_dir(out)
        self.signature = signature
        self.columns = list(columns)
        self._next = 0

    def open(self):
        """Create or reopen the folder.

        Returns
        -------
        done : set of str
            Ids embedded by earlier runs.
        failed : set of str
            Ids that failed in earlier runs and have no success since.
        """
        run_file = self.dir / "run.json"
        if self.dir.exists():
            try:
                previous = json.loads(run_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                previous = None
            if previous != self.signature:
                changed = "unreadable run.json" if not isinstance(previous, dict) else ", ".join(
                    k for k in sorted(set(previous) | set(self.signature))
                    if previous.get(k) != self.signature.get(k)
                )
                raise input_error(
                    f"holds chunks of a run with other settings ({changed}); rerun with the same settings "
                    "or delete the folder",
                    path=self.dir,
                )
            for leftover in self.dir.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
        else:
            self.dir.mkdir(parents=True)
            with atomic_path(run_file) as tmp:
                tmp.write_text(json.dumps(self.signature, indent=1), encoding="utf-8")
        chunks = self._chunks()
        self._next = max((n for n, _ in chunks), default=-1) + 1
        ok, failed = set(), set()
        for _, path in chunks:
            t = pq.read_table(path, columns=[ID, ERROR_REASON])
            ids = t.column(ID).to_pylist()
            bad = t.column(ERROR_REASON).is_valid().to_numpy(zero_copy_only=False)
            for i, b in zip(ids, bad):
                if b:
                    failed.add(i)
                else:
                    ok.add(i)
                    failed.discard(i)
        return ok, failed - ok

    def _chunks(self):
        found = []
        for path in self.dir.iterdir() if self.dir.exists() else ():
            m = CHUNK.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
        return sorted(found)

    def write(self, ids, embeddings, errors):
        """Write one chunk atomically.

        Parameters
        ----------
        ids : list of str
            Every id the chunk covers, embedded or failed.
        embeddings : dict of str to ndarray of shape (len(ids), dim)
            Per column; rows of failed ids are ignored.
        errors : dict of int to (str, str, str)
            Row position -> (column, source, reason).
        """
        n = len(ids)
        reason = [errors.get(i, (None, None, None)) for i in range(n)]
        table = pa.table({
            ID: pa.array(ids, pa.string()),
            **{c: embedding_column(embeddings[c]) for c in self.columns},
            ERROR_COLUMN: pa.array([r[0] for r in reason], pa.string()),
            ERROR_SOURCE: pa.array([r[1] for r in reason], pa.string()),
            ERROR_REASON: pa.array([r[2] for r in reason], pa.string()),
        })
        with atomic_path(self.dir / f"chunk-{self._next:06d}.parquet") as tmp:
            pq.write_table(table, tmp)
        self._next += 1

    def assemble(self, manifest, *, id_col, keep_cols=(), metadata=None):
        """Write the final parquet and the errors file from all chunks, then remove the folder.

        Parameters
        ----------
        manifest : pyarrow.Table
            Gives the order of the rows and the ``keep_cols``.
        id_col : str
        keep_cols : sequence of str
            Manifest columns copied to the output.
        metadata : dict, optional
            Schema metadata of the final parquet.

        Returns
        -------
        n_rows : int
            Rows written.
        errors : pyarrow.Table
            ``id``, ``column``, ``source``, ``reason`` of the manifest ids that failed.
        """
        chunks = [pq.read_table(p) for _, p in self._chunks()]
        empty = pa.table({ID: pa.array([], pa.string()),
                          **{c: pa.array([], pa.list_(pa.float32())) for c in self.columns},
                          **{k: pa.array([], pa.string()) for k in (ERROR_COLUMN, ERROR_SOURCE, ERROR_REASON)}})
        records = pa.concat_tables([empty, *chunks]) if chunks else empty
        # the latest record of each id wins (a retried failure)
        records = records.append_column("_seq", pa.array(np.arange(records.num_rows)))
        latest = records.group_by(ID, use_threads=False).aggregate([("_seq", "max")]).column("_seq_max")
        records = records.take(latest)
        ids = manifest.column(id_col).cast(pa.string())
        where = pc.index_in(ids, value_set=records.column(ID))
        present = where.is_valid()
        manifest_rows = pc.indices_nonzero(present)
        rows = records.take(pc.drop_null(where))
        ok = rows.column(ERROR_REASON).is_null()
        out = manifest.select([id_col, *keep_cols]).take(pc.filter(manifest_rows, ok))
        out = out.set_column(0, id_col, out.column(0).cast(pa.string()))
        for c in self.columns:
            out = out.append_column(c, pc.filter(rows.column(c), ok))
        if metadata:
            out = out.replace_schema_metadata({**(out.schema.metadata or {}), **metadata})
        failed = rows.filter(pc.invert(ok))
        errors = pa.table({
            "id": failed.column(ID), "column": failed.column(ERROR_COLUMN),
            "source": failed.column(ERROR_SOURCE), "reason": failed.column(ERROR_REASON),
        })
        write_table(out, self.out)
        if errors.num_rows:
            write_table(errors, errors_path(self.out))
        else:
            errors_path(self.out).unlink(missing_ok=True)
        shutil.rmtree(self.dir)
        return out.num_rows, errors
