"""The projection head: the identity plus a learned residual, on frozen embeddings."""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError

__all__ = ["MAX_WIDTH", "ProjectionHead", "check_head_shape"]

# Far above any embedding width in use (CLIP ViT-bigG: 1280); a config beyond it is refused before
# a single weight is allocated.
MAX_WIDTH = 1 << 16


def check_head_shape(in_dim, dim, hidden):
    """Check the sizes of a :class:`ProjectionHead` without building it.

    Raises
    ------
    InputError
        A size that is not an integer, out of range (``1 <= in_dim <= dim <= MAX_WIDTH``,
        ``0 <= hidden <= MAX_WIDTH``), or an output narrower than the input.

    Examples
    --------
    >>> check_head_shape(384, 384, 512)
    >>> check_head_shape(384, 256, 512)
    Traceback (most recent call last):
    ...
    pairclass.errors.InputError: dim must be at least the input width 384 (the head starts as the identity), got 256
    """
    for name, value, low in (("in_dim", in_dim, 1), ("dim", dim, 1), ("hidden", hidden, 0)):
        if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= MAX_WIDTH:
            raise InputError(f"{name} must be an integer from {low} to {MAX_WIDTH}, got {value!r}")
    if dim < in_dim:
        raise InputError(f"dim must be at least the input width {in_dim} (the head starts as the identity), got {dim}")


class ProjectionHead(nn.Module):
    """``x -> normalize(pad(x) + f(x))`` on ``x = normalize(input)``, where ``f`` starts at zero.

    ``f`` is an MLP (``in_dim -> hidden -> dim``, GELU) whose last layer is initialised to zero, or a
    zero-initialised linear map when ``hidden=0``. The untrained head therefore returns the raw
    embeddings' directions, and training starts from the raw embeddings' retrieval scores: an
    epoch that does not beat them can be rejected by keeping the untrained head. Weight decay pulls
    ``f`` back towards zero, that is towards the raw embeddings.

    Why the output is never narrower than the input: the skip path ``pad(x)`` appends
    ``dim - in_dim`` zeros, which keeps every cosine, so a wider head starts as the raw embeddings
    too. No linear map to fewer dimensions keeps all cosines, so a narrower head could not start
    from them; it is refused. By default the output width is the input width.

    Parameters
    ----------
    in_dim : int
        Input embedding width.
    dim : int, optional
        Output width, at least ``in_dim``; by default ``in_dim``.
    hidden : int, default=512
        Width of the residual MLP's hidden layer; 0 for a linear residual.

    Examples
    --------
    >>> head = ProjectionHead(4, hidden=8)
    >>> x = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    >>> [round(v, 4) for v in head(x)[0].tolist()]
    [0.6, 0.8, 0.0, 0.0]
    >>> ProjectionHead(4, dim=6, hidden=0)(x).shape
    torch.Size([1, 6])
    """

    def __init__(self, in_dim, dim=None, hidden=512):
        super().__init__()
        dim = in_dim if dim is None else dim
        check_head_shape(in_dim, dim, hidden)
        self.in_dim = in_dim
        self.dim = dim
        self.hidden = hidden
        layers = [nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim)] if hidden else [nn.Linear(in_dim, dim)]
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.residual = nn.Sequential(*layers)

    def config(self):
        """The constructor arguments, as saved next to the weights."""
        return {"in_dim": self.in_dim, "dim": self.dim, "hidden": self.hidden}

    def forward(self, x):
        x = F.normalize(x, dim=1)
        return F.normalize(F.pad(x, (0, self.dim - self.in_dim)) + self.residual(x), dim=1)
