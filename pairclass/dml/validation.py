"""Validation on held-out classes: which training classes to hold out, and the scores a head is
chosen by (every validation item queries all the others, as on the unseen test classes)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..metrics import map_at_r, recall_at_k

__all__ = ["DEFAULT_VAL_CLASSES_FRAC", "hold_out_classes", "validation_scores"]

DEFAULT_VAL_CLASSES_FRAC = 0.2


def hold_out_classes(n_classes, frac, rng):
    """Codes of the classes held out for validation: ``round(frac * n_classes)`` of them, at least 2.

    Parameters
    ----------
    n_classes : int
    frac : float
        In ``[0, 1)``; 0 holds out none.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int, sorted

    Raises
    ------
    InputError
        ``frac`` out of range, or fewer than 2 classes would be left to train on.

    Examples
    --------
    >>> hold_out_classes(10, 0.2, np.random.default_rng(0)).size
    2
    >>> hold_out_classes(10, 0.0, np.random.default_rng(0)).size
    0
    """
    if not 0 <= frac < 1:
        raise InputError(f"val_classes_frac must be at least 0 and below 1, got {frac}")
    if frac == 0:
        return np.empty(0, dtype=np.int64)
    n_val = max(2, round(frac * n_classes))
    if n_classes - n_val < 2:
        raise InputError(
            f"holding out {n_val} of {n_classes} classes for validation leaves fewer than 2 to train on; "
            "give more classes or val_classes_frac 0 (no validation)"
        )
    return np.sort(rng.choice(n_classes, size=n_val, replace=False))


def validation_scores(Z, labels):
    """Recall@1 and MAP@R of the L2-normalised rows ``Z``.

    Examples
    --------
    >>> Z = np.array([[1.0, 0.0], [0.96, 0.28], [0.0, 1.0], [0.28, 0.96]])
    >>> validation_scores(Z, [0, 0, 1, 1])
    {'recall_at_1': 1.0, 'map_at_r': 1.0}
    """
    Z = np.asarray(Z, dtype=np.float32)
    return {"recall_at_1": recall_at_k(Z, labels, ks=(1,))[1], "map_at_r": map_at_r(Z, labels)}
