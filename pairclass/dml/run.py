"""Library entry points behind ``pairclass train`` and ``pairclass evaluate-encoder``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classify import PairwiseClassifier
from ..errors import InputError, input_error
from ..io import DEFAULT_ID_COL, DEFAULT_VIEWS, read_embeddings, read_lines
from ..classes import load_class_embeddings
from .evaluate import evaluate_encoder
from .io import load_encoder, save_encoder
from .fit import check_options, fit_head
from .train import resolve_device

__all__ = ["TrainResult", "EvaluateResult", "pseudo_labels", "run_train", "run_evaluate_encoder"]


@dataclass
class TrainResult:
    """What ``run_train`` did.

    Attributes
    ----------
    out : Path
        The encoder directory.
    n_items : int
        Items trained on (validation items excluded).
    classes : list of str
        Classes trained on.
    label_source : {"labels", "pseudo"}
        Catalogue labels, or the pairwise classifier's confident predictions.
    loss : str
    train_seconds : float
    epoch_loss : list of float
    device : str
    validation : dict or None
        See :meth:`FittedHead.validation`: the held-out classes, the raw embeddings' scores on them,
        the curve per epoch, the chosen epoch and whether it beat the raw embeddings.
    """

    out: Path
    n_items: int
    classes: list
    label_source: str
    loss: str
    train_seconds: float
    epoch_loss: list = field(default_factory=list)
    device: str = "cpu"
    validation: dict | None = None

    def to_json(self):
        """A JSON-ready summary."""
        return {
            "out": str(self.out), "n_items": self.n_items, "n_classes": len(self.classes),
            "label_source": self.label_source, "loss": self.loss, "train_seconds": self.train_seconds,
            "epoch_loss": list(self.epoch_loss), "device": self.device, "validation": self.validation,
        }


@dataclass
class EvaluateResult:
    """Retrieval metrics of the raw embeddings and of the encoder's output on the same items.

    Attributes
    ----------
    n_items, n_classes : int
    raw, encoder : dict
        ``recall_at_1``, ``recall_at_10``, ``recall_at_100``, ``recall_at_1000``, ``map_at_r``,
        ``opis`` and ``train_seconds`` (0 for the raw embeddings).
    warnings : list of str
    """

    n_items: int
    n_classes: int
    raw: dict
    encoder: dict
    warnings: list = field(default_factory=list)

    def to_json(self):
        """``{"raw": {...}, "encoder": {...}}``."""
        return {"raw": dict(self.raw), "encoder": dict(self.encoder)}


def pseudo_labels(X, classes_path, *, seed=0, metadata=None):
    """Confident pseudo-labels from :class:`PairwiseClassifier`.

    An item keeps its predicted class when the pairwise bracket and the full-cosine baseline agree
    and its confidence is at least the median confidence of the items predicted in that class.

    Returns
    -------
    labels : ndarray of object, shape (n_items,)
    confident : ndarray of bool, shape (n_items,)
    """
    classes = load_class_embeddings(classes_path, X.shape[1], against="the embeddings", metadata=metadata)
    names = np.asarray(classes.names, dtype=object)
    decision = PairwiseClassifier(classes.embeddings, seed=seed).fit(X).decide(X)
    confident = decision.pred == decision.baseline_pred
    for c in np.unique(decision.pred[confident]):
        members = confident & (decision.pred == c)
        confident &= ~members | (decision.margin >= np.median(decision.margin[members]))
    return names[decision.pred], confident


def _select_classes(labels, classes_file, *, data_path, label_col):
    """Mask of the items whose label is listed in ``classes_file`` (all items without one)."""
    if classes_file is None:
        return np.ones(labels.size, dtype=bool)
    wanted = read_lines(classes_file)
    missing = sorted(set(wanted) - set(labels))
    if missing:
        raise input_error(
            f"{len(missing)} class(es) not found in {data_path}: {label_col}, e.g. {missing[0]!r}", path=classes_file
        )
    return np.isin(labels, wanted)


def _need_classes(labels, *, path, column, what):
    n = np.unique(labels).size
    if n < 2:
        raise input_error(f"need at least 2 classes to {what}, got {n}", path=path, column=column)


def run_train(
    embeddings,
    *,
    out,
    label_col=None,
    classes=None,
    view=DEFAULT_VIEWS[0],
    id_col=DEFAULT_ID_COL,
    train_classes=None,
    device="auto",
    seed=0,
    progress=None,
    **options,
):
    """Train a projection head on one view of an embedding file and save it to ``out``.

    Parameters
    ----------
    embeddings : path-like
        SQID-layout parquet.
    out : path-like
        Encoder directory to write (``model.safetensors`` + ``config.json``).
    label_col : str, optional
        Training labels. Without it, ``classes`` is required and the pairwise classifier's
        confident predictions are the labels (see :func:`pseudo_labels`).
    classes : path-like, optional
        Class embeddings (parquet with ``name`` and ``embedding``), for pseudo-labels.
    view : str
        Embedding column.
    train_classes : path-like, optional
        Text file, one class per line: train on those classes only.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    seed : int
        Seeds the pseudo-labels, validation classes, initial weights, proxies and batches.
    progress : callable, optional
        ``progress(step, n_steps, loss)`` after every training step.
    **options
        :func:`fit_head`'s: ``loss``, ``so_weight``, ``tcm_weight``, ``dim``, ``hidden``, ``epochs``,
        ``batch_size``, ``lr``, ``patience``, ``val_classes_frac``; the config records them all.

    Returns
    -------
    TrainResult
    """
    check_options(seed=seed, **options)
    if label_col is None and classes is None:
        raise InputError("give a label column, or class embeddings to train on pseudo-labels")
    torch_device = resolve_device(device)
    data = read_embeddings(embeddings, [view], id_col=id_col, label_col=label_col)
    X = data.views[view]
    if label_col is not None:
        labels, keep = data.labels, np.ones(data.n_items, dtype=bool)
    else:
        labels, keep = pseudo_labels(X, classes, seed=seed, metadata=data.metadata)
    keep &= _select_classes(labels, train_classes, data_path=data.path, label_col=label_col or "pseudo-labels")
    X, labels = X[keep], labels[keep]
    _need_classes(labels, path=data.path, column=label_col, what="train")
    fit = fit_head(X, labels, device=torch_device, seed=seed, callback=progress, **options)
    history = fit.history
    label_source = "labels" if label_col is not None else "pseudo"
    info = {
        "view": view, "label_col": label_col, "label_source": label_source, **fit.settings,
        "n_items": fit.n_items, "classes": fit.classes, "best_epoch": history.best_epoch,
        "train_seconds": history.seconds, "epoch_loss": history.epoch_loss, "validation": fit.validation(),
    }
    save_encoder(fit.model, out, info)
    return TrainResult(
        out=Path(out), n_items=fit.n_items, classes=fit.classes, label_source=label_source,
        loss=fit.settings["loss"], train_seconds=history.seconds, epoch_loss=history.epoch_loss,
        device=history.device, validation=fit.validation(),
    )


def run_evaluate_encoder(embeddings, *, encoder, label_col, view=None, id_col=DEFAULT_ID_COL, test_classes=None):
    """Retrieval metrics (the SOP protocol: every item queries all the others) of the raw
    embeddings and of the encoder's output.

    Parameters
    ----------
    embeddings : path-like
    encoder : path-like
        Encoder directory from :func:`run_train`.
    label_col : str
    view : str, optional
        Embedding column; defaults to the one the encoder was trained on.
    test_classes : path-like, optional
        Text file, one class per line: evaluate on those classes only.

    Returns
    -------
    EvaluateResult
    """
    enc = load_encoder(encoder)
    view = view or enc.config.get("view") or DEFAULT_VIEWS[0]
    data = read_embeddings(embeddings, [view], id_col=id_col, label_col=label_col)
    keep = _select_classes(data.labels, test_classes, data_path=data.path, label_col=label_col)
    X, labels = data.views[view][keep], data.labels[keep]
    _need_classes(labels, path=data.path, column=label_col, what="evaluate")
    evaluated = set(labels)
    validation = enc.config.get("validation") or {}
    seen = evaluated & set(enc.config.get("classes", []) + validation.get("classes", []))
    notes = []
    if seen:
        notes.append(
            f"{len(seen)} of the {len(evaluated)} evaluated classes were seen in training or validation, "
            "so these are not unseen-class scores (pass --test-classes)"
        )
    if validation and not validation.get("improved", True):
        notes.append("this encoder is the identity: no training epoch beat the raw embeddings on its validation classes")
    scores = evaluate_encoder(enc, X, labels)
    raw = {**scores["raw"], "train_seconds": 0.0}
    trained = {**scores["encoder"], "train_seconds": float(enc.config.get("train_seconds", 0.0))}
    return EvaluateResult(int(labels.size), len(evaluated), raw, trained, notes)
