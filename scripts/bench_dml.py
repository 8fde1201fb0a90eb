"""Deep-metric-learning heads on unseen classes: the SOP protocol on fashion product names.

Items are the fashion ``styles.csv`` productDisplayName texts embedded with the offline MiniLM,
labelled by articleType. Classes with at least ``--min-count`` items are sorted by size and split
in alternate pairs (a seeded coin decides which of each pair trains), so training and test classes
are disjoint and alike in size; each class keeps at most ``--per-class`` items (seeded). A head is
trained per loss, with and without Soft Orthogonality (SO) and the Threshold-Consistent Margin
loss (TCM), and every item of the test classes queries all the others.

    .venv/bin/python scripts/bench_dml.py            # CPU, a few minutes; a GPU is used if present
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import fashion_name_embeddings, fashion_styles  # noqa: E402

from pairclass.dml.evaluate import retrieval_metrics  # noqa: E402
from pairclass.dml.losses import PROXY_LOSSES, build_loss  # noqa: E402
from pairclass.dml.model import ProjectionHead  # noqa: E402
from pairclass.dml.train import resolve_device, train_encoder  # noqa: E402

METRICS = ("recall_at_1", "recall_at_10", "recall_at_100", "recall_at_1000", "map_at_r", "opis")


def fashion_split(min_count, per_class, seed, dedupe=True):
    df = fashion_styles()
    name = df["productDisplayName"].str.strip().str.lower()
    named = (name != "").to_numpy().copy()
    if dedupe:
        # A query whose exact name (case aside) is also in the gallery is found trivially.
        named &= ~name.duplicated().to_numpy()
    X = fashion_name_embeddings()[named]
    df = df[named].reset_index(drop=True)
    labels = df["articleType"].to_numpy(object)
    counts = df["articleType"].value_counts()
    counts = counts[counts >= min_count].sort_values(ascending=False, kind="stable")
    rng = np.random.default_rng(seed)
    train_classes, test_classes = [], []
    for pair in np.array_split(counts.index.to_numpy(), -(-len(counts) // 2)):
        order = rng.permutation(len(pair))
        train_classes.append(pair[order[0]])
        test_classes.extend(pair[order[1:]])
    keep = []
    for c in counts.index:
        members = np.flatnonzero(labels == c)
        keep.append(members if per_class is None else rng.choice(members, size=min(per_class, members.size), replace=False))
    keep = np.sort(np.concatenate(keep))
    X, labels = X[keep], labels[keep]
    train = np.isin(labels, train_classes)
    test = np.isin(labels, test_classes)
    return (X[train], labels[train]), (X[test], labels[test])


def configs(so_weight, tcm_weight, only):
    for loss in (*PROXY_LOSSES, "contrastive"):
        if only and loss not in only:
            continue
        for so in ((0.0, so_weight) if loss in PROXY_LOSSES else (0.0,)):
            for tcm in (0.0, tcm_weight):
                name = loss + (" +SO" if so else "") + (" +TCM" if tcm else "")
                yield name, loss, so, tcm


def train_one(loss, so, tcm, X, labels, args, device):
    names, codes = np.unique(labels, return_inverse=True)
    torch.manual_seed(args.seed)
    model = ProjectionHead(X.shape[1], dim=args.dim, hidden=args.hidden)
    criterion = build_loss(loss, names.size, args.dim, so_weight=so, tcm_weight=tcm)
    history = train_encoder(
        model, criterion, X, codes, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        device=device, seed=args.seed,
    )
    model.cpu().eval()
    return model, history


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-count", type=int, default=50, help="smallest class kept")
    parser.add_argument("--per-class", type=int, default=None, help="cap on items per class (seeded); default all")
    parser.add_argument("--keep-duplicates", action="store_true", help="keep items whose name repeats another's")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--so-weight", type=float, default=0.1)
    parser.add_argument("--tcm-weight", type=float, default=1.0)
    parser.add_argument("--losses", nargs="*", default=None, help="only these losses")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = resolve_device(args.device)
    (Xtr, ytr), (Xte, yte) = fashion_split(args.min_count, args.per_class, args.seed, not args.keep_duplicates)
    print(
        f"fashion articleType, MiniLM productDisplayName: train {len(ytr)} items / {np.unique(ytr).size} classes, "
        f"test {len(yte)} items / {np.unique(yte).size} unseen classes; device {device}; "
        f"epochs {args.epochs}, lr {args.lr}, dim {args.dim}, hidden {args.hidden}",
        flush=True,
    )
    # The first optimiser step imports torch's compiler stack; keep that out of the timings.
    train_one("proxy_anchor", 0.0, 0.0, Xtr[:64], ytr[:64], argparse.Namespace(**{**vars(args), "epochs": 1}), device)

    rows = [("raw MiniLM", 0, 0.0, retrieval_metrics(Xte, yte))]
    for name, loss, so, tcm in configs(args.so_weight, args.tcm_weight, args.losses):
        model, history = train_one(loss, so, tcm, Xtr, ytr, args, device)
        with torch.inference_mode():
            Z = model(torch.from_numpy(Xte)).numpy()
        rows.append((name, len(ytr), history.seconds, retrieval_metrics(Z, yte)))
        print(f"  {name}: {history.seconds:.1f} s, R@1 {rows[-1][3]['recall_at_1']:.4f}", file=sys.stderr, flush=True)

    raw_r1 = rows[0][3]["recall_at_1"]
    header = ["method", "train items", "train s", "items/s", "R@1", "R@10", "R@100", "R@1000", "MAP@R", "OPIS", "R@1 / raw"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for name, n, seconds, m in rows:
        speed = f"{n * args.epochs / seconds:,.0f}" if seconds else "-"
        cells = [name, str(n), f"{seconds:.1f}", speed]
        cells += [f"{m[k]:.4f}" for k in METRICS[:-1]] + [f"{m['opis']:.5f}", f"{m['recall_at_1'] / raw_r1:.3f}"]
        print("| " + " | ".join(cells) + " |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
