"""Label-noise benchmark for ``pairclass audit`` on the real sets (see scripts/datasets.py), and its scale.

Noise: seeded flips of 5/10/20% of the labels, uniform to another class, or confusable (to the class
whose centroid is nearest the true class's). Rows in one run: pairclass audit, each of its signals
alone, the zero-shot audit, and the anchors: cleanlab on 5-fold logistic regression over both views,
cleanlab on kNN (k=30) vote shares, and cleanlab on the mean of those two. Columns: precision at n
(n = the number of flips) over the method's ranking, recall of its flagged set, flagged count, seconds.
The last tables give what bounds precision: the items the audit flags on the unflipped labels (the
sets' own label errors), and how many of the non-flips in the audit's top n are among them.

    python scripts/bench_audit.py [--sets flipkart,fashion-13] [--max-items 6000] [--seed 0]
    python scripts/bench_audit.py --scale 1000000       # pairclass audit on generated 1M x 2 x 768-d
    python scripts/bench_audit.py --knn-libraries 1000000   # faiss vs pynndescent vs scikit-learn
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from pairclass.audit import audit_arrays, project  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RATES = (0.05, 0.10, 0.20)
ANCHOR_K = 30


def inject(y, rate, kind, nearest, n_classes, rng):
    """Flip ``rate`` of the labels: to a uniform other class, or to the true class's nearest one."""
    flip = rng.choice(y.size, int(round(rate * y.size)), replace=False)
    noisy = y.copy()
    if kind == "uniform":
        noisy[flip] = (y[flip] + rng.integers(1, n_classes, flip.size)) % n_classes
    else:
        noisy[flip] = nearest[y[flip]]
    truth = np.zeros(y.size, bool)
    truth[flip] = True
    return noisy, truth


def nearest_classes(X, y, n_classes):
    """For each class, the class whose centroid (of the true labels) is nearest its own."""
    centroids = np.stack([X[y == c].mean(axis=0) for c in range(n_classes)])
    d = ((centroids[:, None] - centroids[None]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    return d.argmin(axis=1)


def _cleanlab(noisy, proba):
    flags = find_label_issues(noisy, proba, filter_by="prune_by_noise_rate", n_jobs=1)
    return flags, get_label_quality_scores(noisy, proba)


def anchor_probas(views, noisy, n_classes, seed):
    """The anchors' probabilities: 5-fold logistic regression on both views side by side, and the
    label shares of each item's 30 nearest neighbours (cosine, on both views side by side, itself left out)."""
    X = np.hstack([v / np.linalg.norm(v, axis=1, keepdims=True) for v in views.values()])
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    t = time.perf_counter()
    lr = cross_val_predict(LogisticRegression(max_iter=1000), X, noisy, cv=cv, method="predict_proba")
    t_lr = time.perf_counter() - t
    t = time.perf_counter()
    idx = NearestNeighbors(n_neighbors=ANCHOR_K + 1, metric="cosine").fit(X).kneighbors(X)[1]
    idx = np.array([row[row != i][:ANCHOR_K] for i, row in enumerate(idx)])
    knn = np.zeros((noisy.size, n_classes))
    np.add.at(knn, (np.repeat(np.arange(noisy.size), ANCHOR_K), noisy[idx].ravel()), 1 / ANCHOR_K)
    return {"cleanlab + 5-fold LR": (lr, t_lr), "cleanlab + kNN-30 votes": (knn, time.perf_counter() - t)}


OURS = {
    "pairclass audit": dict(),
    "pairclass audit, 1 round": dict(rounds=1),
    "signal: classifier": dict(signals=("classifier",)),
    "signal: neighbours": dict(signals=("neighbours",)),
    "signal: zero-shot (audit --zero-shot)": dict(signals=("zero-shot",), rounds=1),
    "pairclass audit + zero-shot": dict(signals=("classifier", "neighbours", "zero-shot")),
}


def run_ours(views, features, T, noisy, names, seed, settings):
    t = time.perf_counter()
    result = audit_arrays(features, noisy, names, raw=views, class_embeddings=T, seed=seed, **settings)
    return (result.items["is_label_issue"].to_numpy(zero_copy_only=False),
            result.items["label_score"].to_numpy(), time.perf_counter() - t)


def real_rows(sets, max_items, seed):
    rows, bounds = [], []
    for name, s in datasets.real_sets().items():
        if name not in sets:
            continue
        rng = np.random.default_rng(seed)
        index = {c: i for i, c in enumerate(s["classes"])}
        y = np.array([index[v] for v in s["labels"]])
        keep = np.sort(rng.choice(y.size, min(max_items, y.size), replace=False))
        views = {v: X[keep] for v, X in s["views"].items()}
        y, T, C, names = y[keep], s["class_emb"], len(s["classes"]), list(s["classes"])
        features = project(views, seed=seed)
        nearest = nearest_classes(np.hstack(list(views.values())), y, C)
        suspects, _, secs = run_ours(views, features, T, y, names, seed, {})
        bounds.append(dict(set=name, items=y.size, flagged=int(suspects.sum()), secs=secs))
        for kind in ("uniform", "confusable"):
            for rate in RATES:
                noisy, truth = inject(y, rate, kind, nearest, C, np.random.default_rng(seed + 1))
                n = int(truth.sum())
                results = {}
                for method, settings in OURS.items():
                    results[method] = run_ours(views, features, T, noisy, names, seed, settings)
                anchors = anchor_probas(views, noisy, C, seed)
                (lr, t_lr), (knn, t_knn) = anchors.values()
                anchors["cleanlab + mean of LR and kNN"] = ((lr + knn) / 2, t_lr + t_knn)
                for method, (proba, secs) in anchors.items():
                    results[method] = (*_cleanlab(noisy, proba), secs)
                for method, (flags, score, secs) in results.items():
                    top = np.argsort(score, kind="stable")[:n]
                    missed = top[~truth[top]]
                    rows.append(dict(set=name, noise=f"{kind} {rate:.0%}", method=method, items=y.size, n=n,
                                     p_at_n=truth[top].mean(), recall=(flags & truth).sum() / n,
                                     flagged=int(flags.sum()), secs=secs, non_flips=missed.size,
                                     suspect_non_flips=int(suspects[missed].sum())))
                    r = rows[-1]
                    print(f"{name:11s} {r['noise']:15s} {method:38s} P@n={r['p_at_n']:.3f} recall={r['recall']:.3f} "
                          f"flagged={r['flagged']:5d}/{n} {secs:6.1f}s", file=sys.stderr, flush=True)
    return rows, bounds


def print_tables(rows, bounds):
    print("| set | noise | method | P@n | recall | flagged | n flipped | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['noise']} | {r['method']} | {r['p_at_n']:.3f} | {r['recall']:.3f} | "
              f"{r['flagged']} | {r['n']} | {r['secs']:.1f} |")
    print()
    print("| set | noise | best anchor | P@n | pairclass audit | gain | flagged / flipped |")
    print("|---|---|---|---|---|---|---|")
    for key in dict.fromkeys((r["set"], r["noise"]) for r in rows):
        group = [r for r in rows if (r["set"], r["noise"]) == key]
        best = max((r for r in group if r["method"].startswith("cleanlab")), key=lambda r: r["p_at_n"])
        ours = next(r for r in group if r["method"] == "pairclass audit")
        print(f"| {key[0]} | {key[1]} | {best['method']} | {best['p_at_n']:.3f} | {ours['p_at_n']:.3f} | "
              f"{ours['p_at_n'] - best['p_at_n']:+.3f} | {ours['flagged'] / ours['n']:.2f} |")
    print()
    print("| set | items | flagged by pairclass audit on the unflipped labels |")
    print("|---|---|---|")
    for b in bounds:
        print(f"| {b['set']} | {b['items']} | {b['flagged']} ({b['flagged'] / b['items']:.1%}) |")
    print()
    print("| set | noise | n | non-flips in the audit's top n | of them flagged on the unflipped labels | "
          "P@n counting those as errors |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["method"] == "pairclass audit":
            print(f"| {r['set']} | {r['noise']} | {r['n']} | {r['non_flips']} | {r['suspect_non_flips']} | "
                  f"{1 - (r['non_flips'] - r['suspect_non_flips']) / r['n']:.3f} |")


def scale(n, folder, keep):
    """``pairclass audit`` on ``n`` generated items (bench_scale's generator), in a child process."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from bench_scale import generate, measure

    folder.mkdir(parents=True, exist_ok=True)
    data, classes = folder / "items.parquet", folder / "classes.parquet"
    if not data.exists():
        print(f"generating {n:,} items in {data}", file=sys.stderr, flush=True)
        T, names = generate(data, n)
        pq.write_table(pa.table({"name": names, "embedding": pa.array(list(T), pa.list_(pa.float32()))}), classes)
    argv = [str(Path(sys.executable).with_name("pairclass")), "audit", str(data), "--classes", str(classes),
            "--label-col", "category", "--out", str(folder / "issues.parquet"), "--json"]
    seconds, cpu, rss, anon = measure(argv)
    print(f"| pairclass audit | {n:,} | {seconds:.0f} | {n / seconds:,.0f} | {cpu:.0%} | {rss:,.0f} | {anon:,.0f} |")
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)


KNN_LIBRARIES = ("faiss IVF (pairclass)", "faiss IVF, float32 rows", "faiss exact", "pynndescent",
                 "sklearn NearestNeighbors")
KNN_SAMPLE = 2_000


def knn_features(n, path, seed=0):
    """``n`` rows of the audit's feature space for bench_scale's generated items: 768-d points around
    13 centres, normalised and projected on 128 principal components (fitted on a 20k sample)."""
    from bench_scale import DIM, N_CLASSES

    from pairclass.audit import Projection

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CLASSES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    draw = lambda m: centres[rng.integers(0, N_CLASSES, m)] + 0.04 * rng.standard_normal((m, DIM), dtype=np.float32)  # noqa: E731
    projection = Projection.fit({"v": draw(20_000)}, seed=seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, projection.dims))
    for start in range(0, n, 65_536):
        m = min(65_536, n - start)
        out[start:start + m] = projection.transform(draw(m))
    out.flush()


def knn_child(library, path, out, seed, k=10):
    """One library's kNN graph of the rows in ``path`` (itself left out); prints seconds and recall@k
    against the exact neighbours of a seeded sample of queries. Libraries too slow for every row time
    the sample and scale up (written as ``extrapolated``)."""
    import faiss

    from pairclass.audit import nearest_neighbours

    X = np.load(path)
    n = X.shape[0]
    queries = np.sort(np.random.default_rng(seed).choice(n, KNN_SAMPLE, replace=False))
    exact = faiss.IndexFlatL2(X.shape[1])
    exact.add(X)
    truth = exact.search(X[queries], k + 1)[1][:, 1:]
    t = time.perf_counter()
    how = "all rows"
    if library.startswith("faiss IVF"):
        storage = "fp32" if "float32" in library else "fp16"
        found = nearest_neighbours(X, k, exact=False, seed=seed, storage=storage)[queries]
    elif library == "pynndescent":
        try:
            from pynndescent import NNDescent
        except ImportError:  # not a dependency: installed beside the environment for a run
            return Path(out).write_text("- - not installed")
        found = NNDescent(X, n_neighbors=k + 1, random_state=seed, low_memory=True).neighbor_graph[0][queries, 1:]
    elif library == "faiss exact":
        found = exact.search(X[queries], k + 1)[1][:, 1:]
        how = "extrapolated from the sample"
    else:
        nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(X)
        found = nn.kneighbors(X[queries])[1][:, 1:]
        how = "extrapolated from the sample"
    seconds = time.perf_counter() - t
    if how != "all rows":
        seconds *= n / KNN_SAMPLE
    recall = np.mean([np.isin(f, r).mean() for f, r in zip(found, truth)])
    Path(out).write_text(f"{seconds:.1f} {recall:.4f} {how}")


def knn_libraries(n, folder, seed):
    from bench_scale import measure

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"features-{n}.npy"
    if not path.exists():
        print(f"generating {n:,} x 128 features in {path}", file=sys.stderr, flush=True)
        knn_features(n, path, seed)
    print("| library | items | kNN graph seconds | how | recall@10 | peak RSS MiB | peak anon RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for library in KNN_LIBRARIES:
        out = folder / "child.txt"
        argv = [sys.executable, __file__, "--knn-child", library, str(path), str(out), "--seed", str(seed)]
        _, _, rss, anon = measure(argv)
        seconds, recall, how = out.read_text().split(" ", 2)
        ran = seconds != "-"
        cells = [f"{float(seconds):,.0f}" if ran else "-", how.strip(), recall,
                 f"{rss:,.0f}" if ran else "-", f"{anon:,.0f}" if ran else "-"]
        print(f"| {library} | {n:,} | " + " | ".join(cells) + " |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="flipkart,fashion-13")
    parser.add_argument("--max-items", type=int, default=6000, help="Subsample larger sets (seeded).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, help="Run the audit at this many generated items instead.")
    parser.add_argument("--knn-libraries", type=int, help="Compare the kNN libraries at this many items instead.")
    parser.add_argument("--dir", type=Path, default=ROOT / "bench_out" / "audit_scale")
    parser.add_argument("--keep", action="store_true", help="Keep the generated data.")
    parser.add_argument("--knn-child", nargs=3, metavar=("LIBRARY", "FEATURES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale:
        return scale(args.scale, args.dir / f"n{args.scale}", args.keep)
    if args.knn_child:
        return knn_child(*args.knn_child, args.seed)
    if args.knn_libraries:
        return knn_libraries(args.knn_libraries, args.dir, args.seed)
    rows, bounds = real_rows(args.sets.split(","), args.max_items, args.seed)
    print_tables(rows, bounds)


if __name__ == "__main__":
    main()
