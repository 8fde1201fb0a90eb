"""Why an item was flagged, in words: which signals point at the suggested label, or away from the given one.

A signal *points at* the suggested class when that is its top class; it *doubts* the label when its
top class is neither. Signals that keep the given label say nothing. Examples:

- ``neighbours in both views and across them say Watches (9/10, 8/10, 10/10, 9/10)``
- ``both views' neighbours say Watches (9/10, 8/10)``
- ``description's neighbours among product_name say Watches (7/10)``
- ``the classifier says Watches (0.93 vs 0.02)``
- ``zero-shot in both views doubts the label``
"""

from __future__ import annotations

import numpy as np

__all__ = ["reasons"]


def reasons(evidence, rows, given, suggested, names):
    """One ``"; "``-joined string per row of ``rows`` (item indices).

    Parameters
    ----------
    evidence : list of :class:`~pairclass.audit.issues.Evidence`
    rows, given, suggested : ndarray of shape (n,)
        Items, their given and suggested class indices.
    names : sequence of str
        Class names.
    """
    tops = {e.name: e.log[rows].argmax(axis=1) for e in evidence}
    out = []
    for j, (row, g, s) in enumerate(zip(rows, given, suggested)):
        parts = []
        for family in ("neighbours", "classifier", "zero-shot"):
            group = [e for e in evidence if e.family == family]
            for target, members in ((s, [e for e in group if tops[e.name][j] == s]),
                                    (None, [e for e in group if tops[e.name][j] not in (s, g)])):
                if members:
                    parts += _phrases(family, members, row, g, target, names)
        out.append("; ".join(parts) or f"{names[s]} outweighs {names[g]} only in combination")
    return out


def _phrases(family, group, row, given, target, names):
    """What ``group`` (signals of one family) says about item ``row``: ``target`` (a class) or doubt."""
    claim = "the label" if target is None else names[target]
    verb = lambda plural: ("doubt" if target is None else "say") + ("" if plural else "s")  # noqa: E731
    if family == "classifier":
        p = np.exp(group[0].log[row])
        detail = "" if target is None else f" ({p[target]:.2f} vs {p[given]:.2f})"
        return [f"the classifier {verb(False)} {claim}{detail}"]
    if family == "zero-shot":
        where = "both views" if len(group) == 2 else group[0].views[0]
        return [f"zero-shot in {where} {verb(False)} {claim}"]
    counts = lambda es: "" if target is None else " (" + ", ".join(  # noqa: E731
        f"{int(e.votes[row, target])}/{int(e.votes[row].sum())}" for e in es) + ")"
    within = [e for e in group if len(e.views) == 1]
    if len(within) == 2 and len(group) == 4:
        return [f"neighbours in both views and across them {verb(True)} {claim}{counts(group)}"]
    out = []
    if within:
        who = "both views'" if len(within) == 2 else f"{within[0].views[0]}'s"
        out.append(f"{who} neighbours {verb(True)} {claim}{counts(within)}")
    out += [f"{e.views[0]}'s neighbours among {e.views[1]} {verb(True)} {claim}{counts([e])}"
            for e in group if len(e.views) == 2]
    return out
