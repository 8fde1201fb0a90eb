"""Report objects for the report tests, the docs screenshots and scripts/bench_report.py.

``demo_*`` build real reports from the committed demo data (cosine argmax and the pairwise
classifier); ``synthetic_classify_report`` builds one of any size from seeded random numbers.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from scipy.special import softmax

from pairclass.classify import PairwiseClassifier, l2_normalize, pair_index
from pairclass.crossvar import cross_ratio
from pairclass.metrics import agreement_f1, label_scores, per_class_f1
from pairclass.report import AuditReport, ClassifyReport

DATA = Path(__file__).resolve().parents[1] / "data"
DEMO_VIEWS = ["product_name", "description"]
LABEL_COL = "category"


def read_demo():
    """``(ids, labels, {view: normalised X}, normalised T, class names)`` of the demo data."""
    items = pq.read_table(DATA / "demo.parquet")
    classes = pq.read_table(DATA / "demo_classes.parquet")
    n = items.num_rows
    views = {v: l2_normalize(items[v].combine_chunks().values.to_numpy().reshape(n, -1).astype(np.float64))
             for v in DEMO_VIEWS}
    T = l2_normalize(classes["embedding"].combine_chunks().values.to_numpy()
                     .reshape(classes.num_rows, -1).astype(np.float64))
    return (np.asarray(items["product_id"].to_pylist(), dtype=object),
            np.asarray(items[LABEL_COL].to_pylist(), dtype=object), views, T, classes["name"].to_pylist())


def confusion(labels, pred, classes):
    """``(C + 1, C)`` counts: rows the label (last: not a class), columns the predicted class index."""
    index = {c: i for i, c in enumerate(classes)}
    rows = np.array([index.get(label, len(classes)) for label in labels])
    out = np.zeros((len(classes) + 1, len(classes)), dtype=np.int64)
    np.add.at(out, (rows, pred), 1)
    return out


def agreement(pred_a, pred_b, n_classes):
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (pred_a, pred_b), 1)
    return out


def demo_classify_report(*, views=DEMO_VIEWS, labels=True):
    """The demo data classified by the cosine baseline (argmax) and the pairwise classifier."""
    ids, given, X, T, names = read_demo()
    C = len(names)
    views = list(views)
    pred, conf, fallback, clfs = {}, {}, {}, {}
    for v in views:
        clf = PairwiseClassifier(T, k=60).fit(X[v])
        d = clf.decide(X[v])
        pred[("baseline", v)], conf[("baseline", v)] = d.baseline_pred, d.baseline_margin
        pred[("pairwise", v)], conf[("pairwise", v)] = d.pred, d.confidence
        fallback.setdefault("pairwise", {})[v] = clf.n_fallback_pairs_
        clfs[v] = clf
    named = {k: np.asarray(names, dtype=object)[p] for k, p in pred.items()}
    methods = {}
    for m in ("baseline", "pairwise"):
        entry = {"agreement_f1": agreement_f1(named[(m, views[1])], named[(m, views[0])])
                 if len(views) == 2 else None}
        if labels:
            scores = {v: label_scores(given, named[(m, v)]) for v in views}
            entry["accuracy"] = {v: s["accuracy"] for v, s in scores.items()}
            entry["f1"] = {v: s["f1"] for v, s in scores.items()}
        methods[m] = entry
    label_confusion = {k: confusion(given, p, names) for k, p in pred.items()} if labels else {}
    columns = {"product_id": ids}
    if labels:
        columns[LABEL_COL] = given
    for (m, v), p in named.items():
        columns[f"{v}__{m}__pred"] = p
        columns[f"{v}__{m}__confidence"] = conf[(m, v)]
    per_class = []
    if labels:
        f1 = {f"{m}/{v}": per_class_f1(given, p, names)[1] for (m, v), p in named.items()}
        support = per_class_f1(given, given, names)[0]
        per_class = [{"class": c, "support": int(support[i]), "f1": {k: float(x[i]) for k, x in f1.items()}}
                     for i, c in enumerate(names)]
    base = pred[("baseline", views[0])]
    pair_dims = []
    for a, b in [(0, 1), (3, 4), (2, 6)]:
        ratio = cross_ratio(X[views[0]][base == a], X[views[0]][base == b])
        dims = clfs[views[0]].pair_dims_[pair_index(np.array([a]), np.array([b]), C)[0]]
        pair_dims.append({"a": names[a], "b": names[b], "view": views[0], "ratio": ratio,
                          "dims": [int(d) for d in dims if d >= 0]})
    return ClassifyReport(
        source="data/demo.parquet", n_items=len(ids), classes=names, views=views, methods=methods,
        default_method="pairwise", label_confusion=label_confusion,
        view_agreement={m: agreement(pred[(m, views[0])], pred[(m, views[1])], C) for m in methods}
        if len(views) == 2 else {},
        predicted_counts={k: np.bincount(p, minlength=C) for k, p in pred.items()},
        label_counts=label_confusion[("baseline", views[0])][:-1].sum(axis=1) if labels else None,
        per_class=per_class, n_pairs=C * (C - 1) // 2, fallback_pairs=fallback, pair_dims=pair_dims,
        examples=pa.table(columns), id_col="product_id", label_col=LABEL_COL if labels else None,
        text_cols=[], image_col=None, image_root=None, warnings=[],
    )


def demo_audit_report(n_flipped=15, seed=0):
    """The demo data with ``n_flipped`` labels moved to another class, audited by cosine probabilities
    against each given label's mean item: an item is flagged when both views give another class more
    probability than its given label."""
    ids, given, X, _, names = read_demo()
    rng = np.random.default_rng(seed)
    index = {c: i for i, c in enumerate(names)}
    y = np.array([index[g] for g in given])
    flip = rng.choice(y.size, n_flipped, replace=False)
    y[flip] = (y[flip] + rng.integers(1, len(names), n_flipped)) % len(names)
    proba = {}
    for v in DEMO_VIEWS:
        centroids = l2_normalize(np.stack([X[v][y == c].mean(axis=0) for c in range(len(names))]))
        proba[v] = softmax(20 * X[v] @ centroids.T, axis=1)
    rows = np.arange(y.size)
    p_given = {v: p[rows, y] for v, p in proba.items()}
    others = {v: np.where(np.arange(len(names)) == y[:, None], -1, p) for v, p in proba.items()}
    combined = np.mean([o for o in others.values()], axis=0)
    suggested = combined.argmax(axis=1)
    flagged = np.all([proba[v][rows, suggested] > p_given[v] for v in DEMO_VIEWS], axis=0)
    score = np.mean([p_given[v] for v in DEMO_VIEWS], axis=0)
    order = np.flatnonzero(flagged)[np.argsort(score[flagged], kind="stable")]
    reasons = [
        f"both views prefer {names[suggested[i]]} "
        f"({'/'.join(f'{proba[v][i, suggested[i]]:.2f}' for v in DEMO_VIEWS)}) over {names[y[i]]} "
        f"({'/'.join(f'{p_given[v][i]:.2f}' for v in DEMO_VIEWS)})"
        for i in order
    ]
    suspects = pa.table({
        "product_id": ids[order], "given_label": np.asarray(names, dtype=object)[y[order]],
        "suggested_label": np.asarray(names, dtype=object)[suggested[order]], "label_score": score[order],
        "reasons": reasons,
    })
    per_class = np.bincount(y, minlength=len(names))
    noisy = np.bincount(y[flagged], minlength=len(names))
    corrections = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(corrections, (y[flagged], suggested[flagged]), 1)
    return AuditReport(
        source="data/demo.parquet", n_items=y.size, n_flagged=int(flagged.sum()), classes=names,
        suspects=suspects, id_col="product_id", text_cols=[], image_col=None, image_root=None,
        noise_rate={c: float(noisy[i] / max(per_class[i], 1)) for i, c in enumerate(names)},
        corrections=corrections,
    )


WORDS = ("cotton", "steel", "ceramic", "wireless", "kids", "slim", "classic", "set of 2", "premium",
         "analog", "leather", "printed", "non-stick", "double bed", "usb", "floral")


def write_images(folder, n, seed=0, size=(320, 240)):
    """``n`` JPEGs of seeded noise (the worst case for JPEG size); returns their names."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.jpg", quality=90)
        names.append(f"img{i}.jpg")
    return names


def synthetic_classify_report(n_classes, *, n_items=100_000, n_examples=600, dim=512, image_root=None,
                              methods=("baseline", "pairwise", "cotrain"), seed=0):
    """A two-view labelled report of ``n_classes`` classes from seeded random numbers, with text columns
    and, when ``image_root`` is given, a JPEG per example row written there."""
    rng = np.random.default_rng(seed)
    views = ["clip_image_features", "clip_text_features"]
    names = [f"Category {i}: {' '.join(rng.choice(WORDS, 2))}" for i in range(n_classes)]
    label_counts = rng.multinomial(n_items, np.ones(n_classes) / n_classes)

    def confusion_like(counts):
        m = np.zeros((n_classes + 1, n_classes), dtype=np.int64)
        for i, n in enumerate(counts):
            p = np.full(n_classes, 0.2 / max(n_classes - 1, 1))
            p[i] = 0.8
            m[i] = rng.multinomial(n, p / p.sum())
        return m

    label_confusion = {(m, v): confusion_like(label_counts) for m in methods for v in views}
    columns = {"product_id": [f"item-{i}" for i in range(n_examples)],
               "category": rng.choice(names, n_examples)}
    for m in methods:
        for v in views:
            columns[f"{v}__{m}__pred"] = rng.choice(names, n_examples)
            columns[f"{v}__{m}__confidence"] = rng.random(n_examples)
    columns["title"] = [" ".join(rng.choice(WORDS, 5)) for _ in range(n_examples)]
    columns["description"] = [" ".join(rng.choice(WORDS, 40)) for _ in range(n_examples)]
    if image_root is not None:
        columns["image"] = write_images(image_root, n_examples, seed)
    per_class = [{"class": c, "support": int(label_counts[i]),
                  "f1": {f"{m}/{v}": float(rng.random()) for m in methods for v in views}}
                 for i, c in enumerate(names)]
    return ClassifyReport(
        source="s3://catalogue/part-*.parquet", n_items=n_items, classes=names, views=views,
        methods={m: {"agreement_f1": float(rng.random()), "accuracy": {v: float(rng.random()) for v in views},
                     "f1": {v: float(rng.random()) for v in views}} for m in methods},
        default_method=methods[-1], label_confusion=label_confusion,
        view_agreement={m: confusion_like(label_counts)[:-1] for m in methods},
        predicted_counts={k: c.sum(axis=0) for k, c in label_confusion.items()}, label_counts=label_counts,
        per_class=per_class, n_pairs=n_classes * (n_classes - 1) // 2,
        fallback_pairs={m: {v: int(rng.integers(0, 5)) for v in views} for m in methods if m != "baseline"},
        pair_dims=[{"a": names[i], "b": names[i + 1], "view": views[i % 2], "ratio": 1 + rng.random(dim),
                    "dims": sorted(rng.choice(dim, 100, replace=False).tolist())} for i in range(4)],
        examples=pa.table(columns), id_col="product_id", label_col="category",
        text_cols=["title", "description"], image_col="image" if image_root is not None else None,
        image_root=None if image_root is None else str(image_root), warnings=[],
    )
