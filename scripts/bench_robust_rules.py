"""Rules for a robust default, measured on StatA's protocol (the batches of scripts/bench_robust.py).

Each rule starts from the methods' predictions on the same batch and keeps a method's label or falls
back, per item or per class, to the zero-shot (cosine baseline) label:

- ``cotrain``: the current default, as it is.
- ``cotrain, class prior``: the prototype step weighs each class embedding as one average class of
  the batch (``classify --proto-prior class``) with any number of views; ``cotrain, min-count
  prior``: as ``min_count`` items with any number of views (the default, ``auto``, takes the class
  prior with one view and ``min_count`` with two).
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
the absent classes the baseline fills most. A second table takes the pairs of those classes with
their most frequent runner-up (the class second by cosine for most of their items, itself given 10+
items) and gives the pair's separation, the squared distance between the two groups' mean rows over
their mean squared distance to their own mean, when both classes are present and when one is absent.

``--oracle`` runs ``cotrain`` as if the batch's classes were known: classified over those classes
only, against the baseline over all the classes and over the same ones.

    python scripts/bench_robust_rules.py [--draws 10] [--batch-size 1000] [--seed 0] [--presence | --oracle]
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
from pairclass.methods.prototypes import recognised_classes, resolve_prior  # noqa: E402
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
    "cotrain, min-count prior": lambda p, X, T: p["cotrain min-count prior"],
    "recognised fallback": recognised_fallback,
    "margin fallback": margin_fallback,
    "agree with pairwise": agree("pairwise"),
    "agree with cotrain_gmm": agree("cotrain_gmm"),
    "agree with stata": agree("stata"),
}


def truth(s):
    """The batch ``s``'s class index per item, its normalised class embeddings, and which classes it holds."""
    index = {c: i for i, c in enumerate(s["classes"])}
    y = np.array([index[c] for c in s["labels"]])
    T = l2_normalize(np.asarray(s["class_emb"], dtype=np.float64))
    return y, T, np.bincount(y, minlength=len(T)) > 0


def predictions(s, proto_prior="auto", methods=METHODS):
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
    y, T, _ = truth(s)
    pred = predictions(s)
    default = resolve_prior("auto", len(s["views"]))
    prior = {name: pred if name == default else predictions(s, name, ["cotrain"]) for name in ("class", "min-count")}
    views = {v: l2_normalize(X.astype(np.float64)) for v, X in s["views"].items()}
    out = {}
    for rule, f in RULES.items():
        per_view = []
        for v, X in views.items():
            p = dict(pred[v], **{f"cotrain {name} prior": prior[name][v]["cotrain"] for name in prior})
            per_view.append((f(p, X, T) == y).mean() - (p["baseline"] == y).mean())
        out[rule] = float(np.mean(per_view))
    return out


def presence_cases(s):
    """Per view, one case per class the baseline gives 10 or more items: ``(present, share, relative
    margin, recognised, class)``."""
    y, T, present = truth(s)
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


def pair_separations(s):
    """Per view, per class the baseline gives 10+ items: ``(pair, both present, separation)`` with its
    most frequent runner-up among those classes."""
    y, T, present = truth(s)
    out = []
    for X in s["views"].values():
        X = l2_normalize(X.astype(np.float64))
        order = np.argsort(-(X @ T.T), axis=1)
        pred = order[:, 0]
        big = np.bincount(pred, minlength=len(T)) >= 10
        for c in np.flatnonzero(big):
            runner_up = np.bincount(order[pred == c, 1], minlength=len(T)) * big
            if runner_up.max() == 0:
                continue
            b = runner_up.argmax()
            groups = [X[pred == c], X[pred == b]]
            means = [g.mean(axis=0) for g in groups]
            spread = np.mean([((g - m) ** 2).sum(axis=1).mean() for g, m in zip(groups, means)])
            pair = " / ".join(sorted((s["classes"][c], s["classes"][b])))
            out.append((pair, bool(present[c] and present[b]), ((means[0] - means[1]) ** 2).sum() / spread))
    return out


def print_separations(sets, batches):
    table = Table(title="Does a pair of classes look different when one of them is absent? The pairs of the "
                        "absent classes filled most, over StatA's batches: separation quantiles 10% / 50% / 90%")
    for col in ("set", "pair", "both present: cases", "separation", "one absent: cases", "separation "):
        table.add_column(col, justify="left" if col in ("set", "pair") else "right")
    for name in SETS:
        cases = [c for setting in SETTINGS for rows in batches[name][setting]
                 for c in pair_separations(subset(sets[name], rows))]
        absent = {}
        for pair, both, _ in cases:
            absent[pair] = absent.get(pair, 0) + (not both)
        for pair in sorted(absent, key=absent.get, reverse=True)[:3]:
            cells = []
            for both in (True, False):
                sep = np.array([c[2] for c in cases if c[0] == pair and c[1] == both])
                cells += [str(sep.size), " / ".join(f"{q:.3f}" for q in np.quantile(sep, [0.1, 0.5, 0.9]))
                          if sep.size else "-"]
            table.add_row(name, pair, *cells)
    Console(width=220).print(table)


def print_oracle(sets, batches):
    """``cotrain`` with the batch's classes known, against the baseline."""
    def accuracy(s, keep):
        index = [s["classes"].index(c) for c in keep]
        source = ArraySource(s["views"], labels=s["labels"], batch_rows=len(s["labels"]))
        outcome = classify(source, PairwiseClassifier(**PARAMS, seed=0), np.asarray(s["class_emb"])[index], keep,
                           methods=["cotrain"])
        return {m: np.mean(list(outcome.methods[m]["accuracy"].values())) for m in ("baseline", "cotrain")}

    columns = ("cotrain, all classes - baseline, all", "baseline, classes known - baseline, all",
               "cotrain, classes known - baseline, all", "cotrain, classes known - baseline, classes known")
    table = Table(title="If the batch's classes were known: accuracy change, mean over views, over StatA's batches "
                        "(mean (worst draw)); a batch of one class is classified right by any rule")
    for col in ("set", "setting", *columns):
        table.add_column(col, justify="left" if col in ("set", "setting") else "right")
    for name in SETS:
        for setting in SETTINGS:
            rows = []
            for draw in batches[name][setting]:
                s = subset(sets[name], draw)
                full = accuracy(s, s["classes"])
                held = [c for c in s["classes"] if c in set(s["labels"])]
                known = accuracy(s, held) if len(held) > 1 else {"baseline": 1.0, "cotrain": 1.0}
                rows.append((full["cotrain"] - full["baseline"], known["baseline"] - full["baseline"],
                             known["cotrain"] - full["baseline"], known["cotrain"] - known["baseline"]))
            rows = np.array(rows)
            table.add_row(name, setting, *(f"{rows[:, k].mean():+.3f} ({rows[:, k].min():+.3f})" for k in range(4)))
    Console(width=220).print(table)


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
    print_separations(sets, batches)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--presence", action="store_true", help="the presence statistics instead of the rules")
    ap.add_argument("--oracle", action="store_true", help="cotrain with the batch's classes known")
    args = ap.parse_args()
    sets = datasets.real_sets()
    rng = np.random.default_rng(args.seed)
    batches = {name: draw_batches(sets[name]["labels"], args.draws, args.batch_size, rng) for name in SETS}
    if args.presence:
        return print_presence(sets, batches)
    if args.oracle:
        return print_oracle(sets, batches)
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
