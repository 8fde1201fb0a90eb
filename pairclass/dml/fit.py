"""One head, fitted and chosen: hold out validation classes, train on the others, keep the best epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from .losses import LOSSES, build_loss
from .model import ProjectionHead
from .train import DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_PATIENCE, TrainHistory, train_encoder
from .validation import DEFAULT_VAL_CLASSES_FRAC, hold_out_classes

__all__ = ["MAX_SEED", "FittedHead", "check_options", "fit_head"]

# What both numpy's and torch's generators accept.
MAX_SEED = 2**63 - 1


def check_options(**options):
    """Raise for any of :func:`fit_head`'s scalar options given out of range (the loss weights, the
    head's sizes and the validation share are checked where they are used).

    Raises
    ------
    InputError
        An unknown loss, a count below 1, a learning rate that is not positive, or a seed outside
        ``0..MAX_SEED``.

    Examples
    --------
    >>> check_options(epochs=5, seed=-1)
    Traceback (most recent call last):
    ...
    pairclass.errors.InputError: seed must be from 0 to 9223372036854775807, got -1
    """
    for name, value in options.items():
        if name == "loss" and value not in LOSSES:
            raise InputError(f"unknown loss {value!r}; choose one of {', '.join(LOSSES)}")
        if name in ("epochs", "batch_size", "patience") and value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
        if name == "lr" and not value > 0:
            raise InputError(f"lr must be positive, got {value}")
        if name == "seed" and not 0 <= value <= MAX_SEED:
            raise InputError(f"seed must be from 0 to {MAX_SEED}, got {value}")


@dataclass
class FittedHead:
    """What :func:`fit_head` returns.

    Attributes
    ----------
    model : ProjectionHead
        At the chosen epoch, on the training device, in eval mode.
    history : TrainHistory
    classes : list of str
        Classes trained on.
    val_classes : list of str
        Classes held out for validation (empty without validation).
    n_items, n_val_items : int
    settings : dict
        The options it was fitted with (loss, weights, sizes, optimisation, validation, seed).
    """

    model: ProjectionHead
    history: TrainHistory
    classes: list
    val_classes: list
    n_items: int
    n_val_items: int
    settings: dict

    @property
    def improved(self):
        """Whether the head is a trained one (always, without validation) rather than the identity."""
        return self.history.best_epoch > 0

    def validation(self):
        """JSON-ready validation record, or None without validation.

        ``classes``, ``n_items``, ``raw`` (the untrained head's scores: the raw embeddings'),
        ``curve`` (per epoch from 0), ``best_epoch`` and ``improved``.
        """
        curve = self.history.curve
        if not curve:
            return None
        return {
            "classes": list(self.val_classes), "n_items": self.n_val_items,
            "raw": {k: v for k, v in curve[0].items() if k != "epoch"}, "curve": [dict(c) for c in curve],
            "best_epoch": self.history.best_epoch, "improved": self.improved,
        }


def fit_head(
    X,
    labels,
    *,
    loss="proxy_anchor",
    so_weight=0.0,
    tcm_weight=0.0,
    dim=None,
    hidden=512,
    epochs=DEFAULT_EPOCHS,
    batch_size=256,
    lr=DEFAULT_LR,
    patience=DEFAULT_PATIENCE,
    val_classes_frac=DEFAULT_VAL_CLASSES_FRAC,
    device="cpu",
    seed=0,
    callback=None,
):
    """Train a :class:`ProjectionHead` on ``X``, chosen on classes held out of its training.

    A seeded ``val_classes_frac`` of the classes (see :func:`hold_out_classes`) is held out; the
    head trains on the others and ends at its best epoch on the held-out ones, which is epoch 0,
    the identity, when no epoch beats the raw embeddings there.

    Parameters
    ----------
    X : ndarray of shape (n_items, n_features)
    labels : array-like of shape (n_items,)
    loss, so_weight, tcm_weight
        See :func:`~pairclass.dml.losses.build_loss`.
    dim, hidden
        See :class:`ProjectionHead`.
    epochs, batch_size, lr, patience, device, callback
        See :func:`~pairclass.dml.train.train_encoder`.
    val_classes_frac : float, default=DEFAULT_VAL_CLASSES_FRAC
        Share of the classes held out for validation; 0 trains on all and keeps the last epoch.
    seed : int
        Seeds the held-out classes, the weights, the proxies and the batches.

    Returns
    -------
    FittedHead

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6)).astype(np.float32)
    >>> fit = fit_head(X, np.repeat(list("abcde"), 8), hidden=0, epochs=1, val_classes_frac=0.4)
    >>> fit.classes, fit.val_classes, fit.n_items
    (['a', 'b', 'c'], ['d', 'e'], 24)
    """
    settings = {
        "loss": loss, "so_weight": so_weight, "tcm_weight": tcm_weight, "dim": dim, "hidden": hidden,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience,
        "val_classes_frac": val_classes_frac, "seed": seed,
    }
    check_options(**settings)
    names, codes = np.unique(np.asarray(labels), return_inverse=True)
    held = hold_out_classes(names.size, val_classes_frac, np.random.default_rng(seed))
    val = np.isin(codes, held)
    train_names, train_codes = np.unique(codes[~val], return_inverse=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ProjectionHead(X.shape[1], dim=dim, hidden=hidden)
        criterion = build_loss(loss, train_names.size, model.dim, so_weight=so_weight, tcm_weight=tcm_weight)
    history = train_encoder(
        model, criterion, X[~val], train_codes, epochs=epochs, batch_size=batch_size, lr=lr,
        validation=(X[val], codes[val]) if held.size else None, patience=patience,
        device=device, seed=seed, callback=callback,
    )
    return FittedHead(
        model=model, history=history, classes=[str(n) for n in names[train_names]],
        val_classes=[str(n) for n in names[held]], n_items=int((~val).sum()), n_val_items=int(val.sum()),
        settings={**settings, "dim": model.dim},
    )
