"""Accuracy and speed of TransCLIP-ZS against the cosine baseline on the real development sets.

Each set and view runs the cosine baseline and TransCLIP-ZS at a few temperatures, in one process:
CLIP's fixed 0.01 (logit scale 100), 0.02, and "auto" (unit-spread logits, see
``pairclass.transclip.auto_temperature``). Peak memory is the resident-set high-water mark during the
method (see bench_speed.py). Needs ../shared/data (embeddings are cached by scripts/datasets.py).

    python scripts/bench_transclip.py
    python scripts/bench_transclip.py --sets flipkart --temperatures 0.01 auto
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_speed import measure
from datasets import real_sets
from rich.console import Console
from rich.table import Table

from pairclass.classify import baseline_scores
from pairclass.transclip import TransCLIPClassifier


def temperature_arg(text):
    return text if text == "auto" else float(text)


def run_view(X, T, labels, temperatures):
    rows = []
    out = {}
    base_s, base_mem = measure(lambda: out.update(pred=baseline_scores(X, T)[0]))
    rows.append(("baseline", None, float(np.mean(out["pred"] == labels)), base_s, base_mem, 1.0))
    for temperature in temperatures:
        clf = TransCLIPClassifier(temperature=temperature)
        s, mem = measure(lambda: out.update(pred=clf.fit(X, T).predict(X)))
        rows.append(("transclip-zs", clf.temperature_, float(np.mean(out["pred"] == labels)), s, mem, s / base_s))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="*", default=["flipkart", "fashion-13", "fashion-sub"])
    ap.add_argument("--temperatures", nargs="*", type=temperature_arg, default=[0.01, 0.02, "auto"])
    args = ap.parse_args()
    sets = real_sets()
    table = Table(title="TransCLIP-ZS vs cosine baseline (MiniLM text embeddings)")
    for col in ("set", "view", "method", "temperature", "items", "accuracy", "Δ vs baseline",
                "seconds", "items/s", "peak MiB", "time ratio"):
        table.add_column(col, justify="left" if col in ("set", "view", "method") else "right")
    for name in args.sets:
        data = sets[name]
        labels = np.searchsorted(data["classes"], data["labels"])
        for view, X in data["views"].items():
            rows = run_view(X, data["class_emb"], labels, args.temperatures)
            base_acc = rows[0][2]
            for method, temp, acc, s, mem, ratio in rows:
                table.add_row(
                    name, view, method, "" if temp is None else f"{temp:.4f}", f"{X.shape[0]:,}",
                    f"{acc:.4f}", f"{acc - base_acc:+.4f}", f"{s:.2f}", f"{X.shape[0] / s:,.0f}",
                    f"{mem:.0f}", f"{ratio:.1f}",
                )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
