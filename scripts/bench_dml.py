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
from pairclass.dml.losses import LOSSES  # noqa: E402
from pairclass.dml.train import DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_PATIENCE, resolve_device  # noqa: E402
from pairclass.dml.validation import DEFAULT_VAL_CLASSES_FRAC  # noqa: E402

# split -> smallest class kept. Flipkart has 1,050 items in 62 second-level classes.
SPLITS = {"fashion-article": 50, "fashion-sub": 50, "flipkart-l2": 5}
DEFAULT_LOSSES = [f"{loss}{tcm}" for loss in LOSSES for tcm in ("", "+tcm")]


def labelled_names(split):
    """Every item's name and label for ``split``."""
    if split == "flipkart-l2":
        df = pd.read_csv(require(FLIPKART_CSV))
        tree = df["product_category_tree"].map(lambda s: [p.strip() for p in json.loads(s)[0].split(">>")])
        return df["product_name"], tree.map(lambda parts: " >> ".join(parts[:2])).to_numpy(object), None
    df = fashion_styles()
    return df["productDisplayName"], df["articleType" if split == "fashion-article" else "subCategory"].to_numpy(object), df


def load_split(split, seed):
    """``(X_train, y_train), (X_unseen, y_unseen)`` for one split."""
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
    return (X[train], labels[train]), (X[unseen], labels[unseen])


def parse_loss(name):
    loss, _, extra = name.partition("+")
    if loss not in LOSSES or extra not in ("", "tcm"):
        raise SystemExit(f"Error: unknown loss {name!r}; use one of {', '.join(DEFAULT_LOSSES)}")
    return loss, bool(extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="*", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--losses", nargs="*", default=DEFAULT_LOSSES, help="loss names, +tcm adds TCM")
    parser.add_argument("--lrs", nargs="*", type=float, default=[DEFAULT_LR])
    parser.add_argument("--epochs", nargs="*", type=int, default=[DEFAULT_EPOCHS], help="most epochs")
    parser.add_argument("--patience", nargs="*", type=int, default=[DEFAULT_PATIENCE])
    parser.add_argument("--val-frac", nargs="*", type=float, default=[DEFAULT_VAL_CLASSES_FRAC],
                        help="validation class shares")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="seeds of the class split and the head")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--tcm-weight", type=float, default=1.0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    losses = [parse_loss(n) for n in args.losses]
    device = resolve_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, hidden {args.hidden}", flush=True)
    header = ["split", "seed", "train items / classes", "unseen items / classes", "loss", "lr", "epochs", "patience",
              "val frac", "val R@1 raw / best", "best epoch / run", "R@1", "MAP@R", "OPIS", "R@1 - raw", "s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|", flush=True)
    for split, seed in itertools.product(args.splits, args.seeds):
        (Xtr, ytr), (Xte, yte) = load_split(split, seed)
        raw = retrieval_metrics(Xte, yte)
        sizes = [f"{len(ytr)} / {np.unique(ytr).size}", f"{len(yte)} / {np.unique(yte).size}"]
        print(row([split, seed, *sizes, "raw", "-", "-", "-", "-", "-", "-"], raw, raw, 0.0), flush=True)
        for (loss, tcm), lr, epochs, patience, frac in itertools.product(
            losses, args.lrs, args.epochs, args.patience, args.val_frac
        ):
            fit = fit_head(
                Xtr, ytr, loss=loss, tcm_weight=args.tcm_weight if tcm else 0.0, hidden=args.hidden,
                epochs=epochs, batch_size=args.batch_size, lr=lr, patience=patience, val_classes_frac=frac,
                device=device, seed=seed,
            )
            with torch.inference_mode():
                Z = fit.model(torch.as_tensor(Xte, device=device)).cpu().numpy()
            h = fit.history
            val = "-" if not h.curve else f"{h.curve[0]['recall_at_1']:.4f} / {h.curve[h.best_epoch]['recall_at_1']:.4f}"
            cells = [split, seed, *sizes, loss + (" +TCM" if tcm else ""), f"{lr:g}", epochs, patience, f"{frac:g}",
                     val, f"{h.best_epoch} / {len(h.epoch_loss)}"]
            print(row(cells, retrieval_metrics(Z, yte), raw, h.seconds), flush=True)


def row(cells, m, raw, seconds):
    cells = [str(c) for c in cells]
    cells += [f"{m['recall_at_1']:.4f}", f"{m['map_at_r']:.4f}", f"{m['opis']:.4f}"]
    cells += [f"{m['recall_at_1'] - raw['recall_at_1']:+.4f}", f"{seconds:.1f}"]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
