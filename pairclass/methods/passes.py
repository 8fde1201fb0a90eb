"""What a method's plan asks of the pipeline: passes over the items, and the last pass's predictions.

A plan is a generator. Each ``yield Pass(...)`` asks for one scan of the items: the pipeline calls
``pass_.map(batch)`` on every batch (in parallel, so ``map`` must not change shared state), adds the
results with :func:`merge`, and sends the sum back into the generator. The generator finally returns
a :class:`Predict`, whose ``map`` turns each batch into predictions during the last scan. Between
passes a plan holds only small state (class statistics, fitted classifiers), so a method streams
over any number of items, and an engine only needs the map functions and ``+``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Pass", "Predict", "Rows", "merge"]


@dataclass(frozen=True)
class Pass:
    """One scan: ``map(batch)`` returns statistics that add with ``+`` (dicts and tuples of them too)."""

    label: str
    map: Callable[[Any], Any]


@dataclass(frozen=True)
class Predict:
    """The last scan: ``map(batch)`` returns ``{input: {"pred": ..., "confidence": ..., ...}}``, one
    array per field of length ``batch.n``.

    Attributes
    ----------
    diagnostics : dict
        ``{input: {"n_fallback_pairs": int}}`` for the classifiers that made the predictions.
    joint : bool
        One label per item for all views (the single input is named ``"joint"``).
    classifiers : dict
        ``{input: PairwiseClassifier}`` that made the predictions, for reports.
    """

    map: Callable[[Any], dict]
    diagnostics: dict = field(default_factory=dict)
    joint: bool = False
    classifiers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rows:
    """Batches' arrays kept whole, for the methods that need every item at once; ``+`` concatenates
    in item order (by each batch's first row)."""

    parts: tuple

    @classmethod
    def of(cls, start, arrays):
        return cls(((start, arrays),))

    def __add__(self, other):
        return Rows(self.parts + other.parts)

    def stacked(self):
        """``{name: ndarray}``: every batch's rows, in item order."""
        parts = sorted(self.parts, key=lambda part: part[0])
        return {name: np.concatenate([arrays[name] for _, arrays in parts]) for name in parts[0][1]}


def merge(a, b):
    """``a + b`` for statistics, dicts and tuples of them elementwise (None is the empty sum).

    Examples
    --------
    >>> merge({"v": (1, np.array([1, 2]))}, {"v": (2, np.array([3, 4]))})["v"][1].tolist()
    [4, 6]
    """
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        return {k: merge(a[k], b[k]) for k in a}
    if isinstance(a, tuple) and not isinstance(a, Rows):
        return tuple(merge(x, y) for x, y in zip(a, b))
    return a + b
