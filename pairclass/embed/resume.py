"""Chunked, resumable output: a sidecar folder of chunk files beside ``--out``, assembled atomically.

Each chunk is one parquet file, written atomically, holding the ids it covered and, per view, the
embedding, or null and the reason for a view that failed. The folder's ``run.json`` records the
settings that change the vectors, and a rerun with other settings is refused. A rerun reads the
chunks, skips the ids they hold and embeds the rest; a chunk that cannot be read (cut short by a
crash) is set aside and its ids are embedded again. The final parquet takes each id's latest record,
in manifest order, so no id is lost or repeated; then the folder is removed.

A rerun after a finished run starts from that output: its rows, and the reasons in its errors file,
become the first chunk, so only new ids are embedded. The settings recorded in its metadata must match.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import input_error
from ..io import atomic_path, write_error, write_table

__all__ = ["SETTINGS_KEY", "ChunkStore", "chunk_table", "differences", "embedding_column", "errors_path",
           "parts_dir"]

ID = "_id"
ERROR = "_error:"  # prefix of a view's reason column in a chunk
# chunk-NUMBER.parquet; Ray's writes add their write's id and a block number (chunk-NUMBER-UUID-0.parquet)
CHUNK = re.compile(r"^chunk-(\d{6,})(?:-[0-9a-f]{32}(?:-\d+)?)?\.parquet$")
SETTINGS_KEY = "pairclass.settings"
EARLIER = "failed in an earlier run"


def parts_dir(out):
    """The sidecar folder for ``out``: ``EMB.parquet`` -> ``EMB.parquet.parts``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def errors_path(out):
    """The errors file for ``out``: ``EMB.parquet`` -> ``EMB.errors.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".errors.csv")


def embedding_column(X, valid=None):
    """A (N, D) float array as a list<float32> column; rows where ``valid`` is False are null.

    Examples
    --------
    >>> embedding_column(np.array([[1.0, 0.0], [0.6, 0.8]])).to_pylist()
    [[1.0, 0.0], [0.6000000238418579, 0.800000011920929]]
    >>> embedding_column(np.ones((2, 1)), valid=np.array([False, True])).to_pylist()
    [None, [1.0]]
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    mask = None if valid is None else pa.array(~np.asarray(valid, bool))
    return pa.FixedSizeListArray.from_arrays(pa.array(X.ravel(), pa.float32()), X.shape[1], mask=mask).cast(
        pa.list_(pa.float32())
    )


def differences(previous, current):
    """What differs between two settings, for a one-line message.

    Examples
    --------
    >>> differences({"precision": "fp32", "dim": 64}, {"precision": "bf16", "dim": 64, "backend": "clip"})
    'backend unset, now "clip"; precision "fp32", now "bf16"'
    """
    def shown(settings, key):
        return json.dumps(settings[key]) if key in settings else "unset"

    keys = sorted(set(previous) | set(current))
    return "; ".join(f"{k} {shown(previous, k)}, now {shown(current, k)}" for k in keys
                     if previous.get(k) != current.get(k))


def chunk_table(ids, embeddings, errors, views):
    """One chunk's rows: the ids, per view the vectors (null where it failed) and the reasons.

    Parameters are those of :meth:`ChunkStore.write`, with ``views`` the store's views.
    """
    n = len(ids)
    vectors, reasons = {}, {}
    for view in views:
        failed = errors.get(view, {})
        valid = np.ones(n, bool)
        valid[list(failed)] = False
        vectors[view] = embedding_column(embeddings[view], valid)
        reasons[ERROR + view] = pa.array([failed.get(i) for i in range(n)], pa.string())
    return pa.table({ID: pa.array(ids, pa.string()), **vectors, **reasons})


class ChunkStore:
    """The sidecar folder of one ``--out`` file.

    Parameters
    ----------
    out : path-like
        The final parquet.
    settings : dict
        What makes chunks compatible (backend, model, weights, precision, image size, dimension,
        columns); JSON-ready. Chunks or an output written under other settings are refused.
    columns : dict of str to str
        Manifest column -> embedding column (view) for each view the chunks hold.
    """

    def __init__(self, out, settings, columns):
        self.out = Path(out)
        self.dir = parts_dir(out)
        self.settings = settings
        self.columns = dict(columns)
        self.views = list(self.columns.values())
        self._next = 0

    def open(self, ids):
        """Create or reopen the folder, starting from a finished output when there is one.

        Parameters
        ----------
        ids : list of str
            The manifest's ids; a finished output may hold no others.

        Returns
        -------
        done : set of str
            Ids whose every view is embedded by earlier runs.
        failed : set of str
            Ids with a view that failed in the latest earlier attempt.
        """
        for name in (self.out.name, errors_path(self.out).name):  # left by a kill during a final write
            for leftover in self.out.parent.glob(f".{glob.escape(name)}.*.tmp"):
                leftover.unlink(missing_ok=True)
        if self.dir.exists():
            try:
                previous = json.loads((self.dir / "run.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                previous = None
            if previous != self.settings:
                changed = "unreadable run.json" if not isinstance(previous, dict) else differences(previous,
                                                                                                 self.settings)
                raise input_error(f"holds chunks of a run with other settings ({changed}); rerun with the same "
                                  "settings or delete the folder", path=self.dir)
            for leftover in self.dir.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
        else:
            base = self._finished_output(ids) if self.out.exists() else None
            try:
                self.dir.mkdir(parents=True)
            except OSError as e:
                raise write_error(self.dir, e) from e
            with atomic_path(self.dir / "run.json") as tmp:
                tmp.write_text(json.dumps(self.settings, indent=1), encoding="utf-8")
            if base is not None:
                self._write(base)
        status = {}
        for _, path in self._chunks():
            table = self._read_status(path)
            if table is None:
                continue
            failed = np.zeros(table.num_rows, bool)
            for view in self.views:
                failed |= table.column(ERROR + view).is_valid().to_numpy(zero_copy_only=False)
            status.update(zip(table.column(ID).to_pylist(), failed.tolist()))
        self._next = max((n for n, _ in self._chunks()), default=-1) + 1
        return {i for i, bad in status.items() if not bad}, {i for i, bad in status.items() if bad}

    def _read_status(self, path):
        """A chunk's ids and reasons, or None after setting aside a chunk that cannot be read."""
        try:
            chunk = pq.ParquetFile(path)
            missing = {ID, *self.views, *(ERROR + v for v in self.views)} - set(chunk.schema_arrow.names)
            if missing:
                raise ValueError(f"no column {sorted(missing)[0]}")
            return chunk.read(columns=[ID, *(ERROR + v for v in self.views)])
        except (OSError, ValueError) as e:
            aside = path.with_name(path.name + ".unreadable")
            os.replace(path, aside)
            warnings.warn(f"{path}: unreadable chunk ({str(e).splitlines()[0]}); set aside as {aside.name}, "
                          "its items are embedded again", stacklevel=2)
            return None

    def _finished_output(self, ids):
        """The rows of a finished output (and the reasons of its errors file) as a chunk."""
        fix = "; delete it or pass another --out"
        try:
            schema = pq.read_schema(self.out)
        except (OSError, ValueError) as e:
            raise input_error(f"exists and cannot be read ({str(e).splitlines()[0]}){fix}", path=self.out) from None
        recorded = (schema.metadata or {}).get(SETTINGS_KEY.encode())
        if recorded is None:
            raise input_error(f"exists and records no pairclass embed settings{fix}", path=self.out)
        previous = json.loads(recorded)
        if previous != self.settings:
            raise input_error(f"was embedded with other settings ({differences(previous, self.settings)}); rerun "
                              f"with the same settings{fix}", path=self.out)
        id_col = self.settings["id_col"]
        table = pq.read_table(self.out, columns=[id_col, *self.views])
        out_ids = table.column(id_col).to_pylist()
        # ids that failed in every view have no row, only errors
        reasons = self._earlier_reasons()
        wanted, known = set(ids), set(out_ids)
        extra = known - wanted
        if extra:
            raise input_error(f"holds {len(extra)} id(s) not in the manifest, e.g. {sorted(extra)[0]!r}{fix}",
                              path=self.out)
        all_ids = out_ids + [i for i in dict.fromkeys(i for i, _ in reasons) if i not in known and i in wanted]
        vectors, why = {}, {}
        for src, view in self.columns.items():
            vectors[view] = pa.concat_arrays([table.column(view).combine_chunks().cast(pa.list_(pa.float32())),
                                              pa.nulls(len(all_ids) - len(out_ids), pa.list_(pa.float32()))])
            invalid = np.flatnonzero(~vectors[view].is_valid().to_numpy(zero_copy_only=False))
            view_why = np.full(len(all_ids), None, dtype=object)
            view_why[invalid] = [reasons.get((all_ids[r], src), EARLIER) for r in invalid]
            why[ERROR + view] = pa.array(view_why, pa.string())
        return pa.table({ID: pa.array(all_ids, pa.string()), **vectors, **why})

    def _earlier_reasons(self):
        """(id, manifest column) -> reason, from the errors file of a finished output; empty if unreadable."""
        path = errors_path(self.out)
        try:
            rows = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in ("id", "column", "reason")})).to_pylist()
            return {(r["id"], r["column"]): r["reason"] for r in rows}
        except (OSError, ValueError, KeyError):
            return {}

    def _chunks(self):
        found = []
        for path in self.dir.iterdir() if self.dir.exists() else ():
            m = CHUNK.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
        return sorted(found)

    def _write(self, table):
        with atomic_path(self.dir / f"chunk-{self._next:06d}.parquet") as tmp:
            pq.write_table(table, tmp)
        self._next += 1

    def write(self, ids, embeddings, errors):
        """Write one chunk atomically.

        Parameters
        ----------
        ids : list of str
            Every id the chunk covers.
        embeddings : dict of str to ndarray of shape (len(ids), dim)
            Per view; rows that failed are ignored.
        errors : dict of str to dict of int to str
            Per view, row position -> reason.
        """
        self._write(chunk_table(ids, embeddings, errors, self.views))

    @property
    def next_chunk(self):
        """The number the next chunk file gets (chunks are read in number order)."""
        return self._next

    def assemble(self, manifest, *, id_col, keep_cols=(), metadata=None):
        """Write the final parquet and the errors file from all chunks, then remove the folder.

        An item whose every view failed has no row; one with some views embedded has nulls in the others.

        Parameters
        ----------
        manifest : pyarrow.Table
            Gives the order of the rows, the ``keep_cols`` and the sources named in the errors file.
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
            ``id``, ``column``, ``source``, ``reason``: one row per failed view of a manifest id.
        """
        chunks = [pq.read_table(p) for _, p in self._chunks()]
        empty = pa.table({ID: pa.array([], pa.string()),
                          **{c: pa.array([], pa.list_(pa.float32())) for c in self.views},
                          **{ERROR + c: pa.array([], pa.string()) for c in self.views}})
        records = pa.concat_tables([empty, *chunks]) if chunks else empty
        # the latest record of each id wins (a retried failure)
        records = records.append_column("_seq", pa.array(np.arange(records.num_rows)))
        latest = records.group_by(ID, use_threads=False).aggregate([("_seq", "max")]).column("_seq_max")
        records = records.take(latest)
        ids = manifest.column(id_col).cast(pa.string())
        where = pc.index_in(ids, value_set=records.column(ID))
        manifest_rows = pc.indices_nonzero(where.is_valid())
        rows = records.take(pc.drop_null(where))
        embedded = np.zeros(rows.num_rows, bool)
        for view in self.views:
            embedded |= rows.column(view).is_valid().to_numpy(zero_copy_only=False)
        out = manifest.select([id_col, *keep_cols]).take(pc.filter(manifest_rows, embedded))
        out = out.set_column(0, id_col, out.column(0).cast(pa.string()))
        for view in self.views:
            out = out.append_column(view, pc.filter(rows.column(view), embedded))
        if metadata:
            out = out.replace_schema_metadata({**(out.schema.metadata or {}), **metadata})
        errors = self._errors(manifest, ids, manifest_rows, rows)
        write_table(out, self.out)
        if errors.num_rows:
            write_table(errors, errors_path(self.out))
        else:
            errors_path(self.out).unlink(missing_ok=True)
        shutil.rmtree(self.dir)
        return out.num_rows, errors

    def _errors(self, manifest, ids, manifest_rows, rows):
        """The errors table: per failed view, the id, the manifest column, its cell and the reason,
        in manifest order."""
        found = []
        for src, view in self.columns.items():
            reasons = rows.column(ERROR + view)
            bad = pc.indices_nonzero(reasons.is_valid())
            positions = manifest_rows.take(bad)
            cells = manifest.column(src).take(positions).to_pylist()
            found += zip(positions.to_pylist(), ids.take(positions).to_pylist(), [src] * len(bad),
                         ["" if c is None else str(c) for c in cells], reasons.take(bad).to_pylist())
        found.sort(key=lambda f: f[0])
        names = ("id", "column", "source", "reason")
        return pa.table({n: pa.array([f[k + 1] for f in found], pa.string()) for k, n in enumerate(names)})
