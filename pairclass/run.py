"""``run_classify``: the file-level entry point behind ``pairclass classify``.

It opens the source (a parquet file, a folder of them, or a glob), reads the classes, opens the
sink, and hands them to :func:`pairclass.pipeline.classify` with the estimator that carries the
settings.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pyarrow as pa

from .classes import load_class_embeddings
from .classify import PairwiseClassifier
from .errors import InputError
from .io import (
    DEFAULT_BATCH_ROWS, DEFAULT_ID_COL, MemorySink, ParquetSource, check_outputs, exclusive, open_sink,
    remove_leftovers,
)
from .methods import DEFAULT_METHOD
from .pipeline import LogProgress, Outcome, classify
from .report.data import EXAMPLES_PER_SIDE

__all__ = ["ClassifyResult", "run_classify"]


@dataclass
class ClassifyResult(Outcome):
    """What ``run_classify`` measured: the run's :class:`~pairclass.pipeline.Outcome`, and the
    predictions when they are kept in memory.

    Attributes
    ----------
    predictions : pyarrow.Table or None
        One row per item, when kept in memory (no ``out``).
    """

    predictions: pa.Table | None = None


def run_classify(
    embeddings,
    classes,
    *,
    estimator=None,
    views=None,
    id_col=DEFAULT_ID_COL,
    label_col=None,
    label_level=None,
    labels=None,
    keep_cols=(),
    methods=(DEFAULT_METHOD,),
    proto_prior="auto",
    center="none",
    encoder=None,
    out=None,
    keep_predictions=None,
    batch_rows=DEFAULT_BATCH_ROWS,
    cache=True,
    cache_dir=None,
    engine=None,
    progress=None,
    report=None,
    image_col=None,
    image_root=None,
):
    """Classify every item of an embedding file (or folder, or glob), per view and method, and score.

    Parameters
    ----------
    embeddings : path-like or str
        SQID-layout parquet: a file, a folder of part files, or a glob.
    classes : path-like
        Class file (see :func:`pairclass.io.read_classes`). Without embeddings, the names are
        embedded with the model recorded in ``embeddings`` by ``pairclass embed``.
    estimator : PairwiseClassifier, optional
        The settings (``k``, ``min_count``, ``match``...) of every pairwise classifier the methods
        make; default ``PairwiseClassifier()``.
    views : sequence of str, optional
        Embedding columns (one or two; agreement needs two). Default: the file's recorded views, or
        the SQID pair.
    label_col : str, optional
        Catalogue labels: adds accuracy, weighted F1 and a per-class table (null labels are left out).
    label_level : int, optional
        For list-valued labels (category paths), the level to use.
    labels : path-like, optional
        Read ``label_col`` from this parquet or CSV file, joined on the id column, instead of from
        the embeddings.
    keep_cols : sequence of str
        Columns copied into the predictions (titles, image paths).
    methods : sequence of str, default=(DEFAULT_METHOD,)
        Methods from :data:`pairclass.methods.METHODS`, or ``"all"``; the baseline always runs, and
        the default method is reported a second time under ``"default"``.
    proto_prior, center
        See :func:`pairclass.pipeline.classify`.
    encoder : path-like, optional
        A metric-learning head from ``pairclass train``: adds ``baseline+encoder`` and
        ``pairwise+encoder``.
    out : path-like, optional
        Write the predictions: ``FILE.parquet`` (or ``.csv``), or a folder of part files for
        ``DIR/`` or a name without a suffix. Atomic: a failed run leaves the old output.
    keep_predictions : bool, optional
        Return the predictions as a table (default: when there is no ``out``).
    batch_rows : int
        The most rows read at a time.
    cache, cache_dir
        The local view cache of multi-scan runs (see :func:`pairclass.pipeline.classify`).
    engine : LocalEngine, optional
    progress : LogProgress-like, optional
    report : path-like, optional
        Also write an HTML page: summary, confusion and agreement matrices, per-class F1, examples
        (their ``keep_cols`` as text), kept dimensions (see :mod:`pairclass.report`).
    image_col : str, optional
        A column of image paths to show as thumbnails in the report (carried into the output too).
    image_root : path-like, optional
        Folder of relative image paths (default: the embeddings' folder).

    Returns
    -------
    ClassifyResult
    """
    estimator = PairwiseClassifier() if estimator is None else estimator
    carried = list(keep_cols) + ([image_col] if image_col and image_col not in keep_cols else [])
    source = ParquetSource(embeddings, views, id_col=id_col, label_col=label_col, label_level=label_level,
                           keep_cols=carried, batch_rows=batch_rows, labels=labels)
    if len(source.views) > 2:
        raise InputError(f"at most two views can be compared, got {len(source.views)}: {', '.join(source.views)}")
    progress = progress or LogProgress()
    cls = load_class_embeddings(classes, source.dim, against=f"{source.path}: {source.views[0]}",
                                metadata=source.metadata, progress=progress.note)
    check_outputs([*source.files, cls.path], out=out, report=report)
    keep = out is None if keep_predictions is None else keep_predictions
    head = None
    if encoder is not None:
        from .dml import load_encoder

        head = load_encoder(encoder)
    with contextlib.ExitStack() as held:
        if out is not None:
            # One run at a time writes an output; what a killed one left beside it goes.
            held.enter_context(exclusive(out))
            remove_leftovers(out)
        sink = open_sink(out) if out is not None else MemorySink() if keep else None
        outcome = classify(source, estimator, cls.embeddings, cls.names, methods=methods, proto_prior=proto_prior,
                           center=center, encoder=head, sink=sink, engine=engine, cache=cache, cache_dir=cache_dir,
                           progress=progress, examples=EXAMPLES_PER_SIDE if report is not None else 0)
    if report is not None:
        from .report import write_classify_report
        from .report.build import classify_report

        page = classify_report(outcome, source=source.path, id_col=source.id_col, label_col=label_col,
                               text_cols=[c for c in keep_cols if c != image_col], image_col=image_col,
                               image_root=image_root or source.files[0].parent)
        write_classify_report(page, report)
    return ClassifyResult(**vars(outcome), predictions=sink.table if isinstance(sink, MemorySink) else None)
