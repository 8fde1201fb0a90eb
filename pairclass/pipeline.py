"""Run methods' plans over a source with an engine: scans, streamed metrics, a sink.

Data flows one way: source -> batches -> passes of mergeable statistics -> predictions -> metrics
and sink. All the methods asked for advance in lockstep, one scan per round of passes, so a run
reads the items as often as its longest plan needs (the baseline and the last pass of every method
share the final scan). The first scan of a run with several keeps the validated views in a local
cache (:class:`~pairclass.io.ViewCache`), so later scans skip the parquet decode.

Memory stays flat in the number of items: a scan holds a few batches, the plans hold class-sized
state, the metrics are confusion matrices, and the output streams to the sink. Duplicate ids are
found with 8 bytes per item (a hash).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .center import balanced_mean, baseline_sums, center_rows, centred_class_embeddings, check_center
from .classify import l2_normalize
from .errors import InputError
from .io import ViewCache
from .methods import DEFAULT_METHOD, METHODS, Context, Predict, resolve_methods
from .methods.prototypes import PROTO_PRIORS
from .metrics import Confusion, hollow_agreement

__all__ = ["Outcome", "LogProgress", "classify"]

log = logging.getLogger("pairclass")
# Disk left free beside the view cache.
_CACHE_MARGIN = 2 << 30


class LogProgress:
    """Progress as one log line per scan (``logging.getLogger("pairclass")``, level INFO)."""

    def start(self, label, total):
        self._label, self._t, self._done = label, time.perf_counter(), 0

    def advance(self, n):
        self._done += n

    def finish(self):
        seconds = time.perf_counter() - self._t
        log.info("%s: %s items in %.1f s (%s items/s)", self._label, f"{self._done:,}", seconds,
                 f"{self._done / max(seconds, 1e-9):,.0f}")

    def note(self, message):
        log.info("%s", message)


@dataclass
class Outcome:
    """What :func:`classify` measured.

    Attributes
    ----------
    n_items : int
    views : list of str
    classes : list of str
    methods : dict
        ``{name: {"agreement_f1": float or None, "accuracy": {view: x}, "f1": {view: x}}}``;
        accuracy and F1 only with labels. The default method appears again as ``"default"``.
    per_class : list of dict
        With labels: per class its support and F1 per ``"method/view"``.
    diagnostics : dict
        ``n_pairs``, ``fallback_pairs`` (per method and view), ``n_labelled``, ``n_unlabelled``,
        ``n_scans``.
    warnings : list of str
    label_confusion : dict
        ``{(method, view): Confusion}`` of labels (rows; the last row: labels not among the
        classes) against predictions; empty without labels.
    view_agreement : dict
        ``{method: Confusion}`` of the second view's predictions (rows) against the first's.
    predicted_counts : dict
        ``{(method, view): ndarray (n_classes,)}``.
    examples : pyarrow.Table or None
        With ``examples=k``: per class, the ``k`` most and ``k`` least confident output rows of the
        default method (or the last one asked for) on the first view.
    classifiers : dict
        ``{(method, input): PairwiseClassifier}`` that made each method's predictions.
    """

    n_items: int
    views: list
    classes: list
    methods: dict
    per_class: list = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    label_confusion: dict = field(default_factory=dict)
    view_agreement: dict = field(default_factory=dict)
    predicted_counts: dict = field(default_factory=dict)
    examples: pa.Table | None = None
    classifiers: dict = field(default_factory=dict)

    def to_json(self):
        """The summary as a JSON-ready dict."""
        return {"n_items": self.n_items, "views": list(self.views), "classes": list(self.classes),
                "methods": self.methods, "per_class": self.per_class, "diagnostics": self.diagnostics,
                "warnings": list(self.warnings)}


@dataclass
class _Space:
    """Where a group of plans classify: the class embeddings and how a batch's views are made."""

    suffix: str
    class_embeddings: np.ndarray
    transform: object = None

    def batch(self, batch):
        if self.transform is None:
            return batch
        return batch.with_views(self.suffix or "centred", self.transform)


@dataclass
class _Stage:
    name: str
    space: _Space
    plan: object
    request: object


@dataclass(frozen=True)
class _Hashes:
    """Item-id hashes, concatenated by ``+`` (8 bytes per item, for the duplicate check)."""

    parts: tuple

    def __add__(self, other):
        return _Hashes(self.parts + other.parts)


def _hash_ids(ids):
    import pandas as pd

    return pd.util.hash_array(ids.to_numpy(zero_copy_only=False))


def classify(source, estimator, class_embeddings, class_names, *, methods=(DEFAULT_METHOD,),
             proto_prior="auto", center="none", encoder=None, sink=None, engine=None, cache=True,
             cache_dir=None, progress=None, examples=0):
    """Classify every item of ``source`` with each method, per view, and score the predictions.

    Parameters
    ----------
    source : ParquetSource or ArraySource
    estimator : PairwiseClassifier
        Its parameters are the settings of every pairwise classifier the methods make.
    class_embeddings : ndarray of shape (n_classes, n_features)
    class_names : sequence of str
    methods : sequence of str
        Names from :data:`pairclass.methods.METHODS` (or ``"all"``); the baseline always runs.
    proto_prior : {"auto", "min-count", "class"}
        What a class embedding weighs in the prototype step of the methods built on ``proto``
        (``"auto"``: ``"class"`` with one view, ``"min-count"`` with two; see
        :func:`pairclass.methods.prototypes.resolve_prior`).
    center : {"none", "balanced"}
        ``"balanced"`` runs every method on balanced-centred items and centred class embeddings
        (one more scan, see :mod:`pairclass.center`).
    encoder : object with ``transform(X)``, optional
        A metric-learning head: ``baseline+encoder`` and ``pairwise+encoder`` classify through it
        (applied to the uncentred embeddings).
    sink : FileSink, DatasetSink or MemorySink, optional
        Where each item's row goes; committed only when the whole run succeeded.
    engine : LocalEngine or RayEngine, optional
        How the scans run (default: ``LocalEngine()``); see :mod:`pairclass.engines`.
    cache : bool
        Keep the first scan's views for the later scans (:class:`~pairclass.io.ViewCache`).
    cache_dir : path-like, optional
        Where the cache lives while the run lasts (default: the system's temporary folder).
    progress : LogProgress-like, optional
    examples : int
        Keep, per class, this many of the most and of the least confident rows (for a report).

    Returns
    -------
    Outcome
    """
    from .engines import LocalEngine

    names = list(class_names)
    check_center(center)
    if proto_prior not in PROTO_PRIORS:
        raise InputError(f"unknown prototype prior {proto_prior!r}; choose from {', '.join(PROTO_PRIORS)}")
    run = resolve_methods(methods)
    engine = engine or LocalEngine()
    _check_engine(run, engine, examples)
    _check_sizes(run, source)
    T = l2_normalize(np.asarray(class_embeddings, dtype=np.float64), name="class embeddings")
    if T.shape[1] != source.dim:
        raise InputError(f"class embeddings have dimension {T.shape[1]}, the items {source.dim}")
    if len(names) != T.shape[0]:
        raise InputError(f"{len(names)} class names for {T.shape[0]} class embeddings")
    progress = progress or LogProgress()
    views = list(source.views)
    base = _Space("", centred_class_embeddings(T) if center == "balanced" else T)
    spaces = [(base, run)]
    if encoder is not None:
        encoded = l2_normalize(np.asarray(encoder.transform(T.astype(np.float32)), dtype=np.float64))
        spaces.append((_Space("+encoder", encoded, lambda b: {v: encoder.transform(b.x(v)) for v in views}),
                       [m for m in run if m in ("baseline", "pairwise")]))
    stages = []
    for space, names_in in spaces:
        for method in names_in:
            plan = METHODS[method].plan(Context(estimator, space.class_embeddings, views, proto_prior=proto_prior))
            stages.append(_Stage(method + space.suffix, space, plan, _advance(plan, None)))

    # The cache costs a write of every view; it pays off from the third read on.
    longest = max(METHODS[m].scans for m in run) + (center == "balanced")
    scans = _Scans(source, engine, progress, cache and longest >= 3, cache_dir)
    try:
        if center == "balanced":
            stats = scans.run("balanced centring", lambda b: {v: baseline_sums(b.x(v), T, b.norms(v)) for v in views})
            means = {v: balanced_mean(stats[v], T.shape[0]) for v in views}
            base.transform = lambda b: {v: center_rows(b.x(v), means[v], b.norms(v), first_row=b.start)
                                        for v in views}
        while any(not isinstance(s.request, Predict) for s in stages):
            active = [s for s in stages if not isinstance(s.request, Predict)]
            label = " · ".join(dict.fromkeys(f"{s.name}: {s.request.label}" for s in active))
            # The map functions close over small state only (never the plans), so engines may ship them.
            maps = [(s.request.map, s.space) for s in active]
            results = scans.run(label, lambda b, maps=maps: tuple(f(space.batch(b)) for f, space in maps))
            for stage, result in zip(active, results):
                stage.request = _advance(stage.plan, result)
        outcome = _final_scan(scans, stages, source, views, names, sink, examples)
        if sink is not None:
            sink.commit()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        scans.close()
    outcome.diagnostics["n_scans"] = scans.count
    return outcome


def _advance(plan, result):
    """The plan's next request: a Pass, or its Predict once it has no more passes."""
    try:
        return next(plan) if result is None else plan.send(result)
    except StopIteration as done:
        return done.value


def _check_engine(run, engine, examples):
    """Engines whose batches do not know their rows' positions run the streaming methods only, and
    keep no report examples (which are ordered by row)."""
    if engine.row_positions:
        return
    gathering = [m for m in run if METHODS[m].max_items is not None]
    if gathering:
        raise InputError(f"{gathering[0]} holds every item in memory, which --engine {engine.name} does not do; use "
                         "a streaming method or --engine local")
    if examples:
        raise InputError(f"a report's examples are chosen by the rows' positions, which --engine {engine.name} does "
                         "not know; write the report with --engine local")


def _check_sizes(run, source):
    for method in run:
        limit = METHODS[method].max_items
        if limit is not None and source.n_rows > limit:
            streaming = ", ".join(m for m, spec in METHODS.items() if spec.max_items is None)
            raise InputError(f"{method} holds every item in memory and is limited to {limit:,} items; this source "
                             f"has {source.n_rows:,}; use a streaming method ({streaming})")


class _Scans:
    """The run's scans: the first reads the source (and fills the cache, the duplicate-id check);
    the later ones read the cache."""

    def __init__(self, source, engine, progress, cache, cache_dir):
        self.source, self.engine, self.progress = source, engine, progress
        self.use_cache = cache and engine.local_cache and bool(getattr(source, "files", None))
        self.cache_dir = cache_dir
        self.cache = None
        self.count = 0

    def run(self, label, fn, *, last=False, sink=None):
        """One scan of ``fn(batch)`` (statistics merged); ``last``: no scan follows, and ``fn``
        returns ``(stats, rows)``, the rows going to ``sink``."""
        self.count += 1
        first = self.count == 1
        source = self.source if first or self.cache is None else self.cache
        on_batch = None
        if first and self.use_cache and not last and self._cache_fits():
            self.cache = ViewCache(self.cache_dir)
            on_batch = self.cache.write

        def work(batch):
            out = fn(batch)
            stats, output = out if last else (out, None)
            return (stats, _Hashes((_hash_ids(batch.ids),)) if first else None), output

        self.progress.start(f"scan {self.count}: {label}", self.source.n_rows)
        stats, hashes = self.engine.scan(source, work, sink=sink, progress=self.progress, on_batch=on_batch)
        self.progress.finish()
        if first:
            if hashes is None:
                raise InputError(f"{self.source.path}: no rows")
            if self.cache is not None:
                self.cache.finish()
            self._check_unique(hashes)
        return stats

    def _cache_fits(self):
        """Whether the view cache fits on its disk, with a margin; if not, later scans re-read the files."""
        import shutil
        import tempfile

        need = self.source.n_rows * (4 * self.source.dim * len(self.source.views) + 64)
        where = self.cache_dir or tempfile.gettempdir()
        free = shutil.disk_usage(where if os.path.exists(where) else os.path.dirname(os.path.abspath(where))).free
        if need > free - _CACHE_MARGIN:
            self.progress.note(f"view cache: {need / 2**30:.1f} GiB needed, {free / 2**30:.1f} GiB free in {where}; "
                               "later scans re-read the files (--cache-dir chooses another disk)")
            return False
        return True

    def _check_unique(self, hashes):
        h = np.sort(np.concatenate(hashes.parts))
        dup = h[1:] == h[:-1]
        if dup.any():
            n = int(np.unique(h[1:][dup]).size)
            raise InputError(f"{self.source.path}: {self.source.id_col}: {n} duplicate id(s)")

    def close(self):
        if self.cache is not None:
            self.cache.close()


def _final_scan(scans, stages, source, views, names, sink, n_examples):
    C = len(names)
    shown = _example_column(stages, views)
    final_stage = next(s for s in stages if shown in (s.name, f"{views[0]}__{s.name}"))
    dictionary = pa.array(names, pa.string())
    id_col, label_col = source.id_col, source.label_col
    joint = {s.name: s.request.joint for s in stages}
    # What the map function needs of each stage (not its plan), so engines may ship it.
    final = [(s.name, s.request.map, s.space, s is final_stage) for s in stages]

    def predict(batch):
        columns = {id_col: batch.ids}
        codes = None
        stats = {}
        if label_col is not None:
            columns[label_col] = batch.labels
            codes, unknown = _label_codes(batch.labels, dictionary)
            stats["labels"] = (int((codes >= 0).sum()), int((codes < 0).sum()), unknown)
        columns.update(batch.extra)
        for stage_name, stage_map, space, is_final in final:
            out = stage_map(space.batch(batch))
            preds = {}
            for name, fields in out.items():
                prefix = stage_name if joint[stage_name] else f"{name}__{stage_name}"
                for field_name, values in fields.items():
                    if field_name == "pred":
                        values = pa.DictionaryArray.from_arrays(pa.array(values, pa.int32()), dictionary)
                    columns[f"{prefix}__{field_name}"] = values
                preds[name] = fields["pred"]
            per_view = {v: preds["joint"] if joint[stage_name] else preds[v] for v in views}
            entry = {"counts": {v: np.bincount(p, minlength=C) for v, p in per_view.items()}}
            if codes is not None:
                entry["labels"] = {v: Confusion.of(codes, p, C + 1, C) for v, p in per_view.items()}
            if len(views) == 2 and not joint[stage_name]:
                entry["agreement"] = Confusion.of(per_view[views[1]], per_view[views[0]], C, C)
            stats[stage_name] = entry
            if is_final:
                columns.update(_final_label(out, views, joint[stage_name], dictionary))
        table = pa.table(columns)
        if n_examples:
            pred, confidence = (np.asarray(table.column(f"{shown}__{f}").combine_chunks().indices if f == "pred"
                                           else table.column(f"{shown}__{f}")) for f in ("pred", "confidence"))
            stats["examples"] = _Examples.of(table, pred, np.asarray(confidence), batch.start, n_examples)
        return stats, table

    label = " · ".join(f"{s.name}: predictions" for s in stages)
    stats = scans.run(label, predict, last=True, sink=sink)
    outcome = _outcome(stats, stages, source, views, names, joint)
    outcome.examples = stats["examples"].table if n_examples else None
    outcome.classifiers = {(s.name, v): c for s in stages for v, c in s.request.classifiers.items()}
    return outcome


def _final_label(out, views, joint, dictionary):
    """One label per item across the views, from the default method: the class both views give, or
    else the more confident view's; ``final__from`` says which."""
    if joint or len(views) == 1:
        source = "joint" if joint else views[0]
        fields = out[source]
        chosen = np.full(len(fields["pred"]), source, dtype=object)
        pred, confidence = fields["pred"], fields["confidence"]
    else:
        (pa_, ca), (pb, cb) = ((out[v]["pred"], out[v]["confidence"]) for v in views)
        first = ca >= cb
        pred = np.where(first, pa_, pb)
        confidence = np.where(pa_ == pb, np.maximum(ca, cb), np.where(first, ca, cb))
        chosen = np.where(pa_ == pb, "both views", np.where(first, views[0], views[1]))
    return {"final__pred": pa.DictionaryArray.from_arrays(pa.array(pred, pa.int32()), dictionary),
            "final__confidence": pa.array(confidence, pa.float32()),
            "final__from": pa.array(chosen.tolist(), pa.string()).dictionary_encode()}


def _example_column(stages, views):
    """The output column prefix whose predictions the examples are chosen by."""
    names = [s.name for s in stages]
    stage = stages[names.index(DEFAULT_METHOD)] if DEFAULT_METHOD in names else stages[-1]
    return stage.name if stage.request.joint else f"{views[0]}__{stage.name}"


@dataclass(frozen=True)
class _Examples:
    """Per class, the ``k`` most and ``k`` least confident rows seen (ties: the earlier row); merged
    with ``+``, so the sample does not depend on the batching."""

    table: pa.Table
    k: int

    @classmethod
    def of(cls, table, pred, confidence, first_row, k):
        rows = np.arange(first_row, first_row + len(pred))
        return cls(table.append_column("__row", pa.array(rows)).append_column("__class", pa.array(pred))
                   .append_column("__confidence", pa.array(confidence, pa.float64())), k)._trimmed()

    def __add__(self, other):
        return _Examples(pa.concat_tables([self.table, other.table]), self.k)._trimmed()

    def _trimmed(self):
        c = np.asarray(self.table.column("__class"))
        conf = np.asarray(self.table.column("__confidence"))
        row = np.asarray(self.table.column("__row"))
        keep = set()
        for sign in (-1, 1):
            order = np.lexsort((row, sign * conf, c))
            first = np.r_[0, np.flatnonzero(np.diff(c[order])) + 1]
            rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
            keep.update(order[rank < self.k].tolist())
        index = np.array(sorted(keep, key=lambda i: row[i]), dtype=np.int64)
        return _Examples(self.table.take(index), self.k)


def _label_codes(labels, dictionary):
    """Class index per label; -1 for a null (unlabelled), ``C`` for a label not among the classes."""
    index = pc.index_in(labels, value_set=dictionary).to_numpy(zero_copy_only=False)
    null = labels.is_null().to_numpy(zero_copy_only=False)
    codes = np.where(np.isnan(index), len(dictionary), np.nan_to_num(index)).astype(np.int64)
    codes[null] = -1
    unknown_rows = (codes == len(dictionary))
    unknown = frozenset(labels.filter(pa.array(unknown_rows)).unique().to_pylist()[:100]) if unknown_rows.any() \
        else frozenset()
    return codes, _Unknown(unknown)


@dataclass(frozen=True)
class _Unknown:
    """Distinct labels that are not among the classes (merged with ``+``)."""

    labels: frozenset

    def __add__(self, other):
        return _Unknown(self.labels | other.labels)


def _outcome(stats, stages, source, views, names, joint):
    C = len(names)
    summary, per_class_f1, notes = {}, {}, []
    diagnostics = {"n_pairs": C * (C - 1) // 2, "fallback_pairs": {}}
    label_confusion, view_agreement, predicted_counts = {}, {}, {}
    n_labelled = n_unlabelled = 0
    if source.label_col is not None:
        n_labelled, n_unlabelled, unknown = stats["labels"]
        diagnostics["n_labelled"], diagnostics["n_unlabelled"] = n_labelled, n_unlabelled
        if unknown.labels:
            notes.append(f"{source.path}: {source.label_col}: {len(unknown.labels)} label(s) are not among the "
                         f"classes and always count as errors, e.g. {sorted(unknown.labels)[0]!r}")
        if n_unlabelled:
            notes.append(f"{source.path}: {source.label_col}: {n_unlabelled:,} item(s) have no label and are left "
                         "out of accuracy and F1")
    for stage in stages:
        entry_stats = stats[stage.name]
        entry = {"agreement_f1": None}
        if "agreement" in entry_stats:
            view_agreement[stage.name] = entry_stats["agreement"]
            entry["agreement_f1"] = entry_stats["agreement"].weighted_f1()
        for v in views:
            predicted_counts[(stage.name, v)] = entry_stats["counts"][v]
        if "labels" in entry_stats and n_labelled:
            entry["accuracy"], entry["f1"] = {}, {}
            for v in views:
                confusion = entry_stats["labels"][v]
                label_confusion[(stage.name, v)] = confusion
                entry["accuracy"][v] = confusion.accuracy()
                entry["f1"][v] = confusion.weighted_f1()
                per_class_f1[(stage.name, v)] = confusion.per_class()
        summary[stage.name] = entry
        if stage.request.diagnostics:
            diagnostics["fallback_pairs"][stage.name] = {
                v: d["n_fallback_pairs"] for v, d in stage.request.diagnostics.items()}
        base = summary.get("baseline" + stage.space.suffix)
        if stage.name != "baseline" + stage.space.suffix and base and hollow_agreement(entry, base):
            notes.append(f"{stage.name}: the views agree more than with the baseline but are less accurate "
                         "(they agree on wrong classes)")
    if DEFAULT_METHOD in summary:
        summary["default"] = summary[DEFAULT_METHOD]
    per_class = []
    if per_class_f1:
        support = next(iter(per_class_f1.values()))[0]
        per_class = [{"class": name, "support": int(support[i]),
                      "f1": {f"{m}/{v}": float(f1[i]) for (m, v), (_, f1) in per_class_f1.items()}}
                     for i, name in enumerate(names)]
    n_items = source.n_rows
    return Outcome(n_items, views, names, summary, per_class, diagnostics, notes, label_confusion, view_agreement,
                   predicted_counts)

