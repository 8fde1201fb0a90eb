"""Encoder directories: ``model.safetensors`` (the head's weights) plus ``config.json``.

Loading reads tensors with safetensors and the config as JSON, so it never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import input_error
from ..io import atomic_path
from .model import ProjectionHead, check_head_shape

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "Encoder", "load_encoder", "save_encoder"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "pairclass-encoder/2"
SHAPE_KEYS = ("in_dim", "dim", "hidden")


class Encoder:
    """A trained projection head, ready to map embeddings on the CPU.

    Attributes
    ----------
    model : ProjectionHead
    config : dict
        ``config.json``: the head's shape (``in_dim``, ``dim``, ``hidden``) and how it was trained
        (``validation``: the held-out classes, the curve per epoch and the chosen ``best_epoch``).
    path : Path or None
    """

    def __init__(self, model, config, path=None):
        self.model = model.eval()
        self.config = config
        self.path = path

    @property
    def in_dim(self):
        return self.model.in_dim

    @property
    def dim(self):
        return self.model.dim

    def transform(self, X, *, batch_size=8192):
        """Map rows of ``X`` through the head.

        Parameters
        ----------
        X : ndarray of shape (n_items, in_dim)

        Returns
        -------
        ndarray of shape (n_items, dim), float32, rows of unit norm
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.in_dim:
            raise input_error(
                f"embeddings have shape {X.shape}; this encoder expects width {self.in_dim}", path=self.path
            )
        out = np.empty((X.shape[0], self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, X.shape[0], batch_size):
                chunk = torch.from_numpy(X[start:start + batch_size])
                out[start:start + batch_size] = self.model(chunk).numpy()
        return out


def save_encoder(model, path, info=None):
    """Write ``model`` (a :class:`ProjectionHead`) to the directory ``path``.

    Parameters
    ----------
    model : ProjectionHead
    path : path-like
        Directory, created if needed; both files are written atomically.
    info : dict, optional
        JSON-ready facts about training (loss, classes, view, seconds...) stored in the config.

    Returns
    -------
    Encoder
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise input_error("exists and is not a directory", path=path)
    config = {"format": FORMAT, **model.config(), **(info or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp))
    with atomic_path(path / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return Encoder(model.cpu(), config, path)


def load_encoder(path):
    """Read an encoder directory written by :func:`save_encoder` (or ``pairclass train``).

    Raises
    ------
    InputError
        A missing directory or file, an unreadable config, or weights that do not fit the config.
    """
    path = Path(path)
    if not path.is_dir():
        raise input_error("encoder directory not found", path=path)
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise input_error("missing; not an encoder directory (see pairclass train)", path=needed)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
        if config.get("format") != FORMAT:
            raise ValueError(f"format is {config.get('format')!r}, expected {FORMAT!r} (retrain with pairclass train)")
        missing = [k for k in SHAPE_KEYS if k not in config]
        if missing:
            raise ValueError(f"missing {missing[0]!r}")
        shape = [config[k] for k in SHAPE_KEYS]
        check_head_shape(*shape)
    except ValueError as e:
        raise input_error(f"not a valid encoder config: {e}", path=config_path) from e
    # Sizes are checked; the head is built on the meta device (no memory) and takes the file's
    # tensors as they are, so nothing is allocated beyond what the weights file holds.
    with torch.device("meta"):
        model = ProjectionHead(*shape)
    try:
        tensors = {k: v.to(torch.float32) for k, v in load_file(str(weights_path)).items()}
        model.load_state_dict(tensors, strict=True, assign=True)
    except (SafetensorError, RuntimeError, OSError) as e:
        raise input_error(f"weights do not match the config: {str(e).splitlines()[0]}", path=weights_path) from e
    return Encoder(model, config, path)

