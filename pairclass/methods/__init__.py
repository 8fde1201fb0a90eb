"""Classification methods, each a plan of passes over the items (see :mod:`.passes`).

:data:`METHODS` is the registry, the way open_clip keeps its model configs: a method's name maps to
its plan and to what the pipeline needs to know about it. Every plan is built from a
:class:`~.pairwise.Context`: the estimator whose parameters are the settings, the class
embeddings, the views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import InputError
from . import mixture, pairwise, stata
from .pairwise import Context
from .passes import Pass, Predict, Rows, merge
from .prototypes import PROTO_PRIORS, recognised_classes, refine_class_embeddings

__all__ = [
    "METHODS", "DEFAULT_METHOD", "Method", "Context", "Pass", "Predict", "Rows", "merge", "PROTO_PRIORS",
    "recognised_classes", "refine_class_embeddings", "resolve_methods",
]


@dataclass(frozen=True)
class Method:
    """A registry entry.

    Attributes
    ----------
    plan : callable
        ``plan(context)``: a generator of passes that returns the last scan's :class:`Predict`.
    summary : str
        One line for help texts.
    max_items : int or None
        Items the method can hold in memory; None streams any number.
    scans : int
        How many times the plan reads the items with default settings and two views (the pipeline
        keeps a view cache only when some plan reads them three times or more: writing it costs
        more than one re-read).
    max_items : int or None
        Items the method can hold in memory; None streams any number.
    pairs : bool
        Whether its predictions come from pairwise classifiers (it reports fallback pairs).
    """

    plan: Callable
    summary: str
    scans: int
    max_items: int | None = None
    pairs: bool = True


METHODS = {
    "baseline": Method(pairwise.baseline, "full-embedding cosine argmax", 1, pairs=False),
    "pairwise": Method(pairwise.pairwise, "the seed: a bracket of matches on each pair's dimensions", 2),
    "proto": Method(pairwise.proto, "pairwise, class embeddings moved towards their items, pairwise again", 4),
    "cotrain": Method(pairwise.cotrain, "proto, learning only from the items on which the two views (one view: its "
                       "bracket and the cosine) agree", 5),
    "joint": Method(pairwise.joint, "proto on both views side by side: one label per item", 4),
    "transclip": Method(mixture.transclip, "TransCLIP-ZS, the transductive peer (in memory)", 2,
                        max_items=mixture.IN_MEMORY_LIMIT, pairs=False),
    "cotrain_transclip": Method(mixture.cotrain_transclip, "TransCLIP-ZS anchored to cotrain's class embeddings "
                                "(in memory)", 6, max_items=mixture.IN_MEMORY_LIMIT, pairs=False),
    "cotrain_gmm": Method(mixture.cotrain_gmm, "TransCLIP's mixture without its graph, anchored to cotrain's "
                          "class embeddings", 17, pairs=False),
    "stata": Method(stata.stata, "StatA, the robustness peer: a mixture whose class statistics are anchored to the "
                    "text", 3 + stata.N_ITER, pairs=False),
}
# Why cotrain is the default (docs/methods.md, "Robust on partial batches"): on StatA's protocol
# (scripts/bench_robust.py) it is the only method whose worst flipkart draw gains 7+ points in every
# setting, it gains on average in every setting of both sets (fashion-13 +0.017 to +0.047, with the one-view
# prior of prototypes.resolve_prior), keeps +20 points on full flipkart and +5.5 / +5.4 on fashion-13 and
# fashion-sub, beats StatA in every setting of both sets, and reads the items 5 times. What bounds its worst
# fashion-13 draws (-3.2, -3.4, -3.1 points; scripts/bench_robust_rules.py): with the batch's classes known it
# never loses to the baseline on any batch, so its losses come from absent classes the zero-shot rule fills
# (Sports Shoes in a batch of Casual Shoes); and a zero-shot split of one class is as separate in the
# embeddings as two present classes, so no statistic of the batch tells them apart. cotrain_gmm keeps every
# fashion-13 draw above -3 points but gains 1.4 / 3.2 points on the full one-view sets and reads 17 times.
DEFAULT_METHOD = "cotrain"


def resolve_methods(methods):
    """The methods to run, in registry order, the baseline always first (``all``: every method).

    Examples
    --------
    >>> resolve_methods(["joint", "pairwise"])
    ['baseline', 'pairwise', 'joint']
    >>> resolve_methods(["baseline"])
    ['baseline']
    """
    asked = set(METHODS) if "all" in methods else set(methods)
    unknown = sorted(asked - set(METHODS))
    if unknown:
        raise InputError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} or all")
    return [m for m in METHODS if m in asked or m == "baseline"]
