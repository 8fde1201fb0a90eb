"""Label audit: find catalogue items whose given label is likely wrong, with a suggested label and reasons.

Evidence per item (``signals``): an out-of-fold logistic regression trained with the given labels on
all views side by side; the labels of its nearest neighbours in each view and across the views
(faiss); and, on request, zero-shot pairwise margins against the class embeddings. A product of
experts fitted to the labels combines them; cleanlab's confident learning ranks and flags the issues,
in two rounds (the second trained on the labels the first kept). See docs/audit.md.
"""

from .combine import Product, fit_product
from .features import DIMS, AuditItems, Projection, project, read_items
from .issues import DEFAULT_SIGNALS, SIGNALS, Evidence, LabelIssues, find_issues
from .neighbours import nearest_neighbours
from .result import AuditResult
from .run import MIN_ITEMS, audit_arrays, label_indices, run_audit
from .signals import log_votes, neighbour_votes, out_of_fold_proba
from .zero_shot import pair_scores, zero_shot_scores

__all__ = [
    "DEFAULT_SIGNALS", "DIMS", "MIN_ITEMS", "SIGNALS", "AuditItems", "AuditResult", "Evidence", "LabelIssues",
    "Product", "Projection", "audit_arrays", "find_issues", "fit_product", "label_indices", "log_votes",
    "nearest_neighbours", "neighbour_votes", "out_of_fold_proba", "pair_scores", "project", "read_items",
    "run_audit", "zero_shot_scores",
]
