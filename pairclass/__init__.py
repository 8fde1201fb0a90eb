"""pairclass: zero-shot product classification over CLIP embeddings with pairwise dimension selection."""

from .audit import AuditResult, run_audit
from .classify import Decision, PairwiseClassifier
from .errors import InputError
from .run import ClassifyResult, run_classify
from .transclip import TransCLIPClassifier

__version__ = "0.1.0"

__all__ = [
    "AuditResult",
    "ClassifyResult",
    "Decision",
    "InputError",
    "PairwiseClassifier",
    "TransCLIPClassifier",
    "__version__",
    "run_audit",
    "run_classify",
]
