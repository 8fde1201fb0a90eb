"""Self-contained HTML reports of a classify run and of a label audit.

Each page is one file: figures are inline SVG, item images inline JPEG data URIs, and there is no
script and no external URL, so it opens offline and can be mailed. The page writers load matplotlib
on first use.
"""

from importlib import import_module

from .data import EXAMPLES_PER_SIDE, AuditReport, ClassifyReport

__all__ = ["EXAMPLES_PER_SIDE", "AuditReport", "ClassifyReport", "write_audit_report", "write_classify_report"]

_WRITERS = {"write_audit_report": "audit_page", "write_classify_report": "classify_page"}


def __getattr__(name):
    if name in _WRITERS:
        return getattr(import_module(f".{_WRITERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
