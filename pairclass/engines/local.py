"""The local engine: worker threads over the batches of one machine.

The main thread reads the source (pyarrow decodes with the GIL released) and keeps up to ``window``
batches in flight on a thread pool; numpy and BLAS release the GIL too, so every core works. BLAS is
held to one thread per worker meanwhile: the products here are tall and thin, where a multithreaded
BLAS only adds overhead. Results are taken in batch order, so floating-point merges and the sink's
rows come out the same whatever the timing.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_limits

from ..methods.passes import merge

__all__ = ["LocalEngine"]


class LocalEngine:
    """Run scans with ``workers`` threads (default: the CPU count).

    Parameters
    ----------
    workers : int, optional
    window : int, optional
        Batches in flight at once (default ``2 * workers``): bounds the memory a scan holds.

    Attributes
    ----------
    local_cache : bool
        True: a local view cache can serve this engine's later scans.
    row_positions : bool
        True: each batch knows its rows' positions among all items (``Batch.start``), which the
        in-memory methods and a report's examples need.
    """

    name = "local"
    local_cache = True
    row_positions = True

    def __init__(self, workers=None, window=None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.window = window or 2 * self.workers

    def scan(self, source, fn, *, sink=None, progress=None, on_batch=None):
        """``merge`` of the statistics of ``fn(batch)`` over ``source.batches()``.

        Parameters
        ----------
        source : ParquetSource, ArraySource or ViewCache
        fn : callable
            ``fn(batch) -> (stats, output)``; ``stats`` are merged, ``output`` (a table, or None)
            goes to ``sink.write(output, batch.part)`` in batch order.
        sink : FileSink, DatasetSink or MemorySink, optional
        progress : LogProgress-like, optional
            ``progress.advance(n)`` after each batch.
        on_batch : callable, optional
            ``on_batch(batch)``, in the reading thread before the batch is handed out (a cache writer).
        """
        total = None
        pending = deque()

        def collect(future_batch):
            nonlocal total
            batch, future = future_batch
            stats, output = future.result()
            total = merge(total, stats)
            if progress is not None:
                progress.advance(batch.n)
            if sink is not None and output is not None:
                sink.write(output, batch.part)

        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(self.workers) as pool:
            try:
                for batch in source.batches():
                    if on_batch is not None:
                        on_batch(batch)
                    pending.append((batch, pool.submit(fn, batch)))
                    while len(pending) >= self.window:
                        collect(pending.popleft())
                while pending:
                    collect(pending.popleft())
            finally:
                for _, future in pending:
                    future.cancel()
        return total
