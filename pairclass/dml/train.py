"""The training loop: class-grouped mini-batches, AdamW, proxies at a higher learning rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..devices import resolve_device
from .validation import validation_scores

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_LR", "DEFAULT_PATIENCE", "TrainHistory", "class_batches", "resolve_device",
           "train_encoder"]

# Chosen on three real splits (docs/dml.md): the only learning rate of 1e-4, 3e-4 and 1e-3 that
# never lowered unseen-class R@1; with early stopping, most epochs is a cap that small sets reach.
DEFAULT_EPOCHS = 20
DEFAULT_LR = 3e-4
DEFAULT_PATIENCE = 3


@dataclass
class TrainHistory:
    """What :func:`train_encoder` recorded.

    Attributes
    ----------
    epoch_loss : list of float
        Mean batch loss per epoch run.
    curve : list of dict
        With validation: per epoch from 0 (the untrained head) on, ``epoch``, ``recall_at_1`` and
        ``map_at_r`` on the validation classes. Empty without validation.
    best_epoch : int
        The epoch whose weights the model ends with: the best on validation (0 keeps the untrained
        head), or the last epoch without validation.
    n_steps : int
    seconds : float
        Wall-clock time, validation included.
    device : str
    """

    epoch_loss: list = field(default_factory=list)
    curve: list = field(default_factory=list)
    best_epoch: int = 0
    n_steps: int = 0
    seconds: float = 0.0
    device: str = "cpu"


def class_batches(labels, batch_size, m_per_class, rng):
    """One epoch of batches: each anchor (in a random order) brings ``m_per_class - 1`` other
    items of its class, so every batch holds positive pairs.

    Returns
    -------
    list of ndarray
        Item indices per batch; every item is an anchor once.

    Examples
    --------
    >>> batches = class_batches(np.array([0, 0, 1, 1, 1, 2]), 4, 2, np.random.default_rng(0))
    >>> len(batches), sorted(len(b) for b in batches)
    (3, [4, 4, 4])
    """
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], labels)
    sizes = np.bincount(labels)[labels]
    anchors = rng.permutation(labels.size)
    per_batch = max(1, batch_size // m_per_class)
    batches = []
    for chunk in np.array_split(anchors, -(-labels.size // per_batch)):
        mates = starts[chunk, None] + rng.integers(0, sizes[chunk, None], size=(chunk.size, m_per_class - 1))
        batches.append(np.concatenate([chunk[:, None], order[mates]], axis=1).ravel())
    return batches


def train_encoder(
    model,
    loss,
    X,
    labels,
    *,
    epochs=DEFAULT_EPOCHS,
    batch_size=256,
    m_per_class=4,
    lr=DEFAULT_LR,
    proxy_lr_mult=100.0,
    weight_decay=1e-4,
    validation=None,
    patience=DEFAULT_PATIENCE,
    device="cpu",
    seed=0,
    callback=None,
):
    """Train ``model`` (and the proxies inside ``loss``) on frozen embeddings.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(batch, n_features)`` to L2-normalised embeddings.
    loss : torch.nn.Module
        ``loss(embeddings, labels)``; its parameters (proxies) train at ``lr * proxy_lr_mult``,
        the Proxy Anchor recipe.
    X : ndarray of shape (n_items, n_features)
    labels : ndarray of shape (n_items,)
        Integer class codes ``0..n_classes-1``.
    epochs, batch_size, m_per_class, lr, proxy_lr_mult, weight_decay
        Optimisation settings (AdamW with a cosine learning-rate schedule over ``epochs``).
    validation : tuple (X_val, labels_val), optional
        Items of classes held out of training. The model is scored on them (see
        :func:`~pairclass.dml.validation.validation_scores`) before training and after every epoch,
        ends with the best epoch's weights, and stops after ``patience`` epochs without a better one.
    patience : int, default=DEFAULT_PATIENCE
    device : str or torch.device
    seed : int
        Seeds the batch order.
    callback : callable, optional
        ``callback(step, n_steps, loss)`` after every step.

    Returns
    -------
    TrainHistory
    """
    device = resolve_device(device) if isinstance(device, str) else device
    rng = np.random.default_rng(seed)
    model.to(device)
    loss.to(device).train()
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
    y_t = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    groups = [{"params": list(model.parameters()), "lr": lr}]
    proxies = [p for p in loss.parameters() if p.requires_grad]
    if proxies:
        groups.append({"params": proxies, "lr": lr * proxy_lr_mult})
    optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay)
    steps_per_epoch = -(-len(y_t) // max(1, batch_size // m_per_class))
    n_steps = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_steps)
    history = TrainHistory(device=str(device))
    start = time.perf_counter()
    best = None if validation is None else _Best(model, validation, device, history)
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        batches = class_batches(labels, batch_size, m_per_class, rng)
        for batch in batches:
            idx = torch.as_tensor(batch, device=device)
            value = loss(model(X_t[idx]), y_t[idx])
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            scheduler.step()
            history.n_steps += 1
            value = float(value.detach())
            total += value
            if callback is not None:
                callback(history.n_steps, n_steps, value)
        history.epoch_loss.append(total / len(batches))
        if best is None:
            history.best_epoch = epoch
        elif not best.update(epoch) and epoch - history.best_epoch >= patience:
            break
    if best is not None:
        model.load_state_dict(best.state)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


class _Best:
    """Scores the model on the validation items after each epoch and keeps the best weights."""

    def __init__(self, model, validation, device, history):
        X_val, labels_val = validation
        self.model, self.history = model, history
        self.X = torch.as_tensor(np.asarray(X_val, dtype=np.float32), device=device)
        self.labels = np.asarray(labels_val)
        self.key = None
        self.update(0)

    def update(self, epoch):
        """Score ``epoch``; True (and the weights kept) when it beats every earlier epoch."""
        self.model.eval()
        with torch.inference_mode():
            Z = self.model(self.X).cpu().numpy()
        scores = validation_scores(Z, self.labels)
        self.history.curve.append({"epoch": epoch, **scores})
        key = (scores["recall_at_1"], scores["map_at_r"])
        if self.key is not None and key <= self.key:
            return False
        self.key, self.history.best_epoch = key, epoch
        self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return True
