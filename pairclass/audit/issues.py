"""Label issues from all the evidence: gather the signals, combine them, hand them to cleanlab.

Rounds: the first round's signals learn from every given label; their product goes to cleanlab's
``find_label_issues``. Each later round trains the classifier and counts the neighbours' votes only
over the labels the round before did not flag (as cleanlab's ``CleanLearning`` retrains on the
cleaned set), and fits the product on them. The last round's probabilities are ranked by
cleanlab's ``get_label_quality_scores`` and flagged by its ``find_label_issues``; cleanlab's
``estimate_joint`` gives each class's noise rate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from cleanlab.count import estimate_joint
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.utils._param_validation import InvalidParameterError

from .combine import fit_product
from .neighbours import nearest_neighbours
from .signals import log_votes, neighbour_votes, out_of_fold_proba

__all__ = ["DEFAULT_SIGNALS", "RANK_METHODS", "SIGNALS", "Evidence", "LabelIssues", "find_issues"]

SIGNALS = ("classifier", "neighbours", "zero-shot")
DEFAULT_SIGNALS = ("classifier", "neighbours")
RANK_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
_LOG_FLOOR = 1e-6


@dataclass
class Evidence:
    """One signal's view of every item.

    Attributes
    ----------
    name : str
        ``"classifier"``, ``"neighbours:VIEW"``, ``"neighbours:A>B"`` (A's neighbours among B's
        rows) or ``"zero-shot:VIEW"``.
    family : str
        ``"classifier"``, ``"neighbours"`` or ``"zero-shot"``.
    views : tuple of str
    log : ndarray of shape (n_items, n_classes)
        What the product multiplies: log-probabilities, log vote shares or zero-shot scores.
    votes : ndarray of shape (n_items, n_classes) or None
        Neighbour votes (for the reasons).
    """

    name: str
    family: str
    views: tuple
    log: np.ndarray
    votes: np.ndarray | None = None


@dataclass
class LabelIssues:
    """Per-item outcome of :func:`find_issues`, in input order (class indices).

    Attributes
    ----------
    proba : ndarray of shape (n_items, n_classes)
        Combined class probabilities of the last round.
    quality : ndarray of shape (n_items,)
        cleanlab's label-quality score of the given label in [0, 1] (low: suspect).
    is_issue : ndarray of shape (n_items,), dtype bool
        Flagged by cleanlab's ``find_label_issues``.
    rank : ndarray of shape (n_items,)
        1-based rank by quality (most suspect first; ties by input order).
    suggested : ndarray of shape (n_items,)
        The most probable class other than the given one.
    evidence : list of Evidence
        The last round's signals.
    weights : dict
        ``{signal name: weight in the product}``.
    joint : ndarray of shape (n_classes, n_classes)
        cleanlab's estimate of the joint distribution of given (rows) and true (columns) labels.
    """

    proba: np.ndarray
    quality: np.ndarray
    is_issue: np.ndarray
    rank: np.ndarray
    suggested: np.ndarray
    evidence: list
    weights: dict
    joint: np.ndarray

    @property
    def noise_rate(self):
        """Per given class: the estimated share of its labels that are wrong (NaN: no items)."""
        rows = self.joint.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return 1 - np.diag(self.joint) / rows


def find_issues(features, labels, n_classes, *, zero_shot=None, signals=DEFAULT_SIGNALS, rounds=2, folds=5,
                neighbours=10, rank_by="self_confidence", seed=0):
    """Find label issues from the classifier, neighbour and zero-shot evidence.

    Parameters
    ----------
    features : dict
        ``{view: ndarray of shape (n_items, n_features)}`` (see :mod:`pairclass.audit.features`).
    labels : ndarray of shape (n_items,)
        Given class indices in ``0..n_classes-1``.
    n_classes : int
    zero_shot : dict, optional
        ``{view: ndarray of shape (n_items, n_classes)}`` zero-shot scores; required for the
        ``"zero-shot"`` signal.
    signals : sequence of {"classifier", "neighbours", "zero-shot"}
        ``classifier``: out-of-fold logistic regression on all views side by side. ``neighbours``:
        the labels of each item's ``neighbours`` nearest items in each view, and with two views
        across them (each view's row searched among the other view's rows). ``zero-shot``: the
        pairwise classifiers' scores.
    rounds : int
        1: one pass; 2 or more: retrain on the labels the previous round did not flag.
    folds : int
    neighbours : int
    rank_by : {"self_confidence", "normalized_margin", "confidence_weighted_entropy"}
    seed : int
        Seeds folds, subsamples and the neighbour index.

    Returns
    -------
    LabelIssues
    """
    _check(signals, rank_by, rounds, zero_shot)
    labels = np.asarray(labels, dtype=np.int64)
    prior = (np.bincount(labels, minlength=n_classes) / labels.size).astype(np.float32)
    found = _neighbour_lists(features, neighbours, seed) if "neighbours" in signals else {}
    joint_X = None
    if "classifier" in signals:
        joint_X = np.hstack(list(features.values())) if len(features) > 1 else next(iter(features.values()))
    trusted = None
    for _ in range(rounds):
        evidence = []
        if "classifier" in signals:
            proba = out_of_fold_proba(joint_X, labels, n_classes, folds=folds, seed=seed, trusted=trusted)
            evidence.append(Evidence("classifier", "classifier", tuple(features),
                                     np.log(np.maximum(proba, _LOG_FLOOR))))
        for name, (views, idx) in found.items():
            votes, voters = neighbour_votes(idx, labels, n_classes, trusted=trusted)
            evidence.append(Evidence(name, "neighbours", views, log_votes(votes, voters, prior), votes))
        if "zero-shot" in signals:
            evidence += [Evidence(f"zero-shot:{v}", "zero-shot", (v,), s) for v, s in zero_shot.items()]
        product = fit_product([e.log for e in evidence], labels, fit_on=trusted, seed=seed)
        proba = product.proba([e.log for e in evidence])
        is_issue = _flag(labels, proba)
        trusted = ~is_issue
    quality = get_label_quality_scores(labels, proba, method=rank_by)
    order = np.argsort(quality, kind="stable")
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(1, labels.size + 1)
    others = proba.copy()
    others[np.arange(labels.size), labels] = -1.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "May not flag all label issues", UserWarning)
        joint = estimate_joint(labels, proba)
    return LabelIssues(proba, quality, is_issue, rank, others.argmax(axis=1), evidence,
                       {e.name: float(w) for e, w in zip(evidence, product.weights)}, joint)


def _check(signals, rank_by, rounds, zero_shot):
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown or not signals:
        raise InvalidParameterError(f"signals must be some of {', '.join(SIGNALS)}; got {', '.join(signals) or 'none'}")
    if rank_by not in RANK_METHODS:
        raise InvalidParameterError(f"rank_by must be one of {', '.join(RANK_METHODS)}; got {rank_by!r}")
    if rounds < 1:
        raise InvalidParameterError(f"rounds must be at least 1; got {rounds}")
    if "zero-shot" in signals and not zero_shot:
        raise InvalidParameterError("the zero-shot signal needs zero-shot scores (class embeddings)")


def _flag(labels, proba):
    # cleanlab warns about classes with too few items (absent classes among them); it still flags
    # the others. One process: its pool costs more than it saves here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "May not flag all label issues", UserWarning)
        return find_label_issues(labels, proba, filter_by="prune_by_noise_rate", n_jobs=1)


def _neighbour_lists(features, k, seed):
    """``{name: (views, neighbour rows)}``: within each view, and with two views across them."""
    names = list(features)
    n = next(iter(features.values())).shape[0]
    k = min(k, n - 1)
    out = {f"neighbours:{v}": ((v,), nearest_neighbours(features[v], k, seed=seed)) for v in names}
    if len(names) == 2 and features[names[0]].shape[1] == features[names[1]].shape[1]:
        a, b = names
        out[f"neighbours:{a}>{b}"] = ((a, b), nearest_neighbours(features[b], k, features[a], seed=seed))
        out[f"neighbours:{b}>{a}"] = ((b, a), nearest_neighbours(features[a], k, features[b], seed=seed))
    return out
