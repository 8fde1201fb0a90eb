"""Embeddings for ``pairclass classify``: open_clip images and texts, sentence-transformers texts, class prompts.

This subpackage needs the ``embed`` extra (torch, torchvision, open_clip, sentence-transformers);
``import pairclass`` does not import it.
"""

from .images import FetchLimits
from .models import ClipEncoder, load_clip
from .preprocess import TensorPreprocess
from .run import ClassEmbedResult, EmbedResult, load_encoder, run_embed, run_embed_classes
from .templates import DEFAULT_TEMPLATES, load_templates
from .text import SentenceEncoder, load_text_model

__all__ = [
    "DEFAULT_TEMPLATES",
    "ClassEmbedResult",
    "ClipEncoder",
    "EmbedResult",
    "FetchLimits",
    "SentenceEncoder",
    "TensorPreprocess",
    "load_clip",
    "load_encoder",
    "load_templates",
    "load_text_model",
    "run_embed",
    "run_embed_classes",
]
