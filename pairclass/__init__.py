"""pairclass: zero-shot product classification over CLIP embeddings with pairwise dimension selection.

The names below load on first use, so ``import pairclass`` stays quick (cleanlab, scipy's optimisers
and the I/O stack are imported only by what needs them).
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "AuditResult": "audit",
    "ClassifyResult": "run",
    "Decision": "classify",
    "InputError": "errors",
    "PairwiseClassifier": "classify",
    "TransCLIPClassifier": "transclip",
    "run_audit": "audit",
    "run_classify": "run",
    "classify": "pipeline",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
