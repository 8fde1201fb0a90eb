"""The plain data a report page is rendered from.

The pipeline that fills these objects samples for the page: ``examples`` and ``suspects`` hold a few
hundred rows at most and the matrices are class by class, so a run over ten million items still makes
a small page.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["EXAMPLES_PER_SIDE", "AuditReport", "ClassifyReport"]

# Examples per class a classify page shows on each side: the most and the least confident.
EXAMPLES_PER_SIDE = 3


@dataclass
class ClassifyReport:
    """What the classify page shows.

    Attributes
    ----------
    source : str
        What was classified (a path or a glob), shown in the title.
    n_items : int
    classes : list of str
        The C class names.
    views : list of str
        One or two embedding column names.
    methods : dict
        ``{method: {"agreement_f1": float or None, "accuracy": {view: float}, "f1": {view: float}}}``;
        ``accuracy`` and ``f1`` only with labels. A ``"default"`` entry beside ``default_method`` (as
        :class:`pairclass.run.ClassifyResult` has) is not shown twice.
    default_method : str
    label_confusion : dict
        ``{(method, view): ndarray of shape (C + 1, C)}`` counts: rows are the catalogue label (the last
        row counts labels not among the classes), columns the predicted class. Empty without labels.
        The page draws the default method's and the baseline's.
    view_agreement : dict
        ``{method: ndarray of shape (C, C)}`` counts: rows are ``views[0]``'s prediction, columns
        ``views[1]``'s. Empty with one view. The page draws the default method's and the baseline's.
    predicted_counts : dict
        ``{(method, view): ndarray of shape (C,)}`` items predicted per class.
    label_counts : ndarray of shape (C,) or None
        Labelled items per class; None without labels.
    per_class : list of dict
        ``[{"class": name, "support": int, "f1": {"method/view": float}}]``; empty without labels.
    n_pairs : int
        Class pairs.
    fallback_pairs : dict
        ``{method: {view: int}}`` pairs that fell back to the full cosine.
    pair_dims : list of dict
        A few class pairs: ``{"a": name, "b": name, "view": v, "ratio": ndarray of shape (D,), "dims":
        list of int}``, the cross ratio per dimension and the dimensions kept.
    examples : pyarrow.Table
        Sampled item rows: ``id_col``, ``label_col`` (optional), per view and method
        ``f"{view}__{method}__pred"`` and ``f"{view}__{method}__confidence"`` (joint methods:
        ``f"{method}__pred"`` and ``f"{method}__confidence"``), the ``text_cols`` and ``image_col``.
    id_col : str
    label_col : str or None
    text_cols : list of str
    image_col : str or None
        Local image paths, relative to ``image_root`` unless absolute.
    image_root : str or None
    warnings : list of str
    """

    source: str
    n_items: int
    classes: list
    views: list
    methods: dict
    default_method: str
    label_confusion: dict
    view_agreement: dict
    predicted_counts: dict
    label_counts: np.ndarray | None
    per_class: list
    n_pairs: int
    fallback_pairs: dict
    pair_dims: list
    examples: pa.Table
    id_col: str
    label_col: str | None
    text_cols: list
    image_col: str | None
    image_root: str | None
    warnings: list


@dataclass
class AuditReport:
    """What the audit page shows.

    Attributes
    ----------
    source : str
    n_items : int
    n_flagged : int
    classes : list of str
    suspects : pyarrow.Table
        The head of the ranking of flagged items, most suspect first (a few hundred rows at most):
        ``id_col``, ``given_label``, ``suggested_label``, ``label_score`` in [0, 1] (lower is more
        suspect), ``reasons`` (str), the ``text_cols`` and ``image_col``.
    id_col : str
    text_cols : list of str
    image_col : str or None
        Local image paths, relative to ``image_root`` unless absolute.
    image_root : str or None
    noise_rate : dict
        ``{class: estimated share of that class's items whose label is wrong}``.
    corrections : ndarray of shape (C, C)
        Counts over the flagged items: rows are the given label, columns the suggested label.
    """

    source: str
    n_items: int
    n_flagged: int
    classes: list
    suspects: pa.Table
    id_col: str
    text_cols: list
    image_col: str | None
    image_root: str | None
    noise_rate: dict
    corrections: np.ndarray
