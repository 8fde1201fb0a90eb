"""The projection head: a small MLP on frozen embeddings whose output is L2-normalised."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """``x -> normalize(W2 gelu(W1 x) + P x)``: an MLP plus a linear skip path.

    The skip path keeps the input's geometry within reach, which matters on unseen classes.
    ``hidden=0`` leaves the linear map alone.

    Parameters
    ----------
    in_dim : int
        Input embedding width.
    dim : int, default=256
        Output width.
    hidden : int, default=512
        Width of the MLP's hidden layer; 0 for a linear head.

    Examples
    --------
    >>> head = ProjectionHead(4, dim=3, hidden=8)
    >>> out = head(torch.ones(2, 4))
    >>> tuple(out.shape), torch.allclose(out.norm(dim=1), torch.ones(2))
    ((2, 3), True)
    """

    def __init__(self, in_dim, dim=256, hidden=512):
        super().__init__()
        self.in_dim = in_dim
        self.dim = dim
        self.hidden = hidden
        self.skip = nn.Linear(in_dim, dim, bias=False)
        self.mlp = (
            nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim)) if hidden else None
        )

    def config(self):
        """The constructor arguments, as saved next to the weights."""
        return {"in_dim": self.in_dim, "dim": self.dim, "hidden": self.hidden}

    def forward(self, x):
        out = self.skip(x)
        if self.mlp is not None:
            out = out + self.mlp(x)
        return F.normalize(out, dim=1)
