"""Label audit: find catalogue items whose given label is most likely wrong.

Each view's :class:`~pairclass.classify.PairwiseClassifier` plays a full round robin: for every pair
of classes (a, b) the item's cosine margin ``cos_S(x, a) - cos_S(x, b)`` on the pair's selected
dimensions S. A class's score is the least-squares potential of those margins (HodgeRank: on a
complete comparison graph it is the mean margin, a continuous Copeland/Borda count). The class
embeddings are, by default, cross-fitted means of the items per given label plus the class prompt
(``prototypes="labels"``), or the prompts alone (``"text"``, zero-shot). A temperature and
class offsets, fitted per view to the given labels, turn the scores into probabilities; the views are
combined by their geometric mean, and cleanlab's confident learning finds and ranks the label issues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.utils._param_validation import InvalidParameterError

from .classify import PairwiseClassifier, l2_normalize
from .errors import input_error
from .io import DEFAULT_ID_COL, read_embeddings, write_table
from .classes import load_class_embeddings

__all__ = [
    "AuditResult",
    "Calibration",
    "audit_labels",
    "combine_views",
    "fit_calibration",
    "pair_scores",
    "run_audit",
]

PROTOTYPES = ("labels", "text")
RANK_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def pair_scores(clf, X):
    """Round-robin class scores of a fitted :class:`PairwiseClassifier`.

    For each pair (a, b), the margin is the cosine to class a minus the cosine to class b, both taken
    on the pair's selected dimensions (all dimensions for a fallback pair). A class's score is the
    least-squares potential ``s`` with ``s_a - s_b ~ margin(a, b)`` over all pairs, which on the
    complete graph is ``s_a = sum_b margin(a, b) / n_classes``. With every pair on all dimensions it is
    the full cosine up to a constant shift and scale.

    Parameters
    ----------
    clf : PairwiseClassifier
        Fitted.
    X : ndarray of shape (n_items, n_features)

    Returns
    -------
    ndarray of shape (n_items, n_classes)

    Examples
    --------
    >>> T = np.eye(3)
    >>> X = np.array([[0.9, 0.1, 0.0], [0.7, 0.0, 0.3], [0.1, 0.8, 0.2],
    ...               [0.0, 0.9, 0.1], [0.0, 0.3, 0.9], [0.2, 0.1, 0.8]])
    >>> clf = PairwiseClassifier(T, k=2, min_count=2).fit(X)
    >>> pair_scores(clf, X).argmax(axis=1).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    margins = clf.pair_margins(X)
    C = clf.class_embeddings_.shape[0]
    a, b = np.triu_indices(C, 1)
    incidence = np.zeros((a.size, C), dtype=margins.dtype)
    incidence[np.arange(a.size), a] = 1.0
    incidence[np.arange(a.size), b] = -1.0
    return (margins @ incidence).astype(np.float64) / C


@dataclass(frozen=True)
class Calibration:
    """Scores to probabilities: ``softmax(scale * scores + offset)``.

    Attributes
    ----------
    scale : float
        Inverse temperature.
    offset : ndarray of shape (n_classes,)
        Per-class log-odds offsets (sum zero).
    nll : float
        Mean negative log-likelihood of the given labels at the fit.
    """

    scale: float
    offset: np.ndarray
    nll: float

    def log_proba(self, scores):
        """Log-probabilities of shape (n_items, n_classes)."""
        return log_softmax(self.scale * scores + self.offset, axis=1)


def fit_calibration(scores, labels):
    """Fit the inverse temperature and per-class offsets to the given labels by maximum likelihood.

    Why on the given labels: the audit needs probabilities on the scale of how often the labels
    agree with the scores, which is what cleanlab's per-class thresholds (the mean self-confidence
    of each class) compare against. The model has ``n_classes`` free parameters for thousands of
    items, so the minority of wrong labels cannot be memorised; they only soften the temperature
    a little, which makes the audit more cautious, not less. The offsets absorb the class priors and
    the zero-shot bias of the class prompts (a prompt that attracts everything).

    Parameters
    ----------
    scores : ndarray of shape (n_items, n_classes)
    labels : ndarray of shape (n_items,)
        Class indices.

    Returns
    -------
    Calibration

    Examples
    --------
    >>> s = np.array([[1.0, -1.0], [0.5, -0.5], [-1.0, 1.0], [-0.2, 0.2], [0.3, -0.3]])
    >>> cal = fit_calibration(s, np.array([0, 0, 1, 1, 0]))
    >>> bool(cal.scale > 0), cal.log_proba(s).argmax(axis=1).tolist()
    (True, [0, 0, 1, 1, 0])
    """
    n, C = scores.shape
    onehot = np.zeros((n, C))
    onehot[np.arange(n), labels] = 1.0
    # A weak ridge on the offsets keeps them finite when a class has no labelled item.
    ridge = 1e-3

    def nll(params):
        log_scale, offset = params[0], params[1:]
        scale = np.exp(log_scale)
        logp = log_softmax(scale * scores + offset, axis=1)
        resid = np.exp(logp) - onehot
        value = -(logp * onehot).sum() / n + ridge * offset @ offset
        grad_scale = scale * (resid * scores).sum() / n
        grad_offset = resid.sum(axis=0) / n + 2 * ridge * offset
        return value, np.concatenate([[grad_scale], grad_offset])

    spread = scores.std()
    start = np.concatenate([[np.log(1.0 / spread if spread > 0 else 1.0)], np.zeros(C)])
    fit = minimize(nll, start, jac=True, method="L-BFGS-B")
    offset = fit.x[1:] - fit.x[1:].mean()
    return Calibration(float(np.exp(fit.x[0])), offset, float(fit.fun))


def combine_views(log_probas):
    """Geometric mean of the views' class probabilities, renormalised.

    A class must be plausible in every view to keep its mass (a product of experts with equal
    weights), so one view's confident mistake is tempered by the other.

    Examples
    --------
    >>> p = combine_views([np.log([[0.8, 0.2]]), np.log([[0.5, 0.5]])])
    >>> np.round(p, 3).tolist()
    [[0.667, 0.333]]
    """
    return softmax(np.mean(log_probas, axis=0), axis=1)


@dataclass
class LabelIssues:
    """Per-item outcome of :func:`audit_labels`, in input order (class indices).

    Attributes
    ----------
    proba : ndarray of shape (n_items, n_classes)
        Combined class probabilities.
    view_proba : dict
        ``{view: ndarray of shape (n_items, n_classes)}``.
    quality : ndarray of shape (n_items,)
        cleanlab label-quality score of the given label (low is suspicious).
    is_issue : ndarray of shape (n_items,), dtype bool
        Flagged by confident learning.
    rank : ndarray of shape (n_items,)
        1-based: flagged items first by quality, then the rest by quality.
    suggested : ndarray of shape (n_items,)
        Most probable class other than the given one.
    calibration : dict
        ``{view: Calibration}``.
    """

    proba: np.ndarray
    view_proba: dict
    quality: np.ndarray
    is_issue: np.ndarray
    rank: np.ndarray
    suggested: np.ndarray
    calibration: dict


def audit_labels(views, class_embeddings, labels, *, prototypes="labels", folds=5,
                 rank_by="self_confidence", k=100, cos_min=None, diff_min=0.0, min_count=10, seed=0):
    """Find label issues from each view's pairwise classifier and cleanlab's confident learning.

    Parameters
    ----------
    views : dict
        ``{name: ndarray of shape (n_items, n_features)}``, one or more views.
    class_embeddings : ndarray of shape (n_classes, n_features)
    labels : ndarray of shape (n_items,)
        Given class indices in ``0..n_classes-1``.
    prototypes : {"labels", "text"}, default="labels"
        Class embeddings the pairwise classifiers use: per-label means of the other folds' items plus
        the prompt embedding (cross-fitted), or the prompt embeddings alone (zero-shot).
    folds : int, default=5
        Cross-fitting folds for ``prototypes="labels"`` (seeded by ``seed``).
    rank_by : {"self_confidence", "normalized_margin", "confidence_weighted_entropy"}
        cleanlab's label-quality score.
    k, cos_min, diff_min, min_count, seed
        Passed to :class:`PairwiseClassifier`; ``seed`` also draws the folds.

    Returns
    -------
    LabelIssues

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> T = np.eye(3, 8)
    >>> y = np.repeat([0, 1, 2], 20)
    >>> X = T[y] + 0.3 * rng.standard_normal((60, 8))
    >>> given = y.copy(); given[[0, 25]] = [2, 0]
    >>> out = audit_labels({"v": X}, T, given, k=4, min_count=2)
    >>> sorted(np.flatnonzero(out.rank <= 2).tolist())
    [0, 25]
    """
    if prototypes not in PROTOTYPES:
        raise InvalidParameterError(f"prototypes must be one of {', '.join(PROTOTYPES)}; got {prototypes!r}")
    if rank_by not in RANK_METHODS:
        raise InvalidParameterError(f"rank_by must be one of {', '.join(RANK_METHODS)}; got {rank_by!r}")
    labels = np.asarray(labels)
    T = l2_normalize(np.asarray(class_embeddings, dtype=np.float64), name="class_embeddings")
    log_probas, calibration = {}, {}
    params = dict(k=k, cos_min=cos_min, diff_min=diff_min, min_count=min_count, seed=seed)
    for name, X in views.items():
        if prototypes == "text":
            scores = pair_scores(PairwiseClassifier(T, **params).fit(X), X)
        else:
            scores = _cross_fitted_scores(X, T, labels, folds, params)
        calibration[name] = fit_calibration(scores, labels)
        log_probas[name] = calibration[name].log_proba(scores)
    proba = combine_views(list(log_probas.values()))
    quality = get_label_quality_scores(labels, proba, method=rank_by)
    # One process: cleanlab's pool changes nothing in the result and costs more than it saves here.
    is_issue = find_label_issues(labels, proba, filter_by="prune_by_noise_rate", n_jobs=1)
    order = np.lexsort((quality, ~is_issue))
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(1, labels.size + 1)
    others = proba.copy()
    others[np.arange(labels.size), labels] = -1.0
    return LabelIssues(
        proba=proba,
        view_proba={v: np.exp(lp) for v, lp in log_probas.items()},
        quality=quality,
        is_issue=is_issue,
        rank=rank,
        suggested=others.argmax(axis=1),
        calibration=calibration,
    )


def _cross_fitted_scores(X, T, labels, folds, params):
    """Pair scores with class prototypes learnt from the given labels of the other folds.

    Each fold's items are scored by a classifier whose class embeddings are the normalised mean of
    the other folds' items per given label, plus the class prompt's embedding (which also stands in
    for a class no other-fold item carries). An item's own label never shapes its own score, as in
    cleanlab's cross-validated recipe; the dimension selection stays label-free and transductive.
    """
    rng = np.random.default_rng(params["seed"])
    fold = rng.permutation(labels.size) % folds
    Xn = l2_normalize(np.asarray(X, dtype=np.float64))
    scores = np.empty((labels.size, T.shape[0]))
    for f in range(folds):
        train = fold != f
        sums = np.zeros_like(T)
        np.add.at(sums, labels[train], Xn[train])
        counts = np.bincount(labels[train], minlength=T.shape[0])[:, None]
        centroids = sums / np.maximum(counts, 1)
        protos = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12) + T
        clf = PairwiseClassifier(protos, **params).fit(X)
        scores[~train] = pair_scores(clf, X[~train])
    return scores


def _reason(view_names, view_p_suggested, view_p_given, suggested, given):
    """One-line reason such as "both views prefer Watches (0.91/0.88) over Kitchen & Dining (0.02/0.05)"."""
    prefer = [v for v, s, g in zip(view_names, view_p_suggested, view_p_given) if s > g]
    keep = [v for v in view_names if v not in prefer]
    fmt = lambda ps: "/".join(f"{p:.2f}" for p in ps)  # noqa: E731
    if not keep:
        who = "both views" if len(view_names) == 2 else (
            view_names[0] if len(view_names) == 1 else f"all {len(view_names)} views")
        verb = "prefers" if len(view_names) == 1 else "prefer"
        return f"{who} {verb} {suggested} ({fmt(view_p_suggested)}) over {given} ({fmt(view_p_given)})"
    if not prefer:
        return (f"{suggested} ({fmt(view_p_suggested)}) outweighs {given} ({fmt(view_p_given)}) "
                "only in combination")
    i_pref = [view_names.index(v) for v in prefer]
    return (f"{', '.join(prefer)} prefer{'s' if len(prefer) == 1 else ''} {suggested} "
            f"({fmt([view_p_suggested[i] for i in i_pref])} vs {fmt([view_p_given[i] for i in i_pref])}); "
            f"{', '.join(keep)} keep{'s' if len(keep) == 1 else ''} {given}")


@dataclass
class AuditResult:
    """What :func:`run_audit` found.

    Attributes
    ----------
    n_items : int
    views : list of str
    classes : list of str
    flagged_ids : list of str
        Ids of the flagged items, most suspicious first.
    items : pyarrow.Table
        One row per input item, in input order: id, given and suggested label, label quality,
        ``is_issue``, rank, reason and per-view probabilities of the given and suggested labels.
    calibration : dict
        ``{view: {"scale": float, "nll": float}}``.
    """

    n_items: int
    views: list
    classes: list
    flagged_ids: list
    items: pa.Table
    calibration: dict = field(default_factory=dict)

    @property
    def n_flagged(self):
        return len(self.flagged_ids)

    def top(self, n):
        """The ``n`` most suspicious flagged items as a list of row dicts."""
        table = self.items.filter(pc.field("is_issue")).sort_by("rank").slice(0, n)
        return table.to_pylist()

    def to_json(self):
        """The summary as a JSON-ready dict: ``n_items``, ``n_flagged`` and the ranked ``flagged_ids``."""
        return {"n_items": self.n_items, "n_flagged": self.n_flagged, "flagged_ids": list(self.flagged_ids)}


def _label_indices(data, names, label_col):
    path = data.path
    if data.labels is None:
        raise input_error("a label column is required for the audit", path=path, column=label_col)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(data.labels) - set(index))
    if unknown:
        raise input_error(
            f"{len(unknown)} label(s) are not among the classes, e.g. {unknown[0]!r}",
            path=path, column=label_col,
        )
    y = np.array([index[v] for v in data.labels], dtype=np.int64)
    present = np.unique(y)
    if present.size < 2:
        raise input_error(
            f"all items carry the single label {names[present[0]]!r}; the audit needs at least 2 classes",
            path=path, column=label_col,
        )
    return y


def run_audit(embeddings, classes, *, label_col, views=None, id_col=DEFAULT_ID_COL,
              prototypes="labels", folds=5, rank_by="self_confidence", k=100, cos_min=None,
              diff_min=0.0, min_count=10, seed=0, out=None, progress=None):
    """Audit the catalogue labels of an embedding file.

    Parameters
    ----------
    embeddings : path-like
        SQID-layout parquet with a label column.
    classes : path-like
        Class file with embeddings; every label must be one of its names.
    label_col : str
        Catalogue label column.
    views : sequence of str
        Embedding columns; their probabilities are combined.
    id_col : str
    prototypes, folds, rank_by, k, cos_min, diff_min, min_count, seed
        See :func:`audit_labels`.
    out : path-like, optional
        Write every item with its scores here atomically (parquet, or CSV for ``.csv``).
    progress : callable, optional
        ``progress(message)`` is called before each slow step.

    Returns
    -------
    AuditResult

    Raises
    ------
    InputError
        Missing label column, labels not among the classes, or a single label.
    """
    step = progress or (lambda message: None)
    if not label_col:
        raise input_error("a label column is required for the audit (--label-col)", path=embeddings)
    data = read_embeddings(embeddings, views, id_col=id_col, label_col=label_col)
    views = list(data.views)
    dim = next(iter(data.views.values())).shape[1]
    cls = load_class_embeddings(classes, dim, against=f"{data.path}: {views[0]}", metadata=data.metadata,
                                progress=step)
    names = list(cls.names)
    y = _label_indices(data, names, label_col)
    step(f"auditing {data.n_items} labels over {len(views)} view(s)")
    found = audit_labels(
        data.views, cls.embeddings, y, prototypes=prototypes, folds=folds, rank_by=rank_by, k=k,
        cos_min=cos_min, diff_min=diff_min, min_count=min_count, seed=seed,
    )
    names_arr = np.asarray(names, dtype=object)
    rows = np.arange(y.size)
    p_sugg = {v: p[rows, found.suggested] for v, p in found.view_proba.items()}
    p_given = {v: p[rows, y] for v, p in found.view_proba.items()}
    reasons = [
        _reason(views, [p_sugg[v][i] for v in views], [p_given[v][i] for v in views],
                names_arr[found.suggested[i]], names_arr[y[i]]) if found.is_issue[i] else ""
        for i in rows
    ]
    columns = {
        data.id_col: data.ids,
        label_col: data.labels,
        "suggested_label": names_arr[found.suggested],
        "label_quality": found.quality,
        "is_issue": found.is_issue,
        "rank": found.rank,
        "p_given": found.proba[rows, y],
        "p_suggested": found.proba[rows, found.suggested],
        "reason": np.asarray(reasons, dtype=object),
    }
    for v in views:
        columns[f"{v}__p_given"] = p_given[v]
        columns[f"{v}__p_suggested"] = p_sugg[v]
    items = pa.table({name: pa.array(col) for name, col in columns.items()})
    flagged = np.flatnonzero(found.is_issue)
    flagged = flagged[np.argsort(found.rank[flagged])]
    if out is not None:
        step(f"writing {out}")
        write_table(items, Path(out))
    return AuditResult(
        n_items=data.n_items,
        views=views,
        classes=names,
        flagged_ids=[str(i) for i in data.ids[flagged]],
        items=items,
        calibration={v: {"scale": c.scale, "nll": c.nll} for v, c in found.calibration.items()},
    )
