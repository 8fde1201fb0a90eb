"""Deep-metric-learning heads on unseen classes: the SOP protocol on three real splits.

Items are product names embedded with the offline MiniLM: fashion ``styles.csv`` productDisplayName
labelled by articleType (``fashion-article``) or subCategory (``fashion-sub``), and flipkart
product_name labelled by the second level of its category tree (``flipkart-l2``). Names that repeat
another item's name (case aside) are dropped, since an exact duplicate makes retrieval trivial.
Classes with at least the split's minimum count are sorted by size and split in alternate pairs (a
seeded coin decides which of each pair trains), so training and unseen classes are disjoint and
alike in size. Each head is fitted as ``pairclass train`` fits it (:func:`pairclass.dml.fit.fit_head`:
validation classes held out of the training classes, best epoch kept, the identity when none beats
the raw embeddings), and every item of the unseen classes queries all the others.

    .venv/bin/python scripts/bench_dml.py                       # the default grid (CPU: tens of minutes)
    .venv/bin/python scripts/bench_dml.py --splits flipkart-l2 --losses proxy_anchor --lrs 1e-4 3e-4 1e-3
    .venv/bin/python scripts/bench_dml.py --short --max-per-class 300 --losses proxy_anchor proxy_anchor+tcm \
        proxy_anchor+so proxy_anchor+so+tcm                      # SO and TCM on capped training sets
    .venv/bin/python scripts/bench_dml.py --short --seeds 0 1 2 ...   # then each loss's means over the seeds

With several seeds (each draws its own class split), a closing table averages every loss over them
and pairs each +TCM run with the same loss's run on the same seed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import FLIPKART_CSV, embed_texts, fashion_name_embeddings, fashion_styles, require  # noqa: E402

from pairclass.dml.evaluate import retrieval_metrics  # noqa: E402
from pairclass.dml.fit import fit_head  # noqa: E402
from pairclass.dml.losses import LOSSES, PROXY_LOSSES  # noqa: E402
from pairclass.dml.train import DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_PATIENCE, resolve_device  # noqa: E402
from pairclass.dml.validation import DEFAULT_VAL_CLASSES_FRAC  # noqa: E402

# split -> smallest class kept. Flipkart has 1,050 items in 62 second-level classes.
SPLITS = {"fashion-article": 50, "fashion-sub": 50, "flipkart-l2": 5}
DEFAULT_LOSSES = [f"{loss}{tcm}" for loss in LOSSES for tcm in ("", "+tcm")]
SHORT = ["split", "loss", "raw R@1", "best epoch / run", "R@1", "MAP@R", "OPIS", "s"]


def labelled_names(split):
    """Every item's name and label for ``split``."""
    if split == "flipkart-l2":
        df = pd.read_csv(require(FLIPKART_CSV))
        tree = df["product_category_tree"].map(lambda s: [p.strip() for p in json.loads(s)[0].split(">>")])
        return df["product_name"], tree.map(lambda parts: " >> ".join(parts[:2])).to_numpy(object), None
    df = fashion_styles()
    return df["productDisplayName"], df["articleType" if split == "fashion-article" else "subCategory"].to_numpy(object), df


def load_split(split, seed, max_per_class=None):
    """``(X_train, y_train), (X_unseen, y_unseen)`` for one split; at most ``max_per_class`` items
    of each training class (a seeded draw), every unseen item."""
    names, labels, styles = labelled_names(split)
    X = embed_texts(names) if styles is None else fashion_name_embeddings()
    name = names.str.strip().str.lower()
    # A query whose exact name (case aside) is also in the gallery is found trivially.
    keep = ((name != "") & ~name.duplicated()).to_numpy()
    X, labels = X[keep], labels[keep]
    counts = pd.Series(labels).value_counts()
    counts = counts[counts >= SPLITS[split]].sort_values(ascending=False, kind="stable")
    rng = np.random.default_rng(seed)
    train_classes = [pair[rng.permutation(len(pair))[0]] for pair in np.array_split(counts.index.to_numpy(), -(-len(counts) // 2))]
    train = np.isin(labels, train_classes)
    unseen = np.isin(labels, counts.index) & ~train
    if max_per_class:
        rows = [rng.permutation(np.flatnonzero(labels == c))[:max_per_class] for c in train_classes]
        train = np.isin(np.arange(labels.size), np.concatenate(rows))
    return (X[train], labels[train]), (X[unseen], labels[unseen])


def parse_loss(name):
    """``(loss, so, tcm)`` from a name such as ``proxy_anchor+so+tcm``."""
    loss, *extras = name.split("+")
    known = extras in ([], ["so"], ["tcm"], ["so", "tcm"]) and ("so" not in extras or loss in PROXY_LOSSES)
    if loss not in LOSSES or not known:
        raise SystemExit(f"Error: unknown loss {name!r}; use one of {', '.join(DEFAULT_LOSSES)}, "
                         "+so (proxy losses) before +tcm")
    return loss, "so" in extras, "tcm" in extras


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="*", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--losses", nargs="*", default=DEFAULT_LOSSES, help="loss names, +so adds SO, +tcm adds TCM")
    parser.add_argument("--lrs", nargs="*", type=float, default=[DEFAULT_LR])
    parser.add_argument("--epochs", nargs="*", type=int, default=[DEFAULT_EPOCHS], help="most epochs")
    parser.add_argument("--patience", nargs="*", type=int, default=[DEFAULT_PATIENCE])
    parser.add_argument("--val-frac", nargs="*", type=float, default=[DEFAULT_VAL_CLASSES_FRAC],
                        help="validation class shares")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="seeds of the class split and the head")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--so-weight", type=float, default=0.1)
    parser.add_argument("--tcm-weight", type=float, default=1.0)
    parser.add_argument("--max-per-class", type=int, help="most training items per training class (a seeded draw)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (on a shared CPU, 1 is many times faster than 2)")
    parser.add_argument("--short", action="store_true", help="only the columns " + ", ".join(SHORT))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    losses = [parse_loss(n) for n in args.losses]
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    print(f"device {device}, torch threads {torch.get_num_threads()}, hidden {args.hidden}, "
          f"training items per class at most {args.max_per_class or 'all'}", flush=True)
    header = ["split", "seed", "train items / classes", "unseen items / classes", "loss", "lr", "epochs", "patience",
              "val frac", "val R@1 raw / best", "best epoch / run", "R@1", "MAP@R", "OPIS", "R@1 - raw", "s"]
    header = SHORT if args.short else header
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|", flush=True)
    results = []
    for split, seed in itertools.product(args.splits, args.seeds):
        (Xtr, ytr), (Xte, yte) = load_split(split, seed, args.max_per_class)
        raw = retrieval_metrics(Xte, yte)
        sizes = [f"{len(ytr)} / {np.unique(ytr).size}", f"{len(yte)} / {np.unique(yte).size}"]
        print(f"{split}: training items / classes {sizes[0]}, unseen {sizes[1]}", file=sys.stderr, flush=True)
        cells = [split, "raw", "-", "-"] if args.short else [split, seed, *sizes, "raw", "-", "-", "-", "-", "-", "-"]
        print(row(cells, raw, raw, 0.0, args.short), flush=True)
        results.append({"split": split, "seed": seed, "loss": "raw", **raw})
        for (loss, so, tcm), lr, epochs, patience, frac in itertools.product(
            losses, args.lrs, args.epochs, args.patience, args.val_frac
        ):
            fit = fit_head(
                Xtr, ytr, loss=loss, so_weight=args.so_weight if so else 0.0,
                tcm_weight=args.tcm_weight if tcm else 0.0, hidden=args.hidden, epochs=epochs,
                batch_size=args.batch_size, lr=lr, patience=patience, val_classes_frac=frac, device=device, seed=seed,
            )
            with torch.inference_mode():
                Z = fit.model(torch.as_tensor(Xte, device=device)).cpu().numpy()
            h = fit.history
            val = "-" if not h.curve else f"{h.curve[0]['recall_at_1']:.4f} / {h.curve[h.best_epoch]['recall_at_1']:.4f}"
            name = loss + (" +SO" if so else "") + (" +TCM" if tcm else "")
            chosen = f"{h.best_epoch} / {len(h.epoch_loss)}"
            cells = ([split, name, f"{raw['recall_at_1']:.4f}", chosen] if args.short else
                     [split, seed, *sizes, name, f"{lr:g}", epochs, patience, f"{frac:g}", val, chosen])
            metrics = retrieval_metrics(Z, yte)
            print(row(cells, metrics, raw, h.seconds, args.short), flush=True)
            if len(args.lrs) == len(args.epochs) == len(args.patience) == len(args.val_frac) == 1:
                results.append({"split": split, "seed": seed, "loss": name, **metrics})
    if len(args.seeds) > 1 and results:
        print_seed_means(pd.DataFrame(results))


def print_seed_means(df):
    """Each loss's metrics averaged over the seeds, and for a +TCM loss its change against the same
    loss without TCM: the mean change and on how many seeds OPIS fell."""
    print("\nmean over seeds (TCM's effect: the +TCM loss minus the same loss without it, seed by seed)\n")
    header = ["split", "loss", "seeds", "R@1", "MAP@R", "OPIS", "TCM: R@1 points", "TCM: OPIS", "OPIS fell on"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for (split, loss), g in df.groupby(["split", "loss"], sort=False):
        cells = [split, loss, str(len(g)), *(f"{g[m].mean():.4f}" for m in ("recall_at_1", "map_at_r", "opis"))]
        base = df[(df["split"] == split) & (df["loss"] == loss.removesuffix(" +TCM"))]
        paired = g.merge(base, on="seed", suffixes=("", "_base")) if loss.endswith(" +TCM") else base.iloc[:0]
        if len(paired):
            d_r1 = 100 * (paired["recall_at_1"] - paired["recall_at_1_base"]).mean()
            d_opis = (paired["opis"] / paired["opis_base"] - 1).mean()
            fell = int((paired["opis"] < paired["opis_base"]).sum())
            cells += [f"{d_r1:+.2f}", f"{d_opis:+.1%}", f"{fell} / {len(paired)}"]
        else:
            cells += ["-", "-", "-"]
        print("| " + " | ".join(cells) + " |", flush=True)


def row(cells, m, raw, seconds, short=False):
    cells = [str(c) for c in cells]
    cells += [f"{m['recall_at_1']:.4f}", f"{m['map_at_r']:.4f}", f"{m['opis']:.4f}"]
    cells += [] if short else [f"{m['recall_at_1'] - raw['recall_at_1']:+.4f}"]
    return "| " + " | ".join(cells + [f"{seconds:.1f}"]) + " |"


if __name__ == "__main__":
    main()
