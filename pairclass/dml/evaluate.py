"""Retrieval metrics of raw embeddings and of an encoder's output, on the same items."""

from __future__ import annotations

import numpy as np

from ..classify import l2_normalize
from ..metrics import map_at_r, opis, recall_at_k

__all__ = ["RECALL_KS", "evaluate_encoder", "retrieval_metrics"]

RECALL_KS = (1, 10, 100, 1000)


def retrieval_metrics(X, labels):
    """Recall@1/10/100/1000, MAP@R and OPIS of ``X`` (rows are L2-normalised here).

    Returns
    -------
    dict
        ``recall_at_1``, ``recall_at_10``, ``recall_at_100``, ``recall_at_1000``, ``map_at_r``, ``opis``.

    Examples
    --------
    >>> X = np.array([[1.0, 0.1], [1.0, 0.2], [0.1, 1.0], [0.2, 1.0]])
    >>> m = retrieval_metrics(X, ["a", "a", "b", "b"])
    >>> m["recall_at_1"], m["map_at_r"]
    (1.0, 1.0)
    """
    X = l2_normalize(np.asarray(X, dtype=np.float32))
    recalls = recall_at_k(X, labels, RECALL_KS)
    out = {f"recall_at_{k}": recalls[k] for k in RECALL_KS}
    out["map_at_r"] = map_at_r(X, labels)
    out["opis"] = opis(X, labels)
    return out


def evaluate_encoder(encoder, X, labels):
    """The same metrics on the raw embeddings and on ``encoder.transform(X)``.

    Returns
    -------
    dict
        ``{"raw": metrics, "encoder": metrics}`` (see :func:`retrieval_metrics`).
    """
    return {"raw": retrieval_metrics(X, labels), "encoder": retrieval_metrics(encoder.transform(X), labels)}
