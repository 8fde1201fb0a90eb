"""Every method on batches that hold only some of the classes: StatA's protocol.

"Realistic test-time adaptation of vision-language models" (Zanella, Fuchs, De Vleeschouwer,
Ben Ayed, CVPR 2025) draws each batch by picking how many classes it holds (uniformly between a
low and a high count), which classes (uniformly), and then at most ``--batch-size`` of their items.
Every method classifies the batch over all the classes, and the table gives its accuracy change
against the cosine baseline on the same batch (averaged over the set's views), as the mean over the
draws and, in brackets, the worst draw.

Sets (../shared/data, embedded with the offline MiniLM; see scripts/datasets.py; class names as
prompts): flipkart (7 classes, views product_name and description) and fashion-13 (13 classes, the
product display name).

    python scripts/bench_robust.py [--methods baseline,cotrain,...] [--draws 10] [--batch-size 1000] [--seed 0]
    python scripts/bench_robust.py --templates   # class embeddings from the default prompt templates

``--templates`` embeds each class as the mean over the default prompt templates of ``pairclass
embed-classes`` (what classify uses when it is given class names), for the baseline and every method.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from bench_methods import PARAMS, subset  # noqa: E402

from pairclass import PairwiseClassifier  # noqa: E402
from pairclass.embed.templates import DEFAULT_TEMPLATES  # noqa: E402
from pairclass.io import ArraySource  # noqa: E402
from pairclass.methods import DEFAULT_METHOD, METHODS  # noqa: E402
from pairclass.pipeline import classify  # noqa: E402

SETS = ("flipkart", "fashion-13")
# Setting -> (fewest, most) classes a batch holds; None: all of them.
SETTINGS = {"1-4": (1, 4), "2-10": (2, 10), "5-all": (5, None), "all": (None, None)}


def draw_batches(labels, n_draws, batch_size, rng):
    """``{setting: [rows of each draw]}``: StatA's batches of a labelled set."""
    classes = np.unique(labels)
    C = classes.size
    out = {}
    for name, (lo, hi) in SETTINGS.items():
        lo, hi = min(lo or C, C), min(hi or C, C)
        draws = []
        for _ in range(n_draws):
            held = rng.choice(classes, rng.integers(lo, hi + 1), replace=False)
            rows = np.flatnonzero(np.isin(labels, held))
            if rows.size > batch_size:
                rows = np.sort(rng.choice(rows, batch_size, replace=False))
            draws.append(rows)
        out[name] = draws
    return out


def accuracy_change(method, s, seed):
    """The method's accuracy minus the baseline's on the batch ``s``, averaged over its views."""
    estimator = PairwiseClassifier(**PARAMS, seed=seed)
    source = ArraySource(s["views"], labels=s["labels"], batch_rows=len(s["labels"]))
    outcome = classify(source, estimator, s["class_emb"], s["classes"], methods=[method])
    acc, base = outcome.methods[method]["accuracy"], outcome.methods["baseline"]["accuracy"]
    return float(np.mean([acc[v] - base[v] for v in s["views"]]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--draws", type=int, default=10, help="batches drawn per setting")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--templates", action="store_true", help="class embeddings from the default prompt templates")
    args = ap.parse_args()
    methods = args.methods.split(",")
    sets = datasets.real_sets()
    if args.templates:
        sets = {name: dict(s, class_emb=datasets.embed_classes(s["classes"], DEFAULT_TEMPLATES))
                for name, s in sets.items()}
    console = Console(width=220)
    rng = np.random.default_rng(args.seed)
    batches = {name: draw_batches(sets[name]["labels"], args.draws, args.batch_size, rng) for name in SETS}

    table = Table(title=f"StatA's protocol: batches of up to {args.batch_size} items holding some of the classes, "
                        f"{args.draws} draws each; accuracy change vs the cosine baseline (mean over views), "
                        f"mean (worst draw); default = {DEFAULT_METHOD}"
                        + ("; class embeddings from the prompt templates" if args.templates else ""))
    table.add_column("method")
    for name in SETS:
        for setting in SETTINGS:
            table.add_column(f"{name}\n{setting}", justify="right")
        table.add_column(f"{name}\nseconds", justify="right")
        table.add_column(f"{name}\nitems/s", justify="right")
    for method in methods:
        cells = []
        for name in SETS:
            t = time.perf_counter()
            n_items = sum(len(rows) for draws in batches[name].values() for rows in draws)
            for setting, draws in batches[name].items():
                change = np.array([accuracy_change(method, subset(sets[name], rows), args.seed) for rows in draws])
                cells.append(f"{change.mean():+.3f} ({change.min():+.3f})")
            seconds = time.perf_counter() - t
            cells += [f"{seconds:.1f}", f"{n_items / seconds:,.0f}"]
        label = method + (" (default)" if method == DEFAULT_METHOD else "")
        table.add_row(label, *cells)
        console.print(f"done: {label}", style="dim")
    console.print(table)
    sizes = {name: {k: np.mean([len(r) for r in d]) for k, d in b.items()} for name, b in batches.items()}
    console.print("items per batch on average: " + "; ".join(
        f"{name} " + ", ".join(f"{k} {v:.0f}" for k, v in s.items()) for name, s in sizes.items()))
    console.print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
