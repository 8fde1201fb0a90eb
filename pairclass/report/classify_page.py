"""The classify report: one self-contained HTML page from a :class:`ClassifyReport`."""

from __future__ import annotations

import numpy as np

from .blocks import Matrix, Salts, text_fields
from .data import EXAMPLES_PER_SIDE
from .figures import COLORS, bars_svg, dims_svg, short_label
from .render import write_page
from .thumbnails import Thumbnails

__all__ = ["write_classify_report"]

BASELINE = "baseline"
OTHER_LABELS = "(labels not among the classes)"
LABELS_SERIES = "catalogue labels"
LABELS_COLOR = "#9AA4AE"
MAX_EXAMPLE_CLASSES = 24
MAX_PAIRS = 12


def write_classify_report(report, path):
    """Write the classify page of ``report`` to ``path`` atomically.

    Parameters
    ----------
    report : ClassifyReport
    path : path-like

    Returns
    -------
    path
    """
    salts = Salts()
    thumbs = Thumbnails(report.image_root)
    compared = _unique([report.default_method, BASELINE])
    colors = {LABELS_SERIES: LABELS_COLOR,
              **{m: COLORS[i % len(COLORS)] for i, m in enumerate(_methods(report))}}
    examples = _examples(report, thumbs)
    return write_page(
        "classify.html", path,
        report=report,
        summary=_summary(report),
        has_labels=report.label_counts is not None or bool(report.label_confusion),
        confusion=_confusion(report, compared, salts),
        agreement=_agreement(report, compared, salts),
        f1=_per_class_f1(report, salts, colors),
        distribution=_distribution(report, compared, salts, colors),
        examples=examples,
        pairs=_pairs(report, salts),
        failed_images=len(thumbs.failed),
    )


def _unique(items):
    return list(dict.fromkeys(items))


def _methods(report):
    """The method names in report order, without a ``"default"`` alias."""
    return [m for m in report.methods if not (m == "default" and report.default_method in report.methods)]


def _summary(report):
    rows = []
    for method in _methods(report):
        entry = report.methods[method]
        rows.append({
            "method": method,
            "default": method == report.default_method,
            "agreement": entry.get("agreement_f1"),
            "accuracy": [entry.get("accuracy", {}).get(v) for v in report.views],
            "f1": [entry.get("f1", {}).get(v) for v in report.views],
        })
    return rows


def _confusion(report, methods, salts):
    """Per view, the compared methods' confusion against the labels."""
    by_view = {}
    for (method, view), counts in report.label_confusion.items():
        if method in methods:
            by_view.setdefault(view, []).append(Matrix.build(
                counts, [*report.classes, OTHER_LABELS], report.classes,
                title=f"{method} on {view}", kind="confusion", row_title="catalogue label",
                col_title="predicted class", salts=salts, attrs={"method": method, "view": view},
                drop_empty_rows=(len(report.classes),),
            ))
    for matrices in by_view.values():
        matrices.sort(key=lambda m: methods.index(m.attrs["method"]))
    return by_view


def _agreement(report, methods, salts):
    if len(report.views) < 2:
        return []
    first, second = report.views[:2]
    return [
        Matrix.build(report.view_agreement[m], report.classes, report.classes, title=m, kind="agreement",
                     row_title=f"{first} predicts", col_title=f"{second} predicts", salts=salts,
                     attrs={"method": m})
        for m in methods if m in report.view_agreement
    ]


def _per_class_f1(report, salts, colors):
    """Per view, the F1 bars of every method, and the rows of the full table."""
    if not report.per_class:
        return None
    keys = _unique(k for row in report.per_class for k in row["f1"])
    labels = [f"{short_label(row['class'])} ({row['support']})" for row in report.per_class]
    figures = []
    for view in _unique(k.split("/", 1)[1] for k in keys):
        series = {k.split("/", 1)[0]: np.array([row["f1"].get(k, 0.0) for row in report.per_class])
                  for k in keys if k.split("/", 1)[1] == view}
        figures.append((view, bars_svg(labels, series, xlabel="F1 against the catalogue label",
                                       xlim=(0, 1), colors=colors, salt=salts("f1"))))
    return {"figures": figures, "series": keys, "rows": report.per_class}


def _distribution(report, methods, salts, colors):
    """Per view, items per class: the labels beside the compared methods' predictions."""
    views = _unique(v for _, v in report.predicted_counts)
    out = []
    for view in views:
        series = {} if report.label_counts is None else {LABELS_SERIES: np.asarray(report.label_counts)}
        series.update({m: np.asarray(report.predicted_counts[(m, view)])
                       for m in _methods(report) if m in methods and (m, view) in report.predicted_counts})
        out.append((view, bars_svg([short_label(c) for c in report.classes], series, xlabel="items",
                                   colors=colors, salt=salts("distribution"))))
    table = {f"{m} / {v}": np.asarray(c).tolist() for (m, v), c in report.predicted_counts.items()}
    labels = None if report.label_counts is None else np.asarray(report.label_counts).tolist()
    return {"figures": out, "table": table, "labels": labels}


def _column(names, view, method, what):
    for name in (f"{view}__{method}__{what}", f"{method}__{what}"):
        if name in names:
            return name
    return None


def _shown_predictions(names, views, method):
    """``[(caption, pred column, confidence column)]`` of ``method`` per view; a joint method's once."""
    shown = {}
    for v in views:
        pred, conf = _column(names, v, method, "pred"), _column(names, v, method, "confidence")
        if pred is not None and conf is not None and pred not in shown:
            shown[pred] = (v if pred.startswith(f"{v}__") else method, pred, conf)
    return list(shown.values())


def _examples(report, thumbs):
    """Per class (the largest few when there are many), the most and the least confident examples.

    Classes come from the default method's prediction on the first view; each example shows every
    view's prediction. Rows without a confidence are left out.
    """
    method, view = report.default_method, report.views[0]
    shown = _shown_predictions(report.examples.column_names, report.views, method)
    if not shown:
        return None
    caption, pred, conf = shown[0]
    rows = report.examples.to_pylist()
    by_class = {}
    for row in rows:
        if row[conf] is not None:
            by_class.setdefault(row[pred], []).append(row)
    size = report.label_counts if report.label_counts is not None else report.predicted_counts.get((method, view))
    classes = list(report.classes)
    if len(classes) > MAX_EXAMPLE_CLASSES and size is not None:
        order = np.argsort(-np.asarray(size), kind="stable")[:MAX_EXAMPLE_CLASSES]
        classes = [classes[i] for i in order]
    groups = []
    for name in classes[:MAX_EXAMPLE_CLASSES]:
        items = sorted(by_class.get(name, []), key=lambda r: -r[conf])
        confident = items[:EXAMPLES_PER_SIDE]
        boundary = sorted(items[EXAMPLES_PER_SIDE:], key=lambda r: r[conf])[:EXAMPLES_PER_SIDE]
        groups.append({
            "name": name,
            "n": len(items),
            "confident": [_card(report, r, shown, thumbs) for r in confident],
            "boundary": [_card(report, r, shown, thumbs) for r in boundary],
        })
    return {"method": method, "view": caption, "n_rows": len(rows), "groups": groups,
            "n_classes": len(report.classes)}


def _card(report, row, shown, thumbs):
    return {
        "id": row[report.id_col],
        "label": row.get(report.label_col) if report.label_col else None,
        "preds": [(caption, row[c], row[k]) for caption, c, k in shown],
        "texts": text_fields(row, report.text_cols),
        "thumb": thumbs(row.get(report.image_col)) if report.image_col else None,
    }


def _pairs(report, salts):
    pairs = report.pair_dims[:MAX_PAIRS]
    fallback = [(m, [by_view.get(v) for v in report.views]) for m, by_view in report.fallback_pairs.items()]
    return {
        "fallback": fallback,
        "figure": dims_svg(pairs, salt=salts("pairs")) if pairs else None,
        "pairs": [{**p, "n_dims": len(p["ratio"]), "n_kept": len(p["dims"])} for p in pairs],
    }
