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
    """

    def __init__(self, workers=None, window=None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.window = window or 2 * self.workers

    def scan(self, batches, fn, *, on_batch=None, on_result=None):
        """``merge`` of ``fn(batch)`` over ``batches``.

        Parameters
        ----------
        batches : iterable of Batch
        fn : callable
            ``fn(batch) -> (stats, output)``; ``stats`` are merged, ``output`` (may be None) goes to
            ``on_result(batch, output)`` in batch order.
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
            if on_result is not None:
                on_result(batch, output)

        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(self.workers) as pool:
            try:
                for batch in batches:
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
