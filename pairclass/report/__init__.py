"""Self-contained HTML reports of a classify run and of a label audit.

Each page is one file: figures are inline SVG, item images inline JPEG data URIs, and there is no
script and no external URL, so it opens offline and can be mailed.
"""

from .audit_page import write_audit_report
from .classify_page import write_classify_report
from .data import AuditReport, ClassifyReport

__all__ = ["AuditReport", "ClassifyReport", "write_audit_report", "write_classify_report"]
