"""A classify run's :class:`~pairclass.pipeline.Outcome` as the data of its report page."""

from __future__ import annotations

import numpy as np

from ..classify import pair_index
from ..crossvar import cross_ratio_from_stats
from ..methods import DEFAULT_METHOD
from .data import ClassifyReport

__all__ = ["classify_report"]

# Class pairs whose kept dimensions the page shows: the most confused ones.
PAIRS_SHOWN = 6


def classify_report(outcome, *, source, id_col, label_col=None, text_cols=(), image_col=None, image_root=None):
    """The :class:`ClassifyReport` of a run made with ``examples`` (see :func:`pairclass.pipeline.classify`)."""
    names = [m for m in outcome.methods if m != "default"]
    default = DEFAULT_METHOD if DEFAULT_METHOD in names else names[-1]
    label_confusion = {key: c.counts for key, c in outcome.label_confusion.items()}
    label_counts = None
    if label_confusion:
        counts = next(iter(label_confusion.values()))
        label_counts = counts[: len(outcome.classes)].sum(axis=1)
    examples = outcome.examples
    if examples is not None:
        examples = examples.drop_columns([c for c in examples.column_names if c.startswith("__")])
    return ClassifyReport(
        source=str(source), n_items=outcome.n_items, classes=list(outcome.classes), views=list(outcome.views),
        methods=outcome.methods, default_method=default, label_confusion=label_confusion,
        # The page's agreement rows are the first view's predictions; the metric's reference is the second.
        view_agreement={m: c.counts.T for m, c in outcome.view_agreement.items()},
        predicted_counts=outcome.predicted_counts, label_counts=label_counts, per_class=outcome.per_class,
        n_pairs=outcome.diagnostics["n_pairs"], fallback_pairs=outcome.diagnostics["fallback_pairs"],
        pair_dims=_pair_dims(outcome, default), examples=examples, id_col=id_col, label_col=label_col,
        text_cols=list(text_cols), image_col=image_col, image_root=None if image_root is None else str(image_root),
        warnings=list(outcome.warnings),
    )


def _pair_dims(outcome, method):
    """For the default method's classifier on the first view, the most confused class pairs (by the
    labels, else by the other view), with every dimension's cross ratio and the dimensions kept."""
    view = outcome.views[0]
    clf = outcome.classifiers.get((method, view)) or outcome.classifiers.get((method, "joint"))
    if clf is None:
        return []
    C = len(outcome.classes)
    confusion = outcome.label_confusion.get((method, view)) or outcome.view_agreement.get(method)
    if confusion is not None:
        counts = confusion.counts[:C, :C]
        mixed = counts + counts.T
    else:
        mixed = np.ones((C, C))
    a, b = np.triu_indices(C, 1)
    order = np.lexsort((np.arange(a.size), -mixed[a, b]))
    pairs = []
    for i in order:
        p = pair_index(a[i], b[i], C)
        if clf.fallback_pairs_[p]:
            continue
        n_a, s_a, ss_a = clf._side_stats(a[i:i + 1], b[i:i + 1])
        n_b, s_b, ss_b = clf._side_stats(b[i:i + 1], a[i:i + 1])
        ratio = cross_ratio_from_stats(n_a, s_a, ss_a, n_b, s_b, ss_b)[0]
        pairs.append({"a": outcome.classes[a[i]], "b": outcome.classes[b[i]], "view": view,
                      "ratio": np.where(np.isfinite(ratio), ratio, np.nan), "dims": clf.pair_dims_[p].tolist()})
        if len(pairs) == PAIRS_SHOWN:
            break
    return pairs
