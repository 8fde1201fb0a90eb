"""Page pieces both reports share: a count matrix drawn and tabled, item texts, figure salts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup

from .figures import heatmap_svg

__all__ = ["Matrix", "Salts", "text_fields"]

TEXT_CHARS = 280


def text_fields(row, columns):
    """``[(column, text)]`` of an item row, each text cut to ``TEXT_CHARS`` characters.

    Examples
    --------
    >>> text_fields({"title": "x" * 300, "brand": None}, ["title", "brand"])[0][1][-3:]
    'xx\u2026'
    """
    out = []
    for col in columns:
        text = "" if row.get(col) is None else str(row[col])
        out.append((col, text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "\u2026"))
    return out


class Salts:
    """Figure hash salts unique within one page: ``salts("confusion")`` gives ``"confusion-0"``, ..."""

    def __init__(self):
        self._n = itertools.count()

    def __call__(self, name):
        return f"{name}-{next(self._n)}"


@dataclass
class Matrix:
    """A count matrix for a page: its heatmap and, for exact reading, its cells as an HTML table.

    The table carries ``data-kind`` and the ``attrs`` as ``data-*`` attributes and ``data-total``,
    so a reader (or a test) can find it and add its cells up.

    Attributes
    ----------
    title : str
    kind : str
        ``confusion``, ``agreement`` or ``corrections``.
    counts : ndarray of shape (n_rows, n_cols), int
    row_labels, col_labels : list of str
    row_title, col_title : str
    attrs : dict
        Extra ``data-*`` attributes, e.g. ``{"method": "cotrain", "view": "clip_text_features"}``.
    svg : markupsafe.Markup
        The heatmap.
    """

    title: str
    kind: str
    counts: np.ndarray
    row_labels: list
    col_labels: list
    row_title: str
    col_title: str
    attrs: dict
    svg: Markup

    @classmethod
    def build(cls, counts, row_labels, col_labels, *, title, kind, row_title, col_title, salts,
              attrs=None, drop_empty_rows=(), shade="row"):
        """Draw the heatmap (see :func:`heatmap_svg` for ``shade``); ``drop_empty_rows`` are row indices
        left out of the figure when all zero."""
        counts = np.asarray(counts, dtype=np.int64)
        keep = [i for i in range(counts.shape[0]) if i not in drop_empty_rows or counts[i].any()]
        svg = heatmap_svg(counts[keep], [row_labels[i] for i in keep], col_labels,
                          row_title=row_title, col_title=col_title, salt=salts(kind), shade=shade)
        return cls(title, kind, counts, list(row_labels), list(col_labels), row_title, col_title,
                   dict(attrs or {}), svg)

    @property
    def total(self):
        return int(self.counts.sum())

    def rows(self):
        """``(label, [count, ...])`` per row, for the table."""
        return [(label, row.tolist()) for label, row in zip(self.row_labels, self.counts)]
