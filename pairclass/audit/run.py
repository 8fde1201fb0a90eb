"""Audit the labels of an embedding source (a parquet file, a folder of part files or a glob)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ..classes import load_class_embeddings
from ..errors import input_error
from ..io import DEFAULT_ID_COL, ParquetSource, check_outputs, write_table
from .features import DIMS, read_items
from .issues import DEFAULT_SIGNALS, find_issues
from .reasons import reasons
from .result import AuditResult
from .zero_shot import zero_shot_scores

__all__ = ["MIN_ITEMS", "audit_arrays", "run_audit"]

# Fewer labelled items than this cannot be cross-validated meaningfully.
MIN_ITEMS = 10


def run_audit(embeddings, classes, *, label_col, views=None, id_col=DEFAULT_ID_COL, label_level=None, keep_cols=(),
              zero_shot=False, signals=DEFAULT_SIGNALS, rounds=2, folds=5, neighbours=10, dims=DIMS,
              rank_by="self_confidence", k=100, min_count=10, seed=0, out=None, report=None, image_col=None,
              image_root=None, engine=None, progress=None):
    """Audit the catalogue labels of an embedding source.

    Parameters
    ----------
    embeddings : path-like or str
        SQID-layout parquet with a label column: a file, a folder of part files, or a glob.
    classes : path-like
        Class file; every label must be one of its names.
    label_col : str
    views : sequence of str, optional
    id_col : str
    label_level : int, optional
        For list-valued labels (category paths).
    keep_cols : sequence of str
        Columns copied into the issues table (titles, image paths).
    zero_shot : bool
        Use only the zero-shot evidence (the pairwise margins against the class embeddings), not the
        given labels: the audit as it was before it learned from the labels.
    signals, rounds, folds, neighbours, rank_by, seed
        See :func:`~pairclass.audit.issues.find_issues`.
    dims : int
        Principal components the classifier and the neighbours work on.
    k, min_count
        The zero-shot evidence's :class:`~pairclass.classify.PairwiseClassifier` settings.
    out : path-like, optional
        Write the issues table here atomically (parquet, or CSV for ``.csv``).
    report : path-like, optional
        Write the HTML audit page here.
    image_col : str, optional
        A column of image paths to show as thumbnails in the report (carried into the issues table too).
    image_root : path-like, optional
        The folder relative image paths start from. Default: the first input file's folder.
    engine : LocalEngine or RayEngine, optional
        Runs the source's two scans (the PCA sample, the projection); the neighbours, the
        cross-validation and cleanlab run here, on the projected arrays. Default: local threads.
    progress : callable, optional
        ``progress(message)`` before each slow step.

    Returns
    -------
    AuditResult

    Raises
    ------
    InputError
        Missing label column, labels not among the classes, a single label, a class with one item,
        fewer than ``MIN_ITEMS`` labelled items; ``out`` or ``report`` naming an input.
    """
    step = progress or (lambda message: None)
    if not label_col:
        raise input_error("a label column is required for the audit (--label-col)", path=embeddings)
    keep_cols = list(keep_cols) + ([image_col] if image_col and image_col not in keep_cols else [])
    source = ParquetSource(embeddings, views, id_col=id_col, label_col=label_col, label_level=label_level,
                           keep_cols=keep_cols)
    where = source.files[0] if len(source.files) == 1 else source.path
    taken = [c for c in keep_cols if c in (source.id_col, label_col, *source.views)]
    if taken:
        raise input_error("is already the id, label or an embedding column; keep other columns (titles, "
                          "image paths)", path=where, column=taken[0])
    cls = load_class_embeddings(classes, source.dim, against=f"{where}: {source.views[0]}",
                                metadata=source.metadata, progress=step)
    check_outputs([*source.files, cls.path], out=out, report=report)
    signals = ("zero-shot",) if zero_shot else tuple(signals)
    step(f"reading {source.n_rows:,} items")
    items = read_items(source, dims=dims, seed=seed, keep_raw="zero-shot" in signals, engine=engine)
    y = label_indices(items.labels, list(cls.names), path=where, column=label_col)
    result = audit_arrays(
        items.features, y, list(cls.names), raw=items.raw, class_embeddings=cls.embeddings, ids=items.ids,
        extra=items.extra, id_col=source.id_col, signals=signals, rounds=1 if zero_shot else rounds, folds=folds,
        neighbours=neighbours, rank_by=rank_by, k=k, min_count=min_count, seed=seed, progress=step,
    )
    result.n_unlabelled = items.n_unlabelled
    if out is not None:
        step(f"writing {out}")
        write_table(result.items, Path(out))
    if report is not None:
        from ..report import write_audit_report

        step(f"writing {report}")
        write_audit_report(result.report(embeddings, image_col=image_col,
                                           image_root=image_root or source.files[0].parent), report)
    return result


def label_indices(labels, names, *, path=None, column=None):
    """Labels to class indices, checking that the audit can run on them."""
    if labels.size < MIN_ITEMS:
        raise input_error(f"{labels.size} labelled item(s); the audit needs at least {MIN_ITEMS}",
                          path=path, column=column)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise input_error(f"{len(unknown)} label(s) are not among the classes, e.g. {unknown[0]!r}",
                          path=path, column=column)
    y = np.array([index[v] for v in labels], dtype=np.int64)
    counts = np.bincount(y, minlength=len(names))
    present = np.flatnonzero(counts)
    if present.size < 2:
        raise input_error(f"all items carry the single label {names[present[0]]!r}; the audit needs at least "
                          "2 classes", path=path, column=column)
    single = np.flatnonzero(counts == 1)
    if single.size:
        raise input_error(f"{single.size} class(es) have a single item, e.g. {names[single[0]]!r}; the audit "
                          "needs at least 2 items per class it checks", path=path, column=column)
    return y


def audit_arrays(features, labels, classes, *, raw=None, class_embeddings=None, ids=None, extra=None,
                 id_col=DEFAULT_ID_COL, signals=DEFAULT_SIGNALS, rounds=2, folds=5, neighbours=10,
                 rank_by="self_confidence", k=100, min_count=10, seed=0, progress=None):
    """The audit of items in memory: :func:`find_issues` and the issues table.

    Parameters
    ----------
    features : dict
        ``{view: (n_items, n_features)}``, e.g. :func:`~pairclass.audit.features.project`'s.
    labels : ndarray of shape (n_items,)
        Class indices.
    classes : list of str
    raw, class_embeddings
        ``{view: (n_items, D)}`` embeddings and the (n_classes, D) class embeddings, for the
        zero-shot signal.
    ids : ndarray of shape (n_items,), optional
        Default ``0..n_items-1`` as strings.
    extra : pyarrow.Table, optional
        Columns appended to the issues table.

    Returns
    -------
    AuditResult
    """
    step = progress or (lambda message: None)
    n = labels.size
    ids = np.arange(n).astype(str).astype(object) if ids is None else ids
    scores = None
    if "zero-shot" in signals:
        step("zero-shot evidence: pairwise classifiers per view")
        scores = zero_shot_scores(raw, class_embeddings, labels, k=k, min_count=min_count, seed=seed)
    step(f"auditing {n:,} labels over {len(features)} view(s): {', '.join(signals)}")
    found = find_issues(features, labels, len(classes), zero_shot=scores, signals=signals, rounds=rounds,
                        folds=folds, neighbours=neighbours, rank_by=rank_by, seed=seed)
    names = np.asarray(classes, dtype=object)
    flagged = np.flatnonzero(found.is_issue)
    why = np.full(n, "", dtype=object)
    why[flagged] = reasons(found.evidence, flagged, labels[flagged], found.suggested[flagged], names)
    columns = {
        id_col: pa.array(ids.tolist(), pa.string()),
        "given_label": pa.array(names[labels].tolist(), pa.string()),
        "suggested_label": pa.array(names[found.suggested].tolist(), pa.string()),
        "label_score": pa.array(found.quality, pa.float64()),
        "is_label_issue": pa.array(found.is_issue),
        "rank": pa.array(found.rank),
        "reasons": pa.array(why.tolist(), pa.string()),
    }
    keep = []
    if extra is not None:
        keep = [c for c in extra.column_names if c not in columns]
        columns.update({c: extra[c] for c in keep})
    corrections = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(corrections, (labels[flagged], found.suggested[flagged]), 1)
    return AuditResult(
        n_items=n, n_unlabelled=0, views=list(features), classes=list(classes),
        evidence="zero-shot" if tuple(signals) == ("zero-shot",) else "labels", weights=found.weights,
        items=pa.table(columns), noise_rate=found.noise_rate, corrections=corrections, id_col=id_col,
        keep_cols=keep,
    )
