"""A batch of items as every pass sees it: one float32 matrix per view, plus the rows' ids and labels."""

from __future__ import annotations

from .crossvar import row_norms

__all__ = ["Batch"]


class Batch:
    """Rows ``start .. start + n`` of the items.

    Parameters
    ----------
    index : int
        Position of the batch in the scan.
    start : int
        Index of its first row among all items.
    views : dict
        View name -> float32 array of shape (n, n_features): finite, no all-zero rows.
    ids, labels : pyarrow.Array, optional
        The rows' ids and catalogue labels (labels may hold nulls: unlabelled rows).
    part : int
        Which part of the source (file) the rows come from, for sinks that keep the sharding.
    extra : dict
        Other columns the output carries through (pyarrow arrays).

    Derived arrays (norms, a transformed view) are computed once per batch with :meth:`memo`: one
    batch is handled by one worker at a time, so the memo needs no lock.
    """

    def __init__(self, index, start, views, ids=None, labels=None, *, part=0, extra=None):
        self.index = index
        self.start = start
        self.views = views
        self.ids = ids
        self.labels = labels
        self.part = part
        self.extra = extra or {}
        self.n = len(next(iter(views.values())))
        self._memo = {}

    def memo(self, key, compute):
        """``compute()``, once per batch and ``key``."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def x(self, name):
        """The array of view ``name``."""
        return self.views[name]

    def norms(self, name):
        """Row norms of view ``name``, computed once."""
        return self.memo(("norms", name), lambda: row_norms(self.x(name)))

    def with_views(self, key, make):
        """A batch over the same rows whose views are ``make(self)`` (computed once per ``key``)."""
        return self.memo(("views", key), lambda: _Derived(self, make(self)))


class _Derived(Batch):
    def __init__(self, parent, views):
        super().__init__(parent.index, parent.start, views, parent.ids, parent.labels, part=parent.part,
                         extra=parent.extra)
