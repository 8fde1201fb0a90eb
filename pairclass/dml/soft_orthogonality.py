"""Soft Orthogonality (SO): a weight regulariser pushing class proxies towards orthogonality."""

from __future__ import annotations

import torch
from pytorch_metric_learning.regularizers import BaseRegularizer
from pytorch_metric_learning.utils import common_functions as c_f
from torch.nn import functional as F

__all__ = ["SoftOrthogonalityRegularizer"]


class SoftOrthogonalityRegularizer(BaseRegularizer):
    """``||P P^T - I||_F^2`` on the row-normalised proxies ``P``.

    Pass it to a proxy loss as ``weight_regularizer=`` with the weight ``lambda`` as
    ``weight_reg_weight=``. It is zero exactly when the proxies are orthonormal directions.

    Examples
    --------
    >>> reg = SoftOrthogonalityRegularizer()
    >>> float(reg(torch.eye(3)))
    0.0
    >>> float(reg(torch.tensor([[1.0, 0.0], [1.0, 0.0]])))
    2.0
    """

    def compute_loss(self, weights):
        P = F.normalize(weights, dim=1)
        gram = P @ P.T
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        return {
            "loss": {
                "losses": ((gram - eye) ** 2).sum(),
                "indices": c_f.torch_arange_from_size(weights),
                "reduction_type": "already_reduced",
            }
        }
