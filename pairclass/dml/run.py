"""Library entry points behind ``pairclass train`` and ``pairclass evaluate-encoder``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..classify import PairwiseClassifier
from ..errors import InputError, input_error
from ..io import DEFAULT_ID_COL, DEFAULT_VIEWS, read_embeddings, read_lines
from ..classes import load_class_embeddings
from .evaluate import evaluate_encoder
from .io import load_encoder, save_encoder
from .losses import LOSSES, build_loss
from .model import ProjectionHead
from .train import resolve_device, train_encoder

__all__ = ["TrainResult", "EvaluateResult", "pseudo_labels", "run_train", "run_evaluate_encoder"]


@dataclass
class TrainResult:
    """What ``run_train`` did.

    Attributes
    ----------
    out : Path
        The encoder directory.
    n_items : int
        Items trained on.
    classes : list of str
    label_source : {"labels", "pseudo"}
        Catalogue labels, or the pairwise classifier's confident predictions.
    loss : str
    train_seconds : float
    epoch_loss : list of float
    device : str
    """

    out: Path
    n_items: int
    classes: list
    label_source: str
    loss: str
    train_seconds: float
    epoch_loss: list = field(default_factory=list)
    device: str = "cpu"

    def to_json(self):
        """A JSON-ready summary."""
        return {
            "out": str(self.out), "n_items": self.n_items, "n_classes": len(self.classes),
            "label_source": self.label_source, "loss": self.loss, "train_seconds": self.train_seconds,
            "epoch_loss": list(self.epoch_loss), "device": self.device,
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


def _check_positive(**values):
    for name, value in values.items():
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")


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
    loss="proxy_anchor",
    so_weight=0.0,
    tcm_weight=0.0,
    dim=256,
    hidden=512,
    epochs=10,
    batch_size=256,
    lr=1e-4,
    device="auto",
    seed=0,
    train_classes=None,
    progress=None,
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
    loss : {"proxy_anchor", "proxy_nca", "soft_triple", "contrastive"}
    so_weight, tcm_weight : float
        Soft Orthogonality and Threshold-Consistent Margin weights (0 leaves them out).
    dim, hidden : int
        Output width and hidden width of the head (``hidden=0``: linear).
    epochs, batch_size, lr : training settings (see :func:`train_encoder`).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    seed : int
        Seeds the initial weights, proxies and batches.
    train_classes : path-like, optional
        Text file, one class per line: train on those classes only.
    progress : callable, optional
        ``progress(step, n_steps, loss)`` after every training step.

    Returns
    -------
    TrainResult
    """
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    _check_positive(dim=dim, epochs=epochs, batch_size=batch_size)
    if hidden < 0:
        raise InputError(f"hidden must be 0 or more, got {hidden}")
    if lr <= 0:
        raise InputError(f"lr must be positive, got {lr}")
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
    names, codes = np.unique(labels, return_inverse=True)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ProjectionHead(X.shape[1], dim=dim, hidden=hidden)
        criterion = build_loss(loss, names.size, dim, so_weight=so_weight, tcm_weight=tcm_weight)
    history = train_encoder(
        model, criterion, X, codes, epochs=epochs, batch_size=batch_size, lr=lr,
        device=torch_device, seed=seed, callback=progress,
    )
    label_source = "labels" if label_col is not None else "pseudo"
    info = {
        "view": view, "label_col": label_col, "label_source": label_source, "loss": loss,
        "so_weight": so_weight, "tcm_weight": tcm_weight, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "seed": seed, "n_items": int(labels.size), "classes": [str(n) for n in names],
        "train_seconds": history.seconds, "epoch_loss": history.epoch_loss,
    }
    save_encoder(model, out, info)
    return TrainResult(
        out=Path(out), n_items=int(labels.size), classes=[str(n) for n in names], label_source=label_source,
        loss=loss, train_seconds=history.seconds, epoch_loss=history.epoch_loss, device=history.device,
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
    seen = evaluated & set(enc.config.get("classes", []))
    notes = []
    if seen:
        notes.append(
            f"{len(seen)} of the {len(evaluated)} evaluated classes were seen in training, "
            "so these are not unseen-class scores (pass --test-classes)"
        )
    scores = evaluate_encoder(enc, X, labels)
    raw = {**scores["raw"], "train_seconds": 0.0}
    trained = {**scores["encoder"], "train_seconds": float(enc.config.get("train_seconds", 0.0))}
    return EvaluateResult(int(labels.size), len(evaluated), raw, trained, notes)
