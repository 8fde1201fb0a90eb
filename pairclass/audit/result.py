"""What an audit found: the issues table (cleanlab Datalab's columns), a per-class summary and the
data of the audit report page."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ZERO_SHOT_NOTE", "AuditResult"]

ZERO_SHOT_NOTE = ("zero-shot evidence only: the given labels were audited but not learned from "
                  "(pairwise margins against the class embeddings, as before the labelled audit)")
# Suspects an audit report page lists.
REPORT_SUSPECTS = 300


@dataclass
class AuditResult:
    """What :func:`~pairclass.audit.run_audit` found.

    Attributes
    ----------
    n_items : int
        Items audited (those with a label).
    n_unlabelled : int
        Items without a label, left out.
    views : list of str
    classes : list of str
    evidence : {"labels", "zero-shot"}
        ``"labels"``: the classifier and the neighbours learn from the given labels; ``"zero-shot"``:
        only the class embeddings' pairwise margins (see ``note``).
    weights : dict
        ``{signal: weight}`` in the product of experts.
    items : pyarrow.Table
        One row per audited item, in input order: ``id_col``, ``given_label``, ``suggested_label``,
        ``label_score`` (cleanlab's label quality in [0, 1], lower is more suspect),
        ``is_label_issue``, ``rank`` (1 = most suspect), ``reasons`` (empty unless flagged), then
        the ``keep_cols``.
    noise_rate : ndarray of shape (n_classes,)
        cleanlab's estimate of the share of each class's labels that are wrong (NaN: no items).
    corrections : ndarray of shape (n_classes, n_classes)
        Flagged items by given label (rows) and suggested label (columns).
    id_col : str
    keep_cols : list of str
    """

    n_items: int
    n_unlabelled: int
    views: list
    classes: list
    evidence: str
    weights: dict
    items: pa.Table
    noise_rate: np.ndarray
    corrections: np.ndarray
    id_col: str = "product_id"
    keep_cols: list = field(default_factory=list)

    @property
    def n_flagged(self):
        return int(self.corrections.sum())

    @property
    def note(self):
        return ZERO_SHOT_NOTE if self.evidence == "zero-shot" else None

    def flagged(self, n=None):
        """The flagged rows, most suspect first (the first ``n``), as a table."""
        table = self.items.filter(pc.field("is_label_issue")).sort_by("rank")
        return table if n is None else table.slice(0, n)

    def top(self, n):
        """The ``n`` most suspect flagged items as row dicts."""
        return self.flagged(n).to_pylist()

    def summary(self):
        """Per class: items, estimated noise rate, flagged items and where they go, suggestions that
        come to it and where from (the three largest of each)."""
        given = np.bincount(_codes(self.items["given_label"], self.classes), minlength=len(self.classes))
        out = []
        for c, name in enumerate(self.classes):
            out.append({
                "class": name,
                "items": int(given[c]),
                "estimated_noise_rate": None if np.isnan(self.noise_rate[c]) else float(self.noise_rate[c]),
                "flagged": int(self.corrections[c].sum()),
                "flagged_to": self._largest(self.corrections[c]),
                "suggested_here": int(self.corrections[:, c].sum()),
                "suggested_from": self._largest(self.corrections[:, c]),
            })
        return out

    def _largest(self, counts, n=3):
        order = np.argsort(-counts, kind="stable")[:n]
        return {self.classes[i]: int(counts[i]) for i in order if counts[i] > 0}

    def to_json(self, top=20):
        """The summary as a JSON-ready dict, with the ``top`` most suspect flagged items."""
        rows = [{k: v for k, v in row.items() if k not in self.keep_cols} for row in self.top(top)]
        return {
            "n_items": self.n_items, "n_unlabelled": self.n_unlabelled, "n_flagged": self.n_flagged,
            "evidence": self.evidence, "note": self.note, "views": self.views, "signals": self.weights,
            "classes": self.summary(), "top": rows,
        }

    def report(self, source, *, image_col=None, image_root=None, max_suspects=REPORT_SUSPECTS):
        """The :class:`~pairclass.report.AuditReport` of this audit (for ``write_audit_report``).

        ``image_col`` must be one of the ``keep_cols``.
        """
        from ..report import AuditReport

        suspects = self.flagged(max_suspects)
        return AuditReport(
            source=str(source), n_items=self.n_items, n_flagged=self.n_flagged, classes=list(self.classes),
            suspects=suspects, id_col=self.id_col, text_cols=[c for c in self.keep_cols if c != image_col],
            image_col=image_col, image_root=None if image_root is None else str(image_root),
            noise_rate={c: float(r) for c, r in zip(self.classes, self.noise_rate) if not np.isnan(r)},
            corrections=self.corrections.copy(),
        )


def _codes(column, classes):
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in column.to_pylist()], dtype=np.int64)
