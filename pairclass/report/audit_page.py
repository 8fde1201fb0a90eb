"""The audit report: one self-contained HTML page from an :class:`AuditReport`."""

from __future__ import annotations

import numpy as np

from .blocks import Matrix, Salts, text_fields
from .figures import bars_svg, short_label
from .render import write_page
from .thumbnails import Thumbnails

__all__ = ["write_audit_report"]

MAX_SUSPECTS = 300


def write_audit_report(report, path):
    """Write the audit page of ``report`` to ``path`` atomically.

    Parameters
    ----------
    report : AuditReport
    path : path-like

    Returns
    -------
    path
    """
    salts = Salts()
    thumbs = Thumbnails(report.image_root)
    suspects = [_suspect(report, row, thumbs) for row in report.suspects.slice(0, MAX_SUSPECTS).to_pylist()]
    noise = sorted(report.noise_rate.items(), key=lambda kv: -kv[1])
    rates = np.array([r for _, r in noise])
    return write_page(
        "audit.html", path,
        report=report,
        suspects=suspects,
        n_suspects=report.suspects.num_rows,
        noise=noise,
        noise_svg=bars_svg([short_label(c) for c, _ in noise], {"estimated noise": rates},
                           xlabel="estimated share of the class's labels that are wrong",
                           xlim=(0, max(0.05, rates.max(initial=0) * 1.1)), salt=salts("noise")) if noise else None,
        corrections=Matrix.build(report.corrections, report.classes, report.classes,
                                 title="given label \u2192 suggested label", kind="corrections",
                                 row_title="given label", col_title="suggested label", salts=salts,
                                 shade="max"),
        failed_images=len(thumbs.failed),
    )


def _suspect(report, row, thumbs):
    return {
        "id": row[report.id_col],
        "given": row["given_label"],
        "suggested": row["suggested_label"],
        "score": row["label_score"],
        "reasons": row["reasons"],
        "texts": text_fields(row, report.text_cols),
        "thumb": thumbs(row.get(report.image_col)) if report.image_col else None,
    }
