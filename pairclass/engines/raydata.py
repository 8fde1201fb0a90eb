"""The Ray engine: each scan is a Ray Data job, for catalogues that outgrow one machine.

A scan is ``read_parquet`` (the source's files and columns) -> ``map_batches`` (the rows checked by
the source's own :meth:`~pairclass.io.ParquetSource.to_batch`, then the pass's map function) -> the
per-batch statistics back to the driver, merged there in the dataset's order. The next pass's map
functions close over the merged, class-sized state (fitted classifiers), and Ray ships them to the
workers with cloudpickle. The last scan's rows go to ``write_parquet`` for a folder output (its part
files written by the workers), or back to the driver for a single file or a table in memory.

Ray Data does the scheduling, the partitioning and the transport. The statistics are exact integers,
so the merge order does not change them; the order is kept anyway (``preserve_order``), so that the
floating sums of ``cotrain_gmm`` and a single output file's rows come out the same on every run.
Ray's parquet reads do not say where in its file a row is (``row_positions`` is False): a bad row is
named by its file and its position in the batch, and the methods or reports that need the rows'
positions are refused.

``ray`` is the ``ray`` extra (``pip install 'pairclass[ray]'``), imported when a scan runs.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..methods.passes import merge

__all__ = ["RAY_EXTRA", "RayEngine", "require_ray"]

RAY_EXTRA = "pip install 'pairclass[ray]'"
# Columns of a map's result besides the output rows: the batch's pickled statistics and its row count,
# in its first row.
_STATS, _ROWS = "__pairclass_stats", "__pairclass_rows"
_PATH = "path"  # the column read_parquet(include_paths=True) adds


def require_ray(option="--engine ray"):
    """Fail in one line, naming the extra, when ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise InputError(f"{option} needs ray, which is not installed; install it with {RAY_EXTRA}")


# Ray starts its workers at nice 15, so on a machine where anything else is busy they get a few per
# cent of a core: beside two busy loops on 2 cores a task that imports torch took 88 s, 4 s at nice 0.
# A local cluster's workers do the job itself, so they run at the driver's priority.
LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}


def connect(address=None, num_cpus=None):
    """Join the Ray cluster at ``address`` (``"auto"``, ``"ray://host:10001"``...), or start a local one;
    a driver that already called ``ray.init`` keeps its cluster. Ray Data keeps the datasets' order and
    draws no progress bars (the caller shows its own)."""
    import ray
    import ray.data

    if not ray.is_initialized():
        # "local" starts a new cluster even where `ray start` left one (or its stale address file):
        # without an address, ray.init would join that one, and refuse num_cpus.
        local = {} if address else {"num_cpus": num_cpus, "_system_config": LOCAL_SYSTEM_CONFIG}
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False, **local)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # a line per dataset otherwise
    context = ray.data.DataContext.get_current()
    # The file-listing actors of Ray 2.60's new parquet reader cost seconds per scan; the classic
    # reader lists once, when the dataset is made.
    context.use_datasource_v2 = False
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return ray


class RayEngine:
    """Run scans as Ray Data jobs.

    Parameters
    ----------
    address : str, optional
        The cluster to join (``ray.init(address=...)``: ``"auto"``, ``"HOST:6379"``,
        ``"ray://HOST:10001"``). Default: a driver that called ``ray.init`` keeps its cluster,
        otherwise a local one is started. Every node must read the source's files and write a
        folder output at the same paths (shared storage).
    workers : int, optional
        Map tasks at once (Ray Data's ``concurrency``); default: as many as the cluster's CPUs allow.

    Attributes
    ----------
    local_cache : bool
        False: every scan reads the files on the cluster.
    row_positions : bool
        False: a batch does not know its rows' positions among all items.
    """

    name = "ray"
    local_cache = False
    row_positions = False

    def __init__(self, address=None, workers=None):
        require_ray()  # here too: an engine built without get_engine
        self.address = address
        self.workers = workers

    def scan(self, source, fn, *, sink=None, progress=None, on_batch=None):
        """``merge`` of the statistics of ``fn(batch)`` over the source's files, as a Ray Data job.

        Parameters are those of :meth:`pairclass.engines.LocalEngine.scan`; ``source`` must be a
        :class:`~pairclass.io.ParquetSource` and ``on_batch`` None (no local cache). A sink with a
        ``staging`` folder (:class:`~pairclass.io.DatasetSink`) gets its part files from the workers'
        ``write_parquet``; any other sink gets the rows on the driver, in order.
        """
        if on_batch is not None:
            raise ValueError("the Ray engine keeps no local cache (on_batch must be None)")
        if not getattr(source, "files", None):
            raise InputError(f"{source.path}: --engine ray reads parquet files; pass a file, a folder or a glob")
        if _PATH in source.columns:
            raise InputError(f"{source.path}: {_PATH}: --engine ray uses this column name for each row's file; "
                             "rename the column")
        connect(self.address, self.workers)
        import ray.data

        parts = {_key(f): part for part, f in enumerate(source.files)}
        rows = ray.data.read_parquet([str(f) for f in source.files], columns=source.columns, include_paths=True,
                                     file_extensions=None)
        mapped = rows.map_batches(_map(source, parts, fn, sink is not None), batch_format="pyarrow",
                                  batch_size=source.batch_rows, concurrency=self.workers)
        folder = getattr(sink, "staging", None)
        if folder is None:
            return _collect(mapped, progress, sink)
        done = mapped.materialize()
        total = _collect(done.select_columns([_STATS, _ROWS]), progress, None)
        done.drop_columns([_STATS, _ROWS]).write_parquet(str(folder))
        return total


def _key(path):
    return str(Path(path).resolve())


def _map(source, parts, fn, keep_rows):
    """The map function of one scan: a block of parquet rows -> its statistics (and output rows)."""

    def work(table):
        from threadpoolctl import threadpool_limits

        if table.num_rows == 0:
            return pa.table({_STATS: pa.array([], pa.large_binary()), _ROWS: pa.array([], pa.int64())})
        paths = table.column(_PATH).unique().to_pylist()
        if len(paths) > 1:  # a batch across files: each file's rows on their own
            return pa.concat_tables([work(table.filter(pc.equal(table.column(_PATH), p))) for p in paths],
                                    promote_options="default")
        record = table.drop_columns([_PATH]).combine_chunks().to_batches()[0]
        try:
            batch = source.to_batch(record, paths[0], part=parts[_key(paths[0])])
            with threadpool_limits(1, user_api="blas"):
                stats, output = fn(batch)
        except InputError as e:  # bad input: its one line goes to the driver as the batch's result
            stats, output = e, None
        first = [pickle.dumps(stats, protocol=pickle.HIGHEST_PROTOCOL)] + [None] * (record.num_rows - 1)
        count = [record.num_rows] + [None] * (record.num_rows - 1)
        if not keep_rows or output is None:
            return pa.table({_STATS: pa.array(first[:1], pa.large_binary()), _ROWS: pa.array(count[:1], pa.int64())})
        return output.append_column(_STATS, pa.array(first, pa.large_binary())).append_column(
            _ROWS, pa.array(count, pa.int64()))

    return work


def _collect(dataset, progress, sink):
    """Merge the statistics of every block on the driver, in the dataset's order (a batch's input
    error is raised here); rows go to ``sink``."""
    total = None
    for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        held = block.column(_STATS).drop_null().to_pylist()
        for stats in map(pickle.loads, held):
            if isinstance(stats, InputError):
                raise stats
            total = merge(total, stats)
        if progress is not None:
            progress.advance(int(pc.sum(block.column(_ROWS)).as_py() or 0))
        if sink is not None and block.num_columns > 2:
            sink.write(block.drop_columns([_STATS, _ROWS]))
    return total
