"""The pairwise cross-variance classifier: per-pair dimension selection plus an array-wide bracket."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .crossvar import GroupStats, cross_ratio_from_stats, row_norms, top_k_dims
from .tournament import bracket_orders, run_bracket, run_round_robin

__all__ = [
    "PairwiseClassifier", "Decision", "baseline_scores", "check_classes", "class_probability", "pair_index", "l2_normalize",
    "row_chunks", "EXPECTED_FAILED_CHECKS",
]

# Rows per chunk: bounds the temporaries (chunk x classes, chunk x pairs) whatever N is.
_CHUNK_ELEMENTS = 1 << 23
# Cost of gathering one value, in multiply-adds of a matrix product (decides how matches are scored).
_GATHER_COST = 64
# Label meaning "no label" in ``fit(X, y)`` (scikit-learn's semi-supervised convention).
UNLABELED = -1

# scikit-learn estimator checks that cannot apply to a cosine classifier, with the reason.
EXPECTED_FAILED_CHECKS = {
    "check_classifiers_classes": (
        "-1 in y means unlabelled (scikit-learn's semi-supervised convention), so this check's binary "
        "labels {-1, 1} are a single class"
    ),
}


def pair_index(a, b, n_classes):
    """Index of the unordered pair {a, b} (a != b) in the row-major upper triangle.

    Examples
    --------
    >>> pair_index(np.array([0, 0, 1, 2]), np.array([1, 2, 2, 1]), 3).tolist()
    [0, 1, 2, 2]
    """
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    return lo * (2 * n_classes - lo - 1) // 2 + (hi - lo - 1)


def l2_normalize(X, *, name="X"):
    """Row-normalise ``X``; an all-zero row is a ``ValueError`` naming the first one."""
    norms = row_norms(X)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"{name} has {zero.size} all-zero row(s), first at row {zero[0]}")
    return X / norms[:, None].astype(X.dtype)


def row_chunks(n_rows, width, *, min_rows=256):
    """Slices of ``max(min_rows, 2**23 // width)`` rows covering ``range(n_rows)``: temporaries of
    ``width`` values per row stay near 2**23 elements whatever ``n_rows`` is."""
    step = max(min_rows, _CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


@dataclass(frozen=True)
class Decision:
    """Per-item outputs of :meth:`PairwiseClassifier.decide` (class indices into ``classes_``).

    Attributes
    ----------
    pred : ndarray of shape (n_items,)
        Bracket winner.
    margin : ndarray of shape (n_items,)
        Score of the final match (the winner's margin over the runner-up, see ``match``).
    confidence : ndarray of shape (n_items,)
        The winner's share of the item's cosines (see :func:`class_probability`), in [0, 1].
    baseline_pred : ndarray of shape (n_items,)
        Full-embedding cosine argmax.
    baseline_top_cos : ndarray of shape (n_items,)
        Top full-embedding cosine.
    baseline_margin : ndarray of shape (n_items,)
        Top minus second full-embedding cosine.
    """

    pred: np.ndarray
    margin: np.ndarray
    confidence: np.ndarray
    baseline_pred: np.ndarray
    baseline_top_cos: np.ndarray
    baseline_margin: np.ndarray


class PairwiseClassifier(ClassifierMixin, BaseEstimator):
    """Zero-shot classifier deciding between classes on the dimensions that separate each pair.

    ``fit`` pseudo-labels the items by full cosine against the class embeddings, keeps the confident
    ones, and for every pair of classes keeps the ``k`` dimensions with the largest cross ratio
    between the two pseudo-classes. ``predict`` runs a single-elimination bracket in which each match
    compares the item's cosine to the two classes on the pair's dimensions only (or, with ``match``,
    a score whose threshold and weights are learned from the pair's two pseudo-classes).

    The fit is transductive: it learns from the very items it will classify, without labels. Given
    labels ``y``, the statistics group the items by them instead (``-1``: left out), and without
    class embeddings the labelled items' class means serve as the class embeddings, so it is also an
    ordinary (nearest-mean) scikit-learn classifier.

    Parameters
    ----------
    class_embeddings : array-like of shape (n_classes, n_features), default=None
        Class (prompt) embeddings, normalised here. None: the means of the labelled items per class.
    class_names : array-like of shape (n_classes,), default=None
        Labels of the rows of ``class_embeddings`` (default ``0..n_classes-1``); without class
        embeddings the classes are those of ``y``.
    k : int, default=100
        Dimensions kept per pair (capped at the embedding width).
    cos_min : float or None, default=None
        Items whose top full cosine is below this are left out of the statistics. None keeps all.
    diff_min : float, default=0.0
        For the pair (a, b), an item pseudo-labelled a is left out when ``cos_a - cos_b`` is below
        this (likewise for b). 0 keeps all.
    candidates : int or None, default=None
        Play the bracket among each item's top-``candidates`` classes by full cosine. None plays all.
    min_count : int, default=10
        A pair whose either side has fewer confident items falls back to the full cosine.
    seed : int, default=0
        Seeds the bracket's slot permutations.
    tournament : {"bracket", "copeland"}, default="bracket"
        ``"bracket"``: single elimination, ``ceil(log2 C)`` rounds (C - 1 matches per item).
        ``"copeland"``: a round robin, every pair of candidates plays (C(C-1)/2 matches per item) and
        the most wins takes it, ties going to the higher full cosine; for small class lists.
    match : {"cosine", "midpoint", "fisher"} or None, default=None
        How a match between ``a`` and ``b`` is scored (``a`` wins at a score >= 0). None is the
        seed's ``"cosine"`` here; the methods built on ``proto`` (:mod:`pairclass.methods`) read it
        as ``"fisher"``.

        - ``"cosine"``: the seed's ``cos_S(x, a) - cos_S(x, b)`` on the pair's dimensions S.
        - ``"midpoint"``: ``p(x) - theta_p``, where ``p(x) = x_S @ w / |x|`` (``w`` as in
          ``pair_weights_``) and ``theta_p`` is halfway between the mean of ``p`` over the two
          pseudo-classes, so each boundary sits between the pair's own two groups rather than where
          the class embeddings put it.
        - ``"fisher"``: the midpoint score plus the full cosine's, ``f(x) = cos(x, a) - cos(x, b)``
          against its own midpoint ``theta_f``, each weighted by its Fisher discriminant
          ``(mean_a - mean_b) / var`` over the two pseudo-classes:
          ``alpha (f - theta_f) + beta (p - theta_p)``, the sum of two one-dimensional LDA
          log-likelihood ratios with equal priors. The variances treat the dimensions as independent
          (``var(v @ x) ~ sum_d v_d^2 var_d``, pooled over the two groups).

        Means and variances come from the pair's sums, so they add across batches like the
        dimensions do. (The midpoint score drops the seed's ``|x_S|`` to stay linear in ``x``.)

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    class_embeddings_ : ndarray of shape (n_classes, n_features)
        L2-normalised class embeddings.
    n_features_in_ : int
        Embedding width.
    stats_ : GroupStats
        Count, sum and sum of squares of the normalised items per pseudo-class (keys ``0..C-1``) and
        of the items each pair's ``diff_min`` filter leaves out (key ``C + a*C + b``).
    pair_dims_ : ndarray of shape (n_pairs, k)
        Selected dimensions per pair ``(a < b)``, in :func:`pair_index` order; -1 rows for fallback pairs.
    pair_weights_ : ndarray of shape (n_pairs, k)
        On the pair's dimensions S, ``T[a]_S/|T[a]_S| - T[b]_S/|T[b]_S|``: ``a`` wins when
        ``x_S @ w >= 0`` (zeros for fallback pairs).
    pair_scales_ : ndarray of shape (n_pairs, 2)
        ``(alpha, beta)``: the weights of ``f`` and ``p`` in a match's score; ``(0, 1)`` with
        ``match="midpoint"``, zeros with ``"cosine"`` and for fallback pairs.
    pair_offsets_ : ndarray of shape (n_pairs,)
        The score's threshold, ``alpha theta_f + beta theta_p``; zeros with ``"cosine"`` and for
        fallback pairs.
    fallback_pairs_ : ndarray of shape (n_pairs,), dtype bool
        Pairs that use the full cosine for lack of confident items.
    n_fallback_pairs_ : int
        Number of fallback pairs.

    Notes
    -----
    The statistics are exact integers underneath (see :class:`~pairclass.crossvar.GroupStats`):
    ``partial_fit`` over any split of the items, in any order, selects the same dimensions and
    learns the same matches as one ``fit``. For the streaming methods, :meth:`statistics` maps one
    batch to statistics that add with ``+``, and :meth:`fit_statistics` fits from their sum.

    Examples
    --------
    >>> T = np.eye(3)
    >>> X = np.array([[0.9, 0.1, 0.0], [0.7, 0.0, 0.3], [0.1, 0.8, 0.2],
    ...               [0.0, 0.9, 0.1], [0.0, 0.3, 0.9], [0.2, 0.1, 0.8]])
    >>> clf = PairwiseClassifier(T, k=2, min_count=2).fit(X)
    >>> clf.predict(X).tolist()
    [0, 0, 1, 1, 2, 2]
    >>> clf.pair_dims_.shape, clf.n_fallback_pairs_
    ((3, 2), 0)
    """

    _parameter_constraints: dict = {
        "class_embeddings": ["array-like", None],
        "class_names": ["array-like", None],
        "k": [Interval(Integral, 1, None, closed="left")],
        "cos_min": [Interval(Real, -1, 1, closed="both"), None],
        "diff_min": [Interval(Real, 0, None, closed="left")],
        "candidates": [Interval(Integral, 2, None, closed="left"), None],
        "min_count": [Interval(Integral, 2, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")],
        "tournament": [StrOptions({"bracket", "copeland"})],
        "match": [StrOptions({"cosine", "midpoint", "fisher"}), None],
    }

    def __init__(
        self, class_embeddings=None, *, class_names=None, k=100, cos_min=None, diff_min=0.0, candidates=None,
        min_count=10, seed=0, tournament="bracket", match=None,
    ):
        self.class_embeddings = class_embeddings
        self.class_names = class_names
        self.k = k
        self.cos_min = cos_min
        self.diff_min = diff_min
        self.candidates = candidates
        self.min_count = min_count
        self.seed = seed
        self.tournament = tournament
        self.match = match

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the per-pair dimensions from the items ``X``.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
        y : array-like of shape (n_items,), optional
            Labels to group the statistics by (``-1``: unlabelled, left out). Without them the items
            are grouped by their full-cosine argmax (zero-shot). Required without class embeddings.

        Returns
        -------
        self
        """
        X, codes = self._begin(X, y, reset=True)
        self._fit_stats(self._statistics(X, codes))
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, classes=None):
        """Add a batch's statistics and re-select the dimensions.

        The statistics are exact sums, so any split into batches gives the same fit as one ``fit``.
        Without class embeddings the class means are running means over the batches so far
        (``classes``, all labels, defaults to the first batch's), and ``cos_min``/``diff_min``,
        which need the final means, cannot be used.
        """
        first = not hasattr(self, "stats_")
        if self.class_embeddings is None and (self.cos_min is not None or self.diff_min > 0):
            raise ValueError("partial_fit without class_embeddings cannot use cos_min or diff_min")
        X, codes = self._begin(X, y, reset=first, classes=classes)
        stats = self._statistics(X, codes)
        stats = stats if first else self.stats_ + stats
        if self.class_embeddings is None:
            self.class_embeddings_ = _class_means(stats, self.classes_)
        self._fit_stats(stats)
        return self

    def _begin(self, X, y, *, reset, classes=None):
        """Validate a batch; on the first, also the classes. Returns ``X`` and the label codes."""
        if y is None:
            if self.class_embeddings is None and not hasattr(self, "class_embeddings_"):
                raise ValueError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None "
                    "(or give class_embeddings, for zero-shot use)"
                )
            X = validate_data(self, X, reset=reset, dtype=[np.float32, np.float64])
        else:
            X, y = validate_data(self, X, y, reset=reset, dtype=[np.float32, np.float64])
            check_classification_targets(y)
        if reset:
            self._set_classes(X, y, classes)
        return X, None if y is None else self._codes(y)

    def _set_classes(self, X, y, classes):
        if self.class_embeddings is not None:
            self.class_embeddings_, self.classes_ = check_classes(
                self.class_embeddings, self.class_names, X.shape[1])
            return
        classes = np.unique(_labelled(y)) if classes is None else np.asarray(classes)
        if classes.size < 2:
            raise ValueError(f"needs at least 2 classes to tell apart; got {classes.size} class")
        self.classes_ = classes
        self.class_embeddings_ = _class_means(GroupStats.from_rows(X, self._codes(y), squares=False), classes)

    def _codes(self, y):
        """Class index per item, -1 for unlabelled items."""
        y = np.asarray(y)
        unlabeled = _is_unlabeled(y)
        codes = np.full(y.shape[0], UNLABELED, dtype=np.int64)
        given = y[~unlabeled]
        order = np.argsort(self.classes_, kind="stable")
        ordered = self.classes_[order]
        pos = np.minimum(np.searchsorted(ordered, given), ordered.size - 1)
        unknown = ordered[pos] != given
        if unknown.any():
            raise ValueError(f"y has labels that are not among the classes, e.g. {given[unknown].tolist()[0]!r}")
        codes[~unlabeled] = order[pos]
        return codes

    # ------------------------------------------------- the streaming protocol
    def start(self, n_features):
        """Check the settings and the class embeddings for ``n_features``-wide items, before any
        batch; the streaming methods call this once, then :meth:`statistics` per batch."""
        self._validate_params()
        if self.class_embeddings is None:
            raise ValueError("streaming needs class_embeddings")
        self.n_features_in_ = n_features
        self.class_embeddings_, self.classes_ = check_classes(self.class_embeddings, self.class_names, n_features)
        return self

    def statistics(self, X, codes=None, norms=None):
        """One batch's statistics, to be added with ``+`` and passed to :meth:`fit_statistics`.

        Pure (the estimator is not changed), so batches may run in parallel. ``X`` is trusted:
        finite, ``n_features_in_`` wide, no all-zero rows (the sources check this).

        Parameters
        ----------
        X : ndarray of shape (n_items, n_features)
        codes : ndarray of int of shape (n_items,), optional
            Class index per item to group by (-1: left out); default the full-cosine argmax.
        norms : ndarray of shape (n_items,), optional
            The rows' norms, when the caller has them.
        """
        return self._statistics(X, codes, norms)

    def fit_statistics(self, stats):
        """Fit from the sum of :meth:`statistics` over all batches (after :meth:`start`)."""
        self._fit_stats(stats)
        return self

    def _statistics(self, X, codes=None, norms=None):
        C = self.class_embeddings_.shape[0]
        stats = GroupStats.empty(X.shape[1])
        for rows in row_chunks(X.shape[0], max(C, X.shape[1])):
            chunk = X[rows]
            n = _norms(chunk) if norms is None else norms[rows]
            cos = self._cosines(chunk, n)
            top = cos.argmax(axis=1) if codes is None else codes[rows]
            keep = top >= 0
            top_cos = cos[np.arange(top.size), np.maximum(top, 0)]
            if self.cos_min is not None:
                keep &= top_cos >= self.cos_min
            stats = stats + GroupStats.from_rows(chunk, np.where(keep, top, -1), n)
            if self.diff_min > 0:
                close = (top_cos[:, None] - cos) < self.diff_min
                close[np.arange(top.size), np.maximum(top, 0)] = False
                close &= keep[:, None]
                item, other = np.nonzero(close)
                if item.size:
                    stats = stats + GroupStats.from_rows(chunk[item], C + top[item] * C + other, n[item])
        return stats

    def _fit_stats(self, stats):
        self.stats_ = stats
        self._select_dims()

    def _cosines(self, chunk, norms):
        T = self.class_embeddings_.astype(chunk.dtype, copy=False)
        return (chunk @ T.T) / norms[:, None].astype(chunk.dtype, copy=False)

    def _select_dims(self):
        T = self.class_embeddings_
        C, D = T.shape
        k = min(self.k, D)
        a, b = np.triu_indices(C, 1)
        n_pairs = a.size
        self.pair_dims_ = np.full((n_pairs, k), -1, dtype=np.int64)
        self.pair_weights_ = np.zeros((n_pairs, k), dtype=np.float32)
        self.pair_scales_ = np.zeros((n_pairs, 2))
        self.pair_offsets_ = np.zeros(n_pairs)
        self.fallback_pairs_ = np.zeros(n_pairs, dtype=bool)
        match = self.match or "cosine"
        for rows in row_chunks(n_pairs, 16 * D):
            pa, pb = a[rows], b[rows]
            n_a, s_a, ss_a = self._side_stats(pa, pb)
            n_b, s_b, ss_b = self._side_stats(pb, pa)
            fallback = np.minimum(n_a, n_b) < self.min_count
            dims = top_k_dims(cross_ratio_from_stats(n_a, s_a, ss_a, n_b, s_b, ss_b), k)
            Ta = np.take_along_axis(T[pa], dims, axis=1)
            Tb = np.take_along_axis(T[pb], dims, axis=1)
            w = Ta / _safe_norm(Ta) - Tb / _safe_norm(Tb)
            if match != "cosine":
                scales, offsets = self._match_scales(match, pa, pb, dims, w, (n_a, s_a, ss_a), (n_b, s_b, ss_b))
                self.pair_scales_[rows] = np.where(fallback[:, None], 0.0, scales)
                self.pair_offsets_[rows] = np.where(fallback, 0.0, offsets)
            dims[fallback] = -1
            w[fallback] = 0
            self.pair_dims_[rows] = dims
            self.pair_weights_[rows] = w
            self.fallback_pairs_[rows] = fallback
        self.n_fallback_pairs_ = int(self.fallback_pairs_.sum())

    def _match_scales(self, match, pa, pb, dims, w, stats_a, stats_b):
        """``(alpha, beta)`` and the threshold of each pair's match score (see ``match``)."""
        (n_a, s_a, ss_a), (n_b, s_b, ss_b) = stats_a, stats_b
        # The statistics hold normalised rows, so a group's mean score is its mean row's score.
        mean_a, mean_b = s_a / np.maximum(n_a, 1)[:, None], s_b / np.maximum(n_b, 1)[:, None]
        sel = lambda M: np.take_along_axis(M, dims, axis=1)  # noqa: E731
        p_a, p_b = np.einsum("ij,ij->i", sel(mean_a), w), np.einsum("ij,ij->i", sel(mean_b), w)
        theta_p = (p_a + p_b) / 2
        if match == "midpoint":
            return np.column_stack([np.zeros_like(theta_p), np.ones_like(theta_p)]), theta_p
        T = self.class_embeddings_
        v = T[pa] - T[pb]
        f_a, f_b = np.einsum("ij,ij->i", mean_a, v), np.einsum("ij,ij->i", mean_b, v)
        n = np.maximum(n_a + n_b, 1)[:, None]
        var = (np.maximum(ss_a - n_a[:, None] * mean_a**2, 0) + np.maximum(ss_b - n_b[:, None] * mean_b**2, 0)) / n
        # Both scores are projections of unit rows on v and w, so a variance below float32 resolution
        # at that scale (identical items) is noise; the floor keeps the weights finite.
        w64 = w.astype(np.float64)
        eps = np.finfo(np.float32).eps
        var_f = np.maximum(np.einsum("ij,ij->i", v**2, var), eps * np.einsum("ij,ij->i", v, v))
        var_p = np.maximum(np.einsum("ij,ij->i", w64**2, sel(var)), eps * np.einsum("ij,ij->i", w64, w64))
        alpha = (f_a - f_b) / np.maximum(var_f, np.finfo(np.float64).tiny)
        beta = (p_a - p_b) / np.maximum(var_p, np.finfo(np.float64).tiny)
        return np.column_stack([alpha, beta]), alpha * (f_a + f_b) / 2 + beta * theta_p

    def _side_stats(self, own, other):
        """Statistics of class ``own``'s confident items minus those the pair's diff filter drops."""
        C = self.class_embeddings_.shape[0]
        n, s, ss = self.stats_.lookup(own)
        n_x, s_x, ss_x = self.stats_.lookup(C + own * C + other)
        return n - n_x, s - s_x, ss - ss_x

    # --------------------------------------------------------------- predicting
    def decide(self, X):
        """Bracket winner, its confidence and the cosine baseline for every item, in one pass.

        Returns
        -------
        Decision
        """
        check_is_fitted(self)
        return self._decide(self._check_X(X))

    def _check_X(self, X):
        return validate_data(self, X, reset=False, dtype=[np.float32, np.float64])

    def _decide(self, X, norms=None):
        """:meth:`decide` for trusted ``X`` (see :meth:`statistics`)."""
        C = self.class_embeddings_.shape[0]
        m = C if self.candidates is None else min(self.candidates, C)
        orders = bracket_orders(m, np.random.default_rng(self.seed))
        n = X.shape[0]
        out = {f: np.empty(n, dtype) for f, dtype in _DECISION_DTYPES.items()}
        n_pairs, k = self.pair_dims_.shape
        n_matches = m - 1 if self.tournament == "bracket" else m * (m - 1) // 2
        # Scoring every pair with one matrix product (beside the class cosines) beats gathering each
        # match's dimensions while the pairs are few.
        dense = n_pairs * X.shape[1] <= _GATHER_COST * n_matches * k
        seed_match = self.match in (None, "cosine")
        W = np.vstack([self.class_embeddings_, self._dense_weights()]).astype(X.dtype) if dense else None
        width = max(C, X.shape[1], C + n_pairs if dense else max(m, n_matches) * k)
        for rows in row_chunks(n, width):
            chunk = X[rows]
            nrm = _norms(chunk) if norms is None else norms[rows]
            inv = (1 / nrm).astype(X.dtype)[:, None]
            if dense:
                scores = chunk @ W.T
                cos = scores[:, :C] * inv
                pair_scores = scores[:, C:]
                if not seed_match:
                    pair_scores = pair_scores * inv - self.pair_offsets_.astype(X.dtype)
                play = _lookup_play(pair_scores, C)
            else:
                cos = self._cosines(chunk, nrm)
                play = lambda r, a, b: self._margins(chunk, nrm, cos, r, a, b) >= 0  # noqa: E731
            cands = _top_candidates(cos, m)
            if self.tournament == "bracket":
                winner, runner_up = run_bracket(cands, play, orders)
            else:
                winner, runner_up = run_round_robin(cands, play, np.take_along_axis(cos, cands, axis=1))
            every = np.arange(winner.size)
            out["pred"][rows] = winner
            out["confidence"][rows] = class_probability(cos, winner)
            if dense:
                final = pair_index(winner, runner_up, C)
                score = pair_scores[every, final]
                if seed_match:
                    # The seed's margin divides by |x_S|, the norm on the final pair's dimensions.
                    xs = np.take_along_axis(chunk, np.maximum(self.pair_dims_[final], 0), axis=1)
                    score = score / np.maximum(np.sqrt(np.einsum("ij,ij->i", xs, xs)), np.finfo(np.float32).tiny)
                out["margin"][rows] = self._signed(score, cos, every, winner, runner_up, final)
            else:
                out["margin"][rows] = self._margins(chunk, nrm, cos, every, winner, runner_up)
            out["baseline_pred"][rows], out["baseline_top_cos"][rows], out["baseline_margin"][rows] = (
                _top_two(cos)
            )
        return Decision(**out)

    def _dense_weights(self):
        """Pair weights scattered to full width: row p scores pair p as ``x @ W[p]``: the seed's margin
        up to a positive factor, or ``|x|`` times the match score before its threshold; fallback pairs
        use the full class embeddings."""
        T = self.class_embeddings_
        a, b = np.triu_indices(T.shape[0], 1)
        W = T[a] - T[b]
        keep = ~self.fallback_pairs_
        selected = np.zeros((int(keep.sum()), T.shape[1]))
        np.put_along_axis(selected, self.pair_dims_[keep], self.pair_weights_[keep], axis=1)
        if self.match not in (None, "cosine"):
            alpha, beta = self.pair_scales_[keep].T
            selected = alpha[:, None] * W[keep] + beta[:, None] * selected
        W[keep] = selected
        return W

    def _margins(self, chunk, norms, cos, rows, a, b):
        """Each match's score for ``a`` over ``b`` (see ``match``); ties favour the lower class.

        Vectorised over matches: gathers each item's values on its pair's dimensions.
        """
        C = self.class_embeddings_.shape[0]
        p = pair_index(a, b, C)
        dims = self.pair_dims_[p]
        xs = chunk[rows[:, None], np.maximum(dims, 0)]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        if self.match in (None, "cosine"):
            norm = np.maximum(np.sqrt(np.einsum("ij,ij->i", xs, xs)), np.finfo(np.float32).tiny)
            lo_minus_hi = np.einsum("ij,ij->i", xs, self.pair_weights_[p]) / norm
        else:
            alpha, beta = self.pair_scales_[p].T
            full = cos[rows, lo] - cos[rows, hi]
            lo_minus_hi = (alpha * full + beta * np.einsum("ij,ij->i", xs, self.pair_weights_[p]) / norms[rows]
                           - self.pair_offsets_[p])
        return self._signed(lo_minus_hi, cos, rows, a, b, p)

    def _signed(self, lo_minus_hi, cos, rows, a, b, p):
        """Scores of the lower class over the higher as ``a``'s over ``b``, fallback pairs by the full
        cosine; the lower class wins exact ties, so a tie is a (tiny) positive margin for it."""
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        fallback = self.fallback_pairs_[p]
        lo_minus_hi[fallback] = cos[rows[fallback], lo[fallback]] - cos[rows[fallback], hi[fallback]]
        lo_minus_hi = np.where(lo_minus_hi == 0, np.finfo(np.float32).tiny, lo_minus_hi)
        return np.where(a == lo, lo_minus_hi, -lo_minus_hi)

    def pair_margins(self, X):
        """Every pair's match margin for every item (a full round robin, not the bracket).

        Returns
        -------
        ndarray of shape (n_items, n_pairs)
            The match score of ``a`` over ``b`` (see ``match``) for the pair ``a < b`` at column
            ``pair_index(a, b, C)``; fallback pairs score ``cos(x, a) - cos(x, b)``.
        """
        check_is_fitted(self)
        X = self._check_X(X)
        C = self.class_embeddings_.shape[0]
        a, b = np.triu_indices(C, 1)
        out = np.empty((X.shape[0], a.size), dtype=np.float32)
        for rows in row_chunks(X.shape[0], max(a.size * self.pair_dims_.shape[1], X.shape[1])):
            chunk = X[rows]
            norms = _norms(chunk)
            cos = self._cosines(chunk, norms)
            n = cos.shape[0]
            r = np.repeat(np.arange(n), a.size)
            out[rows] = self._margins(chunk, norms, cos, r, np.tile(a, n), np.tile(b, n)).reshape(n, a.size)
        return out

    def predict(self, X):
        """Class of each item by the pairwise bracket.

        Returns
        -------
        ndarray of shape (n_items,)
        """
        pred = self.decide(X).pred
        return self.classes_[pred]

    def predict_baseline(self, X):
        """Class of each item by full-embedding cosine argmax.

        Returns
        -------
        ndarray of shape (n_items,)
        """
        check_is_fitted(self)
        X = self._check_X(X)
        return self.classes_[baseline_scores(X, self.class_embeddings_)[0]]


def _is_unlabeled(y):
    if y.dtype.kind in "iuf":
        return y == UNLABELED
    if y.dtype.kind != "O":
        return np.zeros(y.shape[0], dtype=bool)
    return np.array([isinstance(v, (int, np.integer)) and v == UNLABELED for v in y.tolist()], dtype=bool)


def _labelled(y):
    y = np.asarray(y)
    return y[~_is_unlabeled(y)]


def _class_means(stats, classes):
    """Normalised mean direction of each class's items (keys ``0..len(classes)-1``)."""
    counts, sums = stats.dense(len(classes))
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(f"class {classes[empty[0]]!r} has no items; give class_embeddings")
    return l2_normalize(sums, name="class means")


def _norms(X):
    """Row norms, with 1 for all-zero rows: as in ``sklearn.preprocessing.normalize``, a row with no
    direction stays zero, so its cosine to every class is 0."""
    norms = row_norms(X)
    norms[norms == 0] = 1
    return norms


def check_classes(class_embeddings, class_names, n_features):
    """Validate class embeddings (and names) for ``n_features``-wide items.

    Returns
    -------
    class_embeddings : ndarray of shape (n_classes, n_features)
        L2-normalised, float64.
    classes : ndarray of shape (n_classes,)
        ``class_names``, or ``0..n_classes-1``.
    """
    T = check_array(class_embeddings, dtype=np.float64, input_name="class_embeddings")
    if T.shape[0] < 2:
        raise ValueError(f"class_embeddings needs at least 2 classes; got {T.shape[0]} class")
    if T.shape[1] != n_features:
        raise ValueError(f"class_embeddings has {T.shape[1]} features, but X has {n_features} features")
    if class_names is None:
        return l2_normalize(T, name="class_embeddings"), np.arange(T.shape[0])
    classes = np.asarray(class_names)
    if classes.shape != (T.shape[0],):
        raise ValueError(f"class_names has {classes.size} names for {T.shape[0]} class embeddings")
    if np.unique(classes).size != classes.size:
        raise ValueError("class_names has duplicates")
    return l2_normalize(T, name="class_embeddings"), classes


def baseline_scores(X, class_embeddings, norms=None, *, probability=False):
    """Full-embedding cosine baseline: argmax class, top cosine and top-minus-second margin.

    ``X`` is used as given (no copy); rows need not be normalised. The class embeddings must be.

    Returns
    -------
    pred : ndarray of shape (n_items,)
    top_cos, margin : ndarray of shape (n_items,)
    probability : ndarray of shape (n_items,)
        With ``probability=True``: :func:`class_probability` of the argmax.

    Examples
    --------
    >>> pred, top, margin = baseline_scores(np.array([[2.0, 0.0], [0.0, 3.0]]), np.eye(2))
    >>> pred.tolist(), top.tolist(), margin.tolist()
    ([0, 1], [1.0, 1.0], [1.0, 1.0])
    """
    n = X.shape[0]
    pred = np.empty(n, np.int64)
    top = np.empty(n, np.float32)
    margin = np.empty(n, np.float32)
    share = np.empty(n, np.float32)
    T = np.asarray(class_embeddings, dtype=X.dtype)
    for rows in row_chunks(n, max(T.shape[0], X.shape[1])):
        chunk = X[rows]
        nrm = _norms(chunk) if norms is None else norms[rows]
        cos = (chunk @ T.T) / nrm[:, None].astype(X.dtype, copy=False)
        pred[rows], top[rows], margin[rows] = _top_two(cos)
        if probability:
            share[rows] = class_probability(cos, pred[rows])
    return (pred, top, margin, share) if probability else (pred, top, margin)


def class_probability(cos, pred):
    """``softmax(cos_i / sd_i)[pred_i]`` per item: the predicted class's share of a softmax over the
    item's cosines to the classes, each in units of their spread across the classes.

    Dividing by the item's own spread makes the number independent of the embedding model's cosine
    scale (CLIP's image-text cosines spread over a few hundredths, text-text over tenths), so it is
    comparable across models, views and methods; it is not calibrated against labels.

    Examples
    --------
    >>> [round(float(p), 3) for p in class_probability(np.array([[0.3, 0.1], [0.2, 0.2]]), np.array([0, 1]))]
    [0.881, 0.5]
    """
    spread = cos.std(axis=1, keepdims=True)
    logits = cos / np.where(spread > 0, spread, 1)
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return (weights[np.arange(cos.shape[0]), pred] / weights.sum(axis=1)).astype(np.float32)


def _top_two(cos):
    """Argmax, top value and top-minus-second margin per row."""
    pred = cos.argmax(axis=1)
    top = cos[np.arange(cos.shape[0]), pred]
    return pred, top, top - np.partition(cos, -2, axis=1)[:, -2]


def _top_candidates(cos, m):
    """Each row's bracket slots: all classes in index order, or the top-``m`` by cosine, best first."""
    n, C = cos.shape
    if m == C:
        return np.broadcast_to(np.arange(C), (n, C))
    top = np.argpartition(-cos, m - 1, axis=1)[:, :m]
    order = np.argsort(-np.take_along_axis(cos, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _lookup_play(pair_scores, n_classes):
    """A match function over precomputed per-pair scores (the lower class wins at ``score >= 0``)."""

    def play(rows, a, b):
        lo_wins = pair_scores[rows, pair_index(a, b, n_classes)] >= 0
        return lo_wins == (a < b)

    return play


_DECISION_DTYPES = {
    "pred": np.int64,
    "margin": np.float32,
    "confidence": np.float32,
    "baseline_pred": np.int64,
    "baseline_top_cos": np.float32,
    "baseline_margin": np.float32,
}


def _safe_norm(M):
    return np.maximum(np.linalg.norm(M, axis=1, keepdims=True), np.finfo(np.float64).tiny)
