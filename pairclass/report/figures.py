"""Report figures as inline SVG markup, drawn with matplotlib (no pyplot, no global state).

Text stays text (``svg.fonttype='none'``) and matrices are one embedded PNG each
(``interpolation='none'``), which keeps a 50-class figure small. Each figure gets its own hash salt so
the ids of its clip paths never collide with another figure's on the same page.
"""

from __future__ import annotations

import functools
import io
import re

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from markupsafe import Markup

__all__ = ["COLORS", "bars_svg", "dims_svg", "heatmap_svg", "short_label"]

# Above this many classes a matrix cell is too small for its count; the colour says it alone.
ANNOTATE_MAX = 20
LABEL_CHARS = 28
# Series colours, colour-blind safe (Okabe-Ito).
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
# Class names are data: a "$" must not start mathtext. Text stays text, with a short font list.
STYLE = {"svg.fonttype": "none", "text.parse_math": False, "font.family": "sans-serif",
         "font.sans-serif": ["DejaVu Sans", "Arial"]}


def _styled(draw):
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def short_label(label):
    """``label`` cut to ``LABEL_CHARS`` characters for an axis; tables carry the full text."""
    label = str(label)
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"


def _tick_size(n):
    return 9 if n <= 15 else 7 if n <= 30 else 5.5


def _svg(fig, salt):
    """The figure as an ``<svg>`` element for an HTML page: no XML prolog, DOCTYPE or namespaces."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata=_NO_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    head, rest = text.split(">", 1)
    head = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", head)
    return Markup(f'{head} role="img">{rest}')


@_styled
def heatmap_svg(counts, row_labels, col_labels, *, row_title, col_title, salt, shade="row"):
    """A count matrix, coloured by share and annotated with the counts while they fit.

    Parameters
    ----------
    counts : ndarray of shape (n_rows, n_cols)
    row_labels, col_labels : sequence of str
    row_title, col_title : str
        Axis titles.
    salt : str
        Unique on the page.
    shade : {"row", "max"}, default="row"
        Colour by the cell's share of its row (a confusion matrix, whatever the class sizes) or of the
        largest cell (where the count itself matters).

    Returns
    -------
    markupsafe.Markup
        The ``<svg>`` element.
    """
    counts = np.asarray(counts)
    n_rows, n_cols = counts.shape
    totals = counts.sum(axis=1, keepdims=True) if shade == "row" else np.full((1, 1), counts.max(initial=0))
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    cell = 0.42 if max(n_rows, n_cols) <= ANNOTATE_MAX else 0.19
    fig = Figure(figsize=(max(3.0, 1.6 + cell * n_cols), max(2.5, 1.2 + cell * n_rows)))
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="none", aspect="auto")
    size = _tick_size(max(n_rows, n_cols))
    ax.set_xticks(range(n_cols), [short_label(c) for c in col_labels], rotation=60, ha="right",
                  rotation_mode="anchor", fontsize=size)
    ax.set_yticks(range(n_rows), [short_label(r) for r in row_labels], fontsize=size)
    ax.set_xlabel(col_title, fontsize=9)
    ax.set_ylabel(row_title, fontsize=9)
    ax.tick_params(length=0)
    if max(n_rows, n_cols) <= ANNOTATE_MAX:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.55 else "black")
    return _svg(fig, salt)


@_styled
def bars_svg(categories, series, *, xlabel, salt, xlim=None, colors=None):
    """Horizontal bars per category, one bar per series side by side.

    Parameters
    ----------
    categories : sequence of str
        One row each, top to bottom, drawn as given (see :func:`short_label`).
    series : dict
        ``{name: ndarray of shape (n_categories,)}``, in legend order.
    xlabel : str
    salt : str
    xlim : tuple of float, optional
    colors : dict, optional
        ``{name: colour}``, so a series keeps its colour from figure to figure; others take
        :data:`COLORS` in turn.

    Returns
    -------
    markupsafe.Markup
    """
    n, m = len(categories), len(series)
    row = 0.16 + 0.1 * m
    fig = Figure(figsize=(4.3, max(2.0, 0.9 + row * n)))
    ax = fig.add_subplot()
    height = 0.8 / m
    y = np.arange(n)
    for k, (name, values) in enumerate(series.items()):
        ax.barh(y - 0.4 + height * (k + 0.5), values, height=height, label=name,
                color=(colors or {}).get(name, COLORS[k % len(COLORS)]))
    ax.set_yticks(y, list(categories), fontsize=_tick_size(n))
    ax.set_ylim(n - 0.5, -0.5)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if m > 1:
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=min(m, 4), frameon=False)
    return _svg(fig, salt)


@_styled
def dims_svg(pairs, *, salt):
    """The cross ratio per embedding dimension, one strip per class pair, the dimensions not kept veiled.

    Parameters
    ----------
    pairs : list of dict
        ``{"a", "b", "view", "ratio": ndarray of shape (D,), "dims": list of int}``.
    salt : str

    Returns
    -------
    markupsafe.Markup
    """
    ratio = np.vstack([np.asarray(p["ratio"], dtype=float) for p in pairs])
    veil = np.ones(ratio.shape + (4,))
    veil[..., 3] = 0.8
    for i, p in enumerate(pairs):
        veil[i, p["dims"], 3] = 0.0
    fig = Figure(figsize=(7.5, 0.8 + 0.32 * len(pairs)))
    ax = fig.add_subplot()
    image = ax.imshow(ratio, cmap="viridis", interpolation="none", aspect="auto")
    ax.imshow(veil, interpolation="none", aspect="auto")
    ax.set_yticks(range(len(pairs)),
                  [f"{short_label(p['a'])} vs {short_label(p['b'])} ({p['view']})" for p in pairs], fontsize=7)
    ax.set_xlabel("embedding dimension (kept ones in full colour, the others veiled)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    bar.set_label("cross ratio", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    return _svg(fig, salt)
