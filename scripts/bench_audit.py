"""Label-noise benchmark for ``pairclass audit`` on the real sets (see scripts/datasets.py).

Injects seeded label noise (5/10/20%, uniform or towards the class the cosine baseline confuses most
with the true one) and compares (a) pairclass audit, (b) baseline-cosine disagreement flags and
(c) cleanlab on 5-fold cross-validated logistic regression. Reports precision at the number of
injected errors, recall of the flagged set and AUROC of the score.

    python scripts/bench_audit.py [--max-items 6000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from pairclass.audit import audit_labels  # noqa: E402
from pairclass.classify import baseline_scores  # noqa: E402

RATES = (0.05, 0.10, 0.20)


def inject(y, rate, kind, confused, n_classes, rng):
    """Flip ``rate`` of the labels: to a uniform other class, or to the true class's most confused one."""
    flip = rng.choice(y.size, int(round(rate * y.size)), replace=False)
    noisy = y.copy()
    if kind == "uniform":
        noisy[flip] = (y[flip] + rng.integers(1, n_classes, flip.size)) % n_classes
    else:
        noisy[flip] = confused[y[flip]]
    truth = np.zeros(y.size, bool)
    truth[flip] = True
    return noisy, truth


def cosine_views(views, T):
    return np.mean([(X / np.linalg.norm(X, axis=1, keepdims=True)) @ T.T for X in views.values()], axis=0)


def method_audit(views, T, noisy, seed, prototypes="labels"):
    out = audit_labels(views, T, noisy, prototypes=prototypes, seed=seed)
    return out.is_issue, -out.quality


def method_audit_zero_shot(views, T, noisy, seed):
    return method_audit(views, T, noisy, seed, prototypes="text")


def method_cosine(views, T, noisy, seed):
    cos = cosine_views(views, T)
    rows = np.arange(noisy.size)
    return cos.argmax(axis=1) != noisy, cos.max(axis=1) - cos[rows, noisy]


def method_cleanlab_lr(views, T, noisy, seed):
    X = np.hstack(list(views.values()))
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    proba = cross_val_predict(LogisticRegression(max_iter=1000), X, noisy, cv=cv, method="predict_proba")
    flags = find_label_issues(noisy, proba, filter_by="prune_by_noise_rate", n_jobs=1)
    return flags, -get_label_quality_scores(noisy, proba)


METHODS = {"pairclass audit": method_audit, "pairclass audit (text)": method_audit_zero_shot,
           "cosine disagreement": method_cosine,
           "cleanlab CV-LogReg": method_cleanlab_lr}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-items", type=int, default=6000, help="Subsample larger sets (seeded).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for name, s in datasets.real_sets().items():
        rng = np.random.default_rng(args.seed)
        index = {c: i for i, c in enumerate(s["classes"])}
        y = np.array([index[v] for v in s["labels"]])
        keep = np.sort(rng.choice(y.size, min(args.max_items, y.size), replace=False))
        views = {v: X[keep] for v, X in s["views"].items()}
        y, T, C = y[keep], s["class_emb"], len(s["classes"])
        pred = baseline_scores(np.mean(list(views.values()), axis=0), T)[0]
        confusion = np.zeros((C, C))
        np.add.at(confusion, (y, pred), 1)
        np.fill_diagonal(confusion, -1)
        confused = confusion.argmax(axis=1)
        for kind in ("uniform", "confusable"):
            for rate in RATES:
                noisy, truth = inject(y, rate, kind, confused, C, np.random.default_rng(args.seed + 1))
                k = int(truth.sum())
                for method, fn in METHODS.items():
                    tracemalloc.start()
                    t0 = time.perf_counter()
                    flags, score = fn(views, T, noisy, args.seed)
                    secs = time.perf_counter() - t0
                    peak = tracemalloc.get_traced_memory()[1] / 2**20
                    tracemalloc.stop()
                    top = np.argsort(-score, kind="stable")[:k]
                    rows.append(dict(
                        set=name, noise=f"{kind} {rate:.0%}", method=method, items=y.size,
                        p_at_k=truth[top].mean(), recall=(flags & truth).sum() / k,
                        flagged=int(flags.sum()), auroc=roc_auc_score(truth, score),
                        secs=secs, ips=y.size / secs, peak=peak,
                    ))
                    r = rows[-1]
                    print(f"{name:12s} {r['noise']:15s} {method:22s} {r['items']:6d} P@k={r['p_at_k']:.3f} "
                          f"recall={r['recall']:.3f} flagged={r['flagged']:5d} AUROC={r['auroc']:.3f} "
                          f"{secs:7.2f}s", file=sys.stderr, flush=True)
    base = {(r["set"], r["noise"]): r["secs"] for r in rows if r["method"] == "cosine disagreement"}
    print("| set | noise | method | items | P@#injected | recall | flagged | AUROC | seconds | items/s "
          "| peak MiB | time vs cosine |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["secs"] / base[(r["set"], r["noise"])]
        print(f"| {r['set']} | {r['noise']} | {r['method']} | {r['items']} | {r['p_at_k']:.3f} | "
              f"{r['recall']:.3f} | {r['flagged']} | {r['auroc']:.3f} | {r['secs']:.2f} | {r['ips']:.0f} | "
              f"{r['peak']:.0f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
