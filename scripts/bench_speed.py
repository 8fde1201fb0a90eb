"""Speed and peak memory of the cosine baseline against the pairwise method (fit + predict).

Synthetic L2-normalised float32 embeddings (D=768 by default) clustered around C class directions.
Each configuration runs baseline and pairwise in one process, one after the other, so the ratio
is measured on the same machine state. Peak memory is the resident-set high-water mark during the
method, reset before each (Linux /proc/self/clear_refs), reported beside the input matrix size.

    python scripts/bench_speed.py                      # N in {300k, 1M}, C in {13, 200}
    python scripts/bench_speed.py --n 10000 --c 13     # one configuration
    python scripts/bench_speed.py --c 13 --tournaments bracket copeland   # knockout vs round robin
    python scripts/bench_speed.py --matches cosine midpoint fisher        # match scoring
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pairclass import PairwiseClassifier
from pairclass.classify import baseline_scores


def make_data(n, c, d, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((c, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    X = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 65536):
        stop = min(start + 65536, n)
        block = rng.standard_normal((stop - start, d), dtype=np.float32) * 0.06
        block += centres[rng.integers(0, c, stop - start)]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        X[start:stop] = block
    T = centres + rng.standard_normal((c, d), dtype=np.float32) * 0.03
    return X, T / np.linalg.norm(T, axis=1, keepdims=True)


def reset_peak():
    Path("/proc/self/clear_refs").write_text("5")


def rss_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def measure(fn):
    base = rss_kib("VmRSS")
    reset_peak()
    t = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t
    return seconds, (rss_kib("VmHWM") - base) / 1024


def run(n, c, d, k, candidates, tournaments, matches):
    X, T = make_data(n, c, d)
    input_mib = X.nbytes / 2**20
    rows = []
    base_s, base_mem = measure(lambda: baseline_scores(X, T))
    rows.append(("baseline", n, c, base_s, base_mem, input_mib, 1.0))
    for tournament in tournaments:
        for match in matches:
            clf = PairwiseClassifier(T, k=k, candidates=candidates, tournament=tournament, match=match)
            pair_s, pair_mem = measure(lambda: clf.fit(X).decide(X))
            name = "pairwise" + (f" (top-{candidates})" if candidates else "")
            name += f" {tournament}" if tournament != "bracket" else ""
            name += f" {match}" if match != "cosine" else ""
            rows.append((name, n, c, pair_s, pair_mem, input_mib, pair_s / base_s))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="*", default=[300_000, 1_000_000])
    ap.add_argument("--c", type=int, nargs="*", default=[13, 200])
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--candidates", type=int, default=8, help="top-M pruning used when C > 2M")
    ap.add_argument("--tournaments", nargs="*", default=["bracket"], choices=["bracket", "copeland"])
    ap.add_argument("--matches", nargs="*", default=["cosine"], choices=["cosine", "midpoint", "fisher"],
                    help="match scorings to time (fisher: the transductive methods' match)")
    args = ap.parse_args()

    table = Table(title=f"pairclass speed (D={args.d}, k={args.k})")
    for col in ("method", "items", "classes", "seconds", "items/s", "peak MiB over input", "input MiB",
                "x baseline"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for c in args.c:
        for n in args.n:
            cands = args.candidates if c > 2 * args.candidates else None
            for method, items, classes, s, mem, inp, ratio in run(n, c, args.d, args.k, cands, args.tournaments,
                                                                    args.matches):
                table.add_row(method, f"{items:,}", str(classes), f"{s:.2f}", f"{items / s:,.0f}",
                              f"{mem:,.0f}", f"{inp:,.0f}", f"{ratio:.2f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
