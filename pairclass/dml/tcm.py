"""The Threshold-Consistent Margin loss computed on the batch's similarity matrix."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["DenseTCMLoss", "WithTCM"]


class DenseTCMLoss(torch.nn.Module):
    """pytorch-metric-learning's ``ThresholdConsistentMarginLoss`` (all pairs, cosine similarity),
    from one ``B x B`` similarity matrix and masks instead of gathering both embeddings of every
    pair: the same value and gradient, in a fraction of the time and memory on a CPU.

    The loss is ``lambda_plus`` times the mean of ``m+ - s`` over the positive pairs with
    ``s <= m+``, plus ``lambda_minus`` times the mean of ``s - m-`` over the negative pairs with
    ``s >= m-`` (a side without such pairs adds 0).

    Examples
    --------
    >>> emb = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=1)
    >>> round(float(DenseTCMLoss()(emb, torch.tensor([0, 0, 1]))), 4)  # m+ - 0.8, and 0.6 - m-
    0.2
    """

    def __init__(self, lambda_plus=1.0, lambda_minus=1.0, margin_plus=0.9, margin_minus=0.5):
        super().__init__()
        self.lambda_plus, self.lambda_minus = lambda_plus, lambda_minus
        self.margin_plus, self.margin_minus = margin_plus, margin_minus

    def forward(self, embeddings, labels):
        Z = F.normalize(embeddings, dim=1)
        S = Z @ Z.T
        same = labels[:, None] == labels[None, :]
        pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device) & (S <= self.margin_plus)
        neg = ~same & (S >= self.margin_minus)
        return (self.lambda_plus * _masked_mean(self.margin_plus - S, pos)
                + self.lambda_minus * _masked_mean(S - self.margin_minus, neg))


def _masked_mean(values, mask):
    return (values * mask).sum() / mask.sum().clamp(min=1)


class WithTCM(torch.nn.Module):
    """``base(embeddings, labels) + weight * tcm(embeddings, labels)``; its parameters are the base's."""

    def __init__(self, base, tcm, weight):
        super().__init__()
        self.base, self.tcm, self.weight = base, tcm, weight

    def forward(self, embeddings, labels):
        return self.base(embeddings, labels) + self.weight * self.tcm(embeddings, labels)
