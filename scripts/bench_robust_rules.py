"""Rules for a robust default, measured on StatA's protocol (the batches of scripts/bench_robust.py).

Each rule starts from the methods' predictions on the same batch and keeps a method's label or falls
back, per item or per class, to the zero-shot (cosine baseline) label:

- ``cotrain``: the current default, as it is.
- ``cotrain, class prior``: the prototype step weighs each class embedding as one average class of
  the batch (``classify --proto-prior class``) instead of ``min_count`` items.
- ``recognised fallback``: a class whose final items, taken together, the zero-shot rule names as
  another class is taken for absent; its items keep their zero-shot label.
- ``margin fallback``: an item keeps cotrain's label only when the zero-shot cosine of that label is
  within one spread (the standard deviation of its cosines across the classes) of its top cosine.
- ``agree with X``: an item changes its zero-shot label only when cotrain and X move it to the same
  class (two learners of different kinds must agree).

The table gives the accuracy change against the baseline, averaged over the views: mean over the
draws (worst draw), and on the full sets (flipkart, fashion-13, fashion-sub).

``--presence`` asks instead whether a class's batch statistics can tell a present class from an
absent one that the zero-shot rule fills. Over the same batches, every class given 10 or more items
by the cosine baseline in a view is one case, present or absent (no item of it in the batch); per
group it prints the quantiles of the class's share of the batch and of its items' mean top-1 minus
top-2 cosine margin over the batch's median item margin, the share the recognised check passes, and
the absent classes the baseline fills most.

    python scripts/bench_robust_rules.py [--draws 10] [--batch-size 1000] [--seed 0] [--presence]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from bench_methods import PARAMS, subset  # noqa: E402
from bench_robust import SETS, SETTINGS, draw_batches  # noqa: E402

from pairclass import PairwiseClassifier  # noqa: E402
from pairclass.classify import l2_normalize  # noqa: E402
from pairclass.io import ArraySource, MemorySink  # noqa: E402
from pairclass.methods.prototypes import recognised_classes  # noqa: E402
from pairclass.pipeline import classify  # noqa: E402

METHODS = ["pairwise", "cotrain", "cotrain_gmm", "stata"]
FULL_SETS = ("flipkart", "fashion-13", "fashion-sub")


def recognised_fallback(p, X, T):
    known = recognised_classes(X, T, p["cotrain"])
    return np.where(known[p["cotrain"]], p["cotrain"], p["baseline"])


def margin_fallback(p, X, T):
    cos = X @ T.T
    gap = cos.max(axis=1) - cos[np.arange(len(X)), p["cotrain"]]
    return np.where(gap <= cos.std(axis=1), p["cotrain"], p["baseline"])


def agree(other):
    return lambda p, X, T: np.where(p["cotrain"] == p[other], p["cotrain"], p["baseline"])


RULES = {
    "cotrain": lambda p, X, T: p["cotrain"],
    "cotrain, class prior": lambda p, X, T: p["cotrain class prior"],
    "recognised fallback": recognised_fallback,
    "margin fallback": margin_fallback,
    "agree with pairwise": agree("pairwise"),
    "agree with cotrain_gmm": agree("cotrain_gmm"),
    "agree with stata": agree("stata"),
}


def predictions(s, proto_prior="min-count", methods=METHODS):
    """``{view: {method: class indices}}`` on the batch ``s`` (the baseline included)."""
    sink = MemorySink()
    source = ArraySource(s["views"], batch_rows=len(s["labels"]))
    classify(source, PairwiseClassifier(**PARAMS, seed=0), s["class_emb"], s["classes"], methods=methods,
             proto_prior=proto_prior, sink=sink)
    index = {c: i for i, c in enumerate(s["classes"])}
    table = sink.table.to_pydict()
    return {v: {m: np.array([index[c] for c in table[f"{v}__{m}__pred"]]) for m in ["baseline", *methods]}
            for v in s["views"]}


def changes(s):
    """``{rule: accuracy change vs the baseline, averaged over the views}`` on the batch ``s``."""
    index = {c: i for i, c in enumerate(s["classes"])}
    y = np.array([index[c] for c in s["labels"]])
    T = l2_normalize(np.asarray(s["class_emb"], dtype=np.float64))
    pred = predictions(s)
    prior = predictions(s, "class", ["cotrain"])
    out = {}
    for rule, f in RULES.items():
        per_view = []
        for v, X in s["views"].items():
            p = dict(pred[v], **{"cotrain class prior": prior[v]["cotrain"]})
            got = f(p, l2_normalize(X.astype(np.float64)), T)
            per_view.append((got == y).mean() - (p["baseline"] == y).mean())
        out[rule] = float(np.mean(per_view))
    return out


def presence_cases(s):
    """Per view, one case per class the baseline gives 10 or more items: ``(present, share, relative
    margin, recognised, class)``."""
    index = {c: i for i, c in enumerate(s["classes"])}
    y = np.array([index[c] for c in s["labels"]])
    T = l2_normalize(np.asarray(s["class_emb"], dtype=np.float64))
    present = np.bincount(y, minlength=len(T)) > 0
    cases = []
    for X in s["views"].values():
        X = l2_normalize(X.astype(np.float64))
        cos = X @ T.T
        pred = cos.argmax(axis=1)
        top2 = np.sort(cos, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        known = recognised_classes(X, T, pred)
        for c in np.flatnonzero(np.bincount(pred, minlength=len(T)) >= 10):
            mine = pred == c
            cases.append((present[c], mine.mean(), margin[mine].mean() / np.median(margin), known[c], s["classes"][c]))
    return cases


def print_presence(sets, batches):
    table = Table(title="Can a class's batch statistics tell present from absent? Classes the baseline gives 10+ "
                        "items, per view, over StatA's batches: quantiles 10% / 50% / 90%")
    for col in ("set", "class is", "cases", "share of the batch", "mean margin / median margin", "recognised",
                "absent classes filled most (items, relative margin)"):
        table.add_column(col, justify="left" if col in ("set", "class is") or col.startswith("absent") else "right")
    for name in SETS:
        cases = [(*case, len(rows)) for setting in SETTINGS for rows in batches[name][setting]
                 for case in presence_cases(subset(sets[name], rows))]
        for is_present in (True, False):
            group = [c for c in cases if c[0] == is_present]
            share, rel, known = (np.array([c[k] for c in group], dtype=float) for k in (1, 2, 3))
            top = sorted(group, key=lambda c: -c[1] * c[5])[:3] if not is_present else []
            table.add_row(name, "present" if is_present else "absent", str(len(group)),
                          " / ".join(f"{q:.3f}" for q in np.quantile(share, [0.1, 0.5, 0.9])),
                          " / ".join(f"{q:.2f}" for q in np.quantile(rel, [0.1, 0.5, 0.9])), f"{known.mean():.0%}",
                          "; ".join(f"{c[4]} ({round(c[1] * c[5])}, {c[2]:.2f})" for c in top) or "-")
    Console(width=220).print(table)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--presence", action="store_true", help="the presence statistics instead of the rules")
    args = ap.parse_args()
    sets = datasets.real_sets()
    rng = np.random.default_rng(args.seed)
    batches = {name: draw_batches(sets[name]["labels"], args.draws, args.batch_size, rng) for name in SETS}
    if args.presence:
        return print_presence(sets, batches)
    cells = {rule: [] for rule in RULES}
    for name in SETS:
        for setting in SETTINGS:
            draws = [changes(subset(sets[name], rows)) for rows in batches[name][setting]]
            for rule in RULES:
                change = np.array([d[rule] for d in draws])
                cells[rule].append(f"{change.mean():+.3f} ({change.min():+.3f})")
    for name in FULL_SETS:
        full = changes(sets[name])
        for rule in RULES:
            cells[rule].append(f"{full[rule]:+.3f}")
    table = Table(title=f"Rules on StatA's protocol ({args.draws} draws, batches of up to {args.batch_size}) and on "
                        "the full sets: accuracy change vs the cosine baseline, mean (worst draw)")
    table.add_column("rule")
    for name in SETS:
        for setting in SETTINGS:
            table.add_column(f"{name}\n{setting}", justify="right")
    for name in FULL_SETS:
        table.add_column(f"{name}\nfull", justify="right")
    for rule, row in cells.items():
        table.add_row(rule, *row)
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
