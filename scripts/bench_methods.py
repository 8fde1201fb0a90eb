"""Every classification method on every real development set, plus robustness batches.

Sets (../shared/data, embedded with the offline MiniLM; see scripts/datasets.py):
- flipkart: 1,050 products, views product_name and description, 7 top-level categories.
- fashion-13: productDisplayName of the 13 most frequent articleTypes.
- fashion-sub: productDisplayName of every subCategory with 100+ items.
Class embeddings are the class names ("{}"); "+ens" rows average the default prompt templates of
``pairclass embed-classes`` instead (what classify uses when given class names);
"+center" rows run on balanced-centred embeddings (pairclass.center, classify --center balanced);
"+copeland" rows play a round robin instead of the knockout bracket (classify --tournament copeland);
"+midpoint" / "+fisher" / "+seed match" rows score matches that way instead of the method's own
(classify --match: pairwise's own is the seed's cosine, the others' is fisher);
"+class prior" / "+min-count prior" rows weigh each class embedding as one average class of the batch
/ as min_count items in the prototype step, whatever the views (classify --proto-prior; the default,
auto, is the class prior with one view and min_count with two);
"+encoder" rows classify through a metric-learning head (classify --encoder) fitted as ``pairclass train``
fits it (Proxy Anchor, the defaults) on other classes and other items than the set's: for fashion-13
and flipkart, the 57 fashion articleTypes of 50+ items outside the 13; for fashion-sub (which holds
nearly every fashion item), flipkart's second category level (classes of 5+ items).

Robustness (fashion-13, accuracy): a batch where one class is 80% of the items, a batch holding only 3
of the classes (scored against all 13), and a batch of 200 items. Each kind is drawn ``--draws`` times
(which class dominates, which 3 classes, which 200 items); the table gives the mean accuracy, its mean
change against the baseline on the same batches (with the same class embeddings), and the worst change.

    python scripts/bench_methods.py [--methods baseline,pairwise,...] [--seed 0] [--draws 5]
    python scripts/bench_methods.py --rows baseline,pairwise,baseline+encoder,pairwise+encoder  # some rows only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from pairclass import PairwiseClassifier  # noqa: E402
from pairclass.dml import Encoder  # noqa: E402
from pairclass.dml.fit import fit_head  # noqa: E402
from pairclass.embed.templates import DEFAULT_TEMPLATES  # noqa: E402
from pairclass.io import ArraySource  # noqa: E402
from pairclass.methods import DEFAULT_METHOD, METHODS  # noqa: E402
from pairclass.pipeline import classify  # noqa: E402

PARAMS = dict(k=100, cos_min=None, diff_min=0.0, candidates=None, min_count=10)



# Row suffix -> settings: prompt ensembling, centring, tournament, match scoring (None: the method's own).
VARIANTS = {
    "": {},
    "+ens": {"ens": True},
    "+center": {"center": "balanced"},
    "+copeland": {"tournament": "copeland"},
    "+midpoint": {"match": "midpoint"},
    "+fisher": {"match": "fisher"},
    "+seed match": {"match": "cosine"},
    "+class prior": {"proto_prior": "class"},
    "+min-count prior": {"proto_prior": "min-count"},
    "+encoder": {"encoder": True},
}
# Set -> the training set of its head (see heads()).
HEAD_TRAINING = {"flipkart": "fashion-other", "fashion-13": "fashion-other", "fashion-sub": "flipkart-l2"}


def evaluate(method, s, class_emb, seed, center="none", tournament="bracket", match=None, proto_prior="auto",
             encoder=None):
    t = time.perf_counter()
    estimator = PairwiseClassifier(**PARAMS, seed=seed, tournament=tournament, match=match)
    source = ArraySource(s["views"], labels=s["labels"], batch_rows=len(s["labels"]))
    outcome = classify(source, estimator, class_emb, s["classes"], methods=[method], proto_prior=proto_prior,
                       center=center, encoder=encoder)
    summary = outcome.methods[method + ("+encoder" if encoder is not None else "")]
    row = {"seconds": time.perf_counter() - t}
    for v in s["views"]:
        row.update({f"acc {v}": summary["accuracy"][v], f"f1 {v}": summary["f1"][v]})
    if summary["agreement_f1"] is not None:
        row["agreement"] = summary["agreement_f1"]
    return row


def agreement_without_accuracy(row, base):
    """Agreement rose while the views' mean accuracy fell: views agreeing on wrong classes."""
    accs = [k for k in row if k.startswith("acc ")]
    if "agreement" not in row:
        return False
    return row["agreement"] > base["agreement"] and np.mean([row[k] for k in accs]) < np.mean([base[k] for k in accs])


def heads(seed, console):
    """Training set name -> :class:`Encoder` fitted on it, each on classes and items outside the sets
    it serves (:data:`HEAD_TRAINING`)."""
    styles = datasets.fashion_styles()
    named = styles["productDisplayName"].str.strip() != ""
    counts = styles["articleType"][named].value_counts()  # as datasets.fashion_top counts them
    other = (named & styles["articleType"].isin(counts.index[13:][counts.iloc[13:] >= 50])).to_numpy()
    fk = datasets.flipkart()
    fk_counts = fk["category_l2"].value_counts()
    fk_keep = fk["category_l2"].isin(fk_counts.index[fk_counts >= 5]).to_numpy()
    training = {
        "fashion-other": (datasets.fashion_name_embeddings()[other], styles["articleType"].to_numpy(object)[other]),
        "flipkart-l2": (datasets.embed_texts(fk["product_name"])[fk_keep], fk["category_l2"].to_numpy(object)[fk_keep]),
    }
    fitted = {}
    torch.set_num_threads(1)  # on a shared 2-core CPU, many times faster than 2
    for name, (X, y) in training.items():
        fit = fit_head(X, y, seed=seed)
        v = fit.validation()
        chosen = "trained" if fit.improved else "the identity"
        console.print(f"head on {name}: {fit.n_items} items / {len(fit.classes)} classes, validation R@1 "
                      f"{v['raw']['recall_at_1']:.4f} raw / {v['curve'][v['best_epoch']]['recall_at_1']:.4f} at epoch "
                      f"{v['best_epoch']} ({chosen}), {fit.history.seconds:.0f} s")
        fitted[name] = Encoder(fit.model.cpu(), fit.model.config())
    return fitted


def subset(s, rows):
    return dict(s, views={v: X[rows] for v, X in s["views"].items()}, labels=s["labels"][rows])


def robustness_batches(s, seed):
    rng = np.random.default_rng(seed)
    y = s["labels"]
    classes = np.unique(y)
    big = np.flatnonzero(y == rng.choice(classes))
    n_big = min(1600, big.size)
    skewed = np.concatenate([
        rng.choice(big, n_big, replace=False),
        rng.choice(np.flatnonzero(y != y[big[0]]), n_big // 4, replace=False),
    ])
    three = np.flatnonzero(np.isin(y, rng.choice(classes, 3, replace=False)))
    small = rng.choice(len(y), 200, replace=False)
    return {"80% one class": skewed, "3 classes only": three, "200 items": small}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=5, help="robustness batches drawn per kind")
    ap.add_argument("--rows", help="only these rows (comma-separated labels, e.g. pairwise+encoder); default all")
    args = ap.parse_args()
    wanted = None if args.rows is None else set(args.rows.split(","))
    methods = args.methods.split(",")
    sets = datasets.real_sets()
    console = Console(width=200)

    table = Table(title=f"methods on real product data (MiniLM text embeddings); default = {DEFAULT_METHOD}")
    table.add_column("method")
    cols = [("flipkart", "agreement"), ("flipkart", "acc product_name"), ("flipkart", "acc description"),
            ("fashion-13", "acc name"), ("fashion-13", "f1 name"), ("fashion-sub", "acc name"),
            ("fashion-sub", "f1 name")]
    for name, metric in cols:
        table.add_column(f"{name}\n{metric}", justify="right")
    table.add_column("seconds\n(all sets)", justify="right")
    variants = [(m, "") for m in methods]
    variants += [(m, "+ens") for m in ("baseline", "pairwise", DEFAULT_METHOD, "transclip") if m in methods]
    variants += [(m, "+center") for m in ("baseline", DEFAULT_METHOD, "transclip") if m in methods]
    variants += [(m, "+copeland") for m in ("pairwise", DEFAULT_METHOD) if m in methods]
    variants += [("pairwise", "+midpoint"), ("pairwise", "+fisher"), (DEFAULT_METHOD, "+midpoint"),
                 (DEFAULT_METHOD, "+seed match"), (DEFAULT_METHOD, "+class prior"),
                 (DEFAULT_METHOD, "+min-count prior")]
    variants += [(m, "+encoder") for m in ("baseline", "pairwise") if m in methods]
    # The baseline's plain row comes first: the (!) mark compares with it.
    variants = [v for v in variants if wanted is None or "".join(v) in wanted or v == ("baseline", "")]
    encoders = heads(args.seed, console) if any(suffix == "+encoder" for _, suffix in variants) else {}
    baseline_rows = {}
    for method, suffix in variants:
        results = {}
        opts = dict(VARIANTS[suffix])
        ens = opts.pop("ens", False)
        use_encoder = opts.pop("encoder", False)
        for name, s in sets.items():
            emb = datasets.embed_classes(s["classes"], DEFAULT_TEMPLATES) if ens else s["class_emb"]
            encoder = encoders[HEAD_TRAINING[name]] if use_encoder else None
            results[name] = evaluate(method, s, emb, args.seed, encoder=encoder, **opts)
        if method == "baseline" and not suffix:
            baseline_rows = results
        cells = []
        for name, metric in cols:
            value = results[name].get(metric)
            cells.append("-" if value is None else f"{value:.3f}")
        if agreement_without_accuracy(results["flipkart"], baseline_rows["flipkart"]):
            cells[0] += " (!)"
        total = sum(r["seconds"] for r in results.values())
        label = method + suffix + (" (default)" if method == DEFAULT_METHOD and not suffix else "")
        table.add_row(label, *cells, f"{total:.1f}")
        console.print(f"done: {label}", style="dim")
    console.print(table)

    rob = Table(title=f"robustness on fashion-13 batches, {args.draws} draws each: mean accuracy "
                      "(mean change vs baseline, worst change)")
    rob.add_column("method")
    draws = [robustness_batches(sets["fashion-13"], args.seed + i) for i in range(args.draws)]
    for b in draws[0]:
        rob.add_column(f"{b}\n({np.mean([len(d[b]) for d in draws]):.0f} items on average)", justify="right")
    base = {}
    rows_to_run = [(m, "") for m in methods] + [(m, "+center") for m in ("baseline", DEFAULT_METHOD)]
    rows_to_run += [(DEFAULT_METHOD, "+copeland"), ("pairwise", "+fisher"), (DEFAULT_METHOD, "+midpoint"),
                    (DEFAULT_METHOD, "+seed match"), (DEFAULT_METHOD, "+class prior"),
                    (DEFAULT_METHOD, "+min-count prior")]
    rows_to_run += [("baseline", "+ens"), (DEFAULT_METHOD, "+ens")]
    rows_to_run = [r for r in rows_to_run if wanted is None or "".join(r) in wanted or r == ("baseline", "")]
    f13 = sets["fashion-13"]
    for method, suffix in rows_to_run:
        cells = []
        opts = dict(VARIANTS[suffix])
        ens = opts.pop("ens", False)
        emb = datasets.embed_classes(f13["classes"], DEFAULT_TEMPLATES) if ens else f13["class_emb"]
        for b in draws[0]:
            accs = np.array([evaluate(method, subset(f13, d[b]), emb, args.seed, **opts)["acc name"] for d in draws])
            # Changes are against the baseline with the same class embeddings (the first row of each).
            change = accs - base.setdefault((b, ens), accs)
            cells.append(f"{accs.mean():.3f} ({change.mean():+.3f}, {change.min():+.3f})")
        label = method + suffix
        rob.add_row(label, *cells)
        console.print(f"done: robustness {label}", style="dim")
    console.print(rob)
    console.print("(!) marks agreement above the baseline's while mean accuracy is below it.")


if __name__ == "__main__":
    main()
