"""Library entry points behind the CLI: read files, run the methods per view, score, write."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from .center import center_views, check_center
from .classify import PairwiseClassifier, baseline_scores, l2_normalize
from .errors import InputError, input_error
from .io import DEFAULT_ID_COL, DEFAULT_VIEWS, read_classes, read_embeddings, write_table
from .methods import DEFAULT_METHOD, METHODS, check_proto_prior, run_method
from .metrics import agreement_f1, hollow_agreement, label_scores, per_class_f1

__all__ = ["ClassifyResult", "run_classify", "load_class_embeddings", "resolve_methods"]


@dataclass
class ClassifyResult:
    """What ``run_classify`` measured.

    Attributes
    ----------
    n_items : int
    views : list of str
    classes : list of str
    methods : dict
        ``{method: {"agreement_f1": float or None, "accuracy": {view: x}, "f1": {view: x}}}``;
        ``accuracy`` and ``f1`` only with labels.
    per_class : list of dict
        With labels: one row per class with its support and the F1 per method and view.
    predictions : pyarrow.Table
        One row per item.
    diagnostics : dict
        ``n_pairs`` (class pairs) and ``fallback_pairs``: per method and view, the pairs that had too
        few confident items and used the full-embedding cosine.
    warnings : list of str
    """

    n_items: int
    views: list
    classes: list
    methods: dict
    per_class: list = field(default_factory=list)
    predictions: pa.Table | None = None
    diagnostics: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_json(self):
        """The summary as a JSON-ready dict: ``n_items``, ``views`` and ``methods``."""
        return {"n_items": self.n_items, "views": list(self.views), "methods": self.methods}


def load_class_embeddings(classes_path, dim, *, against, metadata=None, progress=None):
    """Read a class file and check its embeddings' width against ``against`` (a label).

    A class file with names only is embedded here (prompt ensembling over the default templates)
    when ``metadata``, the items' embedding-file metadata, names the model that made them.
    """
    classes = read_classes(classes_path)
    if classes.embeddings is None:
        if not metadata or "pairclass.backend" not in metadata:
            raise input_error(
                "no 'embedding' column; embed the class prompts first "
                "(pairclass embed-classes) or pass a parquet with name and embedding columns",
                path=classes.path,
            )
        try:
            from .embed.run import embed_classes_like
        except ImportError as e:
            raise input_error(
                f"no 'embedding' column, and embedding the class names needs pairclass[embed] ({e.name} "
                "is not installed); or embed them elsewhere with pairclass embed-classes",
                path=classes.path,
            ) from None
        embeddings, how = embed_classes_like(classes, metadata)
        (progress or (lambda message: None))(f"classes: embedded {len(classes.names)} names with {how}")
        classes = replace(classes, embeddings=embeddings.astype(np.float32))
    if classes.embeddings.shape[1] != dim:
        raise input_error(
            f"dimension {classes.embeddings.shape[1]} does not match {against} ({dim})",
            path=classes.path,
            column="embedding",
        )
    return classes


def resolve_methods(methods, *, pairwise=True):
    """The methods to run, in report order: baseline first, then as asked (``all`` = every method).

    Examples
    --------
    >>> resolve_methods(["joint", "pairwise"])
    ['baseline', 'pairwise', 'joint']
    >>> resolve_methods(["all"], pairwise=False)
    ['baseline']
    """
    if not pairwise:
        return ["baseline"]
    asked = set(METHODS) if "all" in methods else set(methods) | {"pairwise"}
    unknown = sorted(asked - set(METHODS))
    if unknown:
        raise InputError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} or all")
    return [m for m in METHODS if m in asked or m == "baseline"]


def run_classify(
    embeddings,
    classes,
    *,
    views=DEFAULT_VIEWS,
    id_col=DEFAULT_ID_COL,
    label_col=None,
    methods=("pairwise", DEFAULT_METHOD),
    pairwise=True,
    k=100,
    cos_min=None,
    diff_min=0.0,
    candidates=None,
    min_count=10,
    seed=0,
    tournament="bracket",
    match=None,
    proto_prior="min-count",
    center="none",
    encoder=None,
    out=None,
    progress=None,
):
    """Classify every item of an embedding file, per view and method, and score the result.

    Parameters
    ----------
    embeddings : path-like
        SQID-layout parquet.
    classes : path-like
        Class file (see :func:`pairclass.io.read_classes`). Without embeddings, the names are
        embedded with the model recorded in ``embeddings`` by ``pairclass embed``.
    views : sequence of str
        Embedding columns; agreement is reported when there are two.
    label_col : str, optional
        Catalogue labels: adds accuracy, weighted F1 and a per-class table.
    methods : sequence of str, default=("pairwise", DEFAULT_METHOD)
        Methods from :data:`pairclass.methods.METHODS`, or ``"all"``. The baseline always runs, and
        the default method is reported a second time under ``"default"``.
    pairwise : bool, default=True
        False runs the baseline only.
    k, cos_min, diff_min, candidates, min_count, seed, tournament, match
        Passed to :class:`PairwiseClassifier`; ``match=None`` leaves each method its own (see
        :func:`pairclass.methods.run_method`).
    proto_prior : {"min-count", "class"}, default="min-count"
        What a class embedding is worth against its items' mean in the prototype step of the methods
        built on ``proto``: ``min_count`` items, or one average class of the batch (safer on batches
        holding few of the classes; see :mod:`pairclass.methods`).
    center : {"none", "balanced"}, default="none"
        ``"balanced"`` runs every method (the baseline too) on balanced-centred items and centred
        class embeddings (see :mod:`pairclass.center`); it makes a centred copy of each view.
    encoder : path-like, optional
        A metric-learning head from ``pairclass train`` (applied to the uncentred embeddings): items and class embeddings are also mapped
        through it and classified there, reported as ``baseline+encoder`` and ``pairwise+encoder``.
    out : path-like, optional
        Write the predictions here atomically (parquet, or CSV for ``.csv``).
    progress : callable, optional
        ``progress(message)`` is called before each slow step.

    Returns
    -------
    ClassifyResult
    """
    views = list(views)
    if len(views) > 2:
        raise InputError(f"at most two views can be compared, got {len(views)}: {', '.join(views)}")
    run = resolve_methods(methods, pairwise=pairwise)
    check_center(center)
    check_proto_prior(proto_prior)
    params = dict(k=k, cos_min=cos_min, diff_min=diff_min, candidates=candidates,
                  min_count=min_count, seed=seed, tournament=tournament, match=match)
    # Bad settings fail before any data is read.
    PairwiseClassifier(**dict(params, match=match or "cosine"))._validate_params()
    params["proto_prior"] = proto_prior
    step = progress or (lambda message: None)
    data = read_embeddings(embeddings, views, id_col=id_col, label_col=label_col)
    dim = next(iter(data.views.values())).shape[1]
    cls = load_class_embeddings(classes, dim, against=f"{data.path}: {views[0]}", metadata=data.metadata,
                                progress=step)
    T_raw = l2_normalize(cls.embeddings.astype(np.float64), name="class embeddings")
    if center != "none":
        step(f"centring: {center}")
    items, T = center_views(data.views, T_raw, center)
    names = np.asarray(cls.names, dtype=object)
    notes = []
    if data.labels is not None:
        unknown = sorted(set(data.labels) - set(cls.names))
        if unknown:
            notes.append(
                f"{data.path}: {label_col}: {len(unknown)} label(s) are not among the classes "
                f"and always count as errors, e.g. {unknown[0]!r}"
            )

    columns = {data.id_col: data.ids}
    if data.labels is not None:
        columns[label_col] = data.labels
    for view, X in items.items():
        _, top_cos, margin = baseline_scores(X, T)
        columns[f"{view}__baseline__top_cos"] = top_cos
        columns[f"{view}__baseline__margin"] = margin
    preds, summary = {}, {}
    diagnostics = {"n_pairs": len(T) * (len(T) - 1) // 2, "fallback_pairs": {}}
    spaces = [("", items, T)]
    if encoder is not None:
        from .dml import load_encoder

        head = load_encoder(encoder)
        step(f"encoder: mapping items and classes through {encoder}")
        encoded = {v: head.transform(X) for v, X in data.views.items()}
        spaces.append(("+encoder", encoded, l2_normalize(head.transform(T_raw).astype(np.float64))))
    for suffix, space_views, space_T in spaces:
        for method in run if not suffix else [m for m in run if m in ("baseline", "pairwise")]:
            name = method + suffix
            step(f"{name}: classifying {data.n_items:,} items")
            output = run_method(method, space_views, space_T, params)
            preds[name] = {v: names[p] for v, p in output.pred.items()}
            for v in views:
                if output.joint and v != views[0]:
                    continue
                prefix = name if output.joint else f"{v}__{name}"
                columns[f"{prefix}__pred"] = preds[name][v]
                columns[f"{prefix}__confidence"] = output.confidence[v]
            if output.diagnostics:
                diagnostics["fallback_pairs"][name] = {
                    v: d["n_fallback_pairs"] for v, d in output.diagnostics.items()
                }
            entry = {"agreement_f1": None}
            if len(views) == 2 and not output.joint:
                entry["agreement_f1"] = agreement_f1(preds[name][views[1]], preds[name][views[0]])
            if data.labels is not None:
                scores = {v: label_scores(data.labels, preds[name][v]) for v in views}
                entry["accuracy"] = {v: s["accuracy"] for v, s in scores.items()}
                entry["f1"] = {v: s["f1"] for v, s in scores.items()}
            summary[name] = entry
            if method != "baseline" and hollow_agreement(entry, summary["baseline" + suffix]):
                notes.append(
                    f"{name}: the views agree more than with the baseline but are less accurate "
                    "(they agree on wrong classes)"
                )
    if DEFAULT_METHOD in summary:
        summary["default"] = summary[DEFAULT_METHOD]

    per_class = []
    if data.labels is not None:
        table = {}
        for m in preds:
            for v in views:
                support, f1 = per_class_f1(data.labels, preds[m][v], cls.names)
                table[(m, v)] = f1
        per_class = [
            {"class": name, "support": int(support[i]),
             "f1": {f"{m}/{v}": float(f1[i]) for (m, v), f1 in table.items()}}
            for i, name in enumerate(cls.names)
        ]

    predictions = pa.table({name: pa.array(col) for name, col in columns.items()})
    if out is not None:
        step(f"writing {out}")
        write_table(predictions, Path(out))
    return ClassifyResult(
        n_items=data.n_items,
        views=views,
        classes=list(cls.names),
        methods=summary,
        per_class=per_class,
        predictions=predictions,
        diagnostics=diagnostics,
        warnings=notes,
    )
