"""Loss factory: a pytorch-metric-learning base loss, optionally with Soft Orthogonality on its
proxies and the Threshold-Consistent Margin loss added."""

from __future__ import annotations

from pytorch_metric_learning import losses

from ..errors import InputError
from .soft_orthogonality import SoftOrthogonalityRegularizer
from .tcm import DenseTCMLoss, WithTCM

__all__ = ["LOSSES", "PROXY_LOSSES", "build_loss"]

PROXY_LOSSES = {
    "proxy_anchor": lambda n, d, **kw: losses.ProxyAnchorLoss(n, d, margin=0.1, alpha=32, **kw),
    "proxy_nca": lambda n, d, **kw: losses.ProxyNCALoss(n, d, softmax_scale=16, **kw),
    "soft_triple": lambda n, d, **kw: losses.SoftTripleLoss(n, d, centers_per_class=10, **kw),
}
LOSSES = (*PROXY_LOSSES, "contrastive")


def build_loss(name, num_classes, embedding_size, *, so_weight=0.0, tcm_weight=0.0):
    """Build the training loss.

    Parameters
    ----------
    name : {"proxy_anchor", "proxy_nca", "soft_triple", "contrastive"}
    num_classes : int
    embedding_size : int
    so_weight : float, default=0
        Weight of :class:`SoftOrthogonalityRegularizer` on the proxies (proxy losses only).
    tcm_weight : float, default=0
        Weight of the Threshold-Consistent Margin loss (m+ = 0.9, m- = 0.5; :class:`DenseTCMLoss`,
        pml's ``ThresholdConsistentMarginLoss`` on one similarity matrix) added to the base loss.

    Returns
    -------
    torch.nn.Module
        Called as ``loss(embeddings, labels)``; its parameters, if any, are the proxies.

    Raises
    ------
    InputError
        An unknown loss name, a negative weight, or SO on a loss without proxies.
    """
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    for what, value in (("so_weight", so_weight), ("tcm_weight", tcm_weight)):
        if value < 0:
            raise InputError(f"{what} must be 0 or more, got {value}")
    if name in PROXY_LOSSES:
        reg = {"weight_regularizer": SoftOrthogonalityRegularizer(), "weight_reg_weight": so_weight}
        base = PROXY_LOSSES[name](num_classes, embedding_size, **(reg if so_weight else {}))
    elif so_weight:
        raise InputError(f"so_weight needs a proxy loss; {name!r} has no proxies")
    else:
        base = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=0.5)
    if not tcm_weight:
        return base
    return WithTCM(base, DenseTCMLoss(), tcm_weight)
