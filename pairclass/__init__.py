"""pairclass: zero-shot product classification over CLIP embeddings with pairwise dimension selection."""

from .classify import Decision, PairwiseClassifier
from .errors import InputError
from .run import ClassifyResult, run_classify

__version__ = "0.1.0"

__all__ = [
    "ClassifyResult",
    "Decision",
    "InputError",
    "PairwiseClassifier",
    "__version__",
    "run_classify",
]
