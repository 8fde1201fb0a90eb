"""Catalogue scale: classify at N items against a streaming floor, with time, CPU and peak memory.

Generates SQID-layout parquet (product_id, two 768-d list<float> views, a label; 13 classes) in
row groups, never holding the items in memory, then times in separate processes:

- floor: read both views in record batches, normalise, cosine argmax (the least any classifier does);
- ``pairclass classify --method baseline``, ``--method pairwise`` and the default method, each
  writing its predictions (a folder of part files).

For each it reports wall seconds, items/s, CPU use (user + system over wall: 200% is both cores of a
2-core machine), peak RSS, peak anonymous RSS (sampled every 50 ms; the memory-mapped view cache is
file pages, which the kernel can drop, so it does not count), and the ratio to the floor of the same
run.

    python scripts/bench_scale.py                       # N in 250k, 1M, 5M
    python scripts/bench_scale.py --n 250000 --keep     # one size; keep the generated data
    python scripts/bench_scale.py --variants default --cache no   # re-read the files every scan
    python scripts/bench_scale.py --n 1000000 --parts 16 --variants floor,baseline,pairwise \\
        --engine local,ray:1,ray:2

``--engine`` runs each classify variant on each engine (``ray:W``: a local Ray cluster of W CPUs, W map
tasks at once, started by the run and counted in its time) and adds its ratio to the local engine's
run. With Ray, the CPU and memory columns are the driver's only (the workers are Ray's processes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DIM, N_CLASSES, ROW_GROUP = 768, 13, 65_536


def files_of(path):
    path = Path(path)
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def generate(path, n, seed=0, parts=1):
    """Two views around 13 class centres (the image view noisier); class embeddings off-centre.
    With ``parts`` > 1, ``path`` is a folder of that many part files (whole row groups each)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CLASSES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    names = pa.array([f"class {c:02d}" for c in range(N_CLASSES)])
    writer = None
    groups_per_part = -(-(-(-n // ROW_GROUP)) // parts)
    for start in range(0, n, ROW_GROUP):
        m = min(ROW_GROUP, n - start)
        y = rng.integers(0, N_CLASSES, m)
        offsets = pa.array(np.arange(0, (m + 1) * DIM, DIM, dtype=np.int32))
        views = {}
        for view, noise in (("clip_image_features", 0.045), ("clip_text_features", 0.035)):
            X = centres[y] + noise * rng.standard_normal((m, DIM), dtype=np.float32)
            views[view] = pa.ListArray.from_arrays(offsets, pa.array(X.ravel()))
        ids = pa.array(np.char.add("p", np.arange(start, start + m).astype(str)))
        table = pa.table({"product_id": ids, **views,
                          "category": pa.DictionaryArray.from_arrays(pa.array(y, pa.int32()), names)})
        group = start // ROW_GROUP
        if parts > 1 and group % groups_per_part == 0 and writer is not None:
            writer.close()
            writer = None
        if writer is None:
            Path(path).mkdir(exist_ok=True) if parts > 1 else None
            target = Path(path) / f"part-{group // groups_per_part:05d}.parquet" if parts > 1 else path
            writer = pq.ParquetWriter(target, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
    writer.close()
    T = centres + 0.03 * rng.standard_normal((N_CLASSES, DIM), dtype=np.float32)
    return T, names.to_pylist()


def floor(path, classes, batch_rows):
    """The streaming floor, run in a child process: read (with the leanest reader settings measured
    here), normalise, argmax."""
    T = np.asarray(pq.read_table(classes).column("embedding").to_pylist(), dtype=np.float32)
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    n = 0
    for file in files_of(path):
        reader = pq.ParquetFile(file, pre_buffer=False, buffer_size=1 << 20)
        for batch in reader.iter_batches(batch_size=batch_rows, columns=["clip_image_features", "clip_text_features"]):
            for column in batch.columns:
                X = column.flatten().to_numpy().reshape(len(column), -1)
                X = X / np.linalg.norm(X, axis=1, keepdims=True)
                (X @ T.T).argmax(axis=1)
            n += batch.num_rows
    print(n)


def measure(argv):
    """Run ``argv``; return wall seconds, CPU share, peak RSS and peak anonymous RSS (MiB)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"anon": 0, "rss": 0}
    done = threading.Event()

    def sample():
        status = Path(f"/proc/{proc.pid}/status")
        while not done.is_set():
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                peak["anon"] = max(peak["anon"], int(fields["RssAnon"].split()[0]))
                peak["rss"] = max(peak["rss"], int(fields["VmHWM"].split()[0]))
            except (OSError, KeyError, ValueError):
                pass
            done.wait(0.05)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t
    done.set()
    watcher.join()
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, argv))} failed:\n{stderr.decode()[-2000:]}")
    cpu = (usage.ru_utime + usage.ru_stime) / seconds
    return seconds, cpu, max(peak["rss"], usage.ru_maxrss) / 1024, peak["anon"] / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="*", default=[250_000, 1_000_000, 5_000_000])
    ap.add_argument("--variants", default="floor,baseline,pairwise,default")
    ap.add_argument("--batch-rows", type=int, default=None)
    ap.add_argument("--cache", choices=["yes", "no"], default="yes")
    ap.add_argument("--engine", default="local", help="comma-separated: local, ray:W (W workers)")
    ap.add_argument("--parts", type=int, default=1, help="write the items as a folder of this many part files")
    ap.add_argument("--dir", type=Path, default=ROOT / "bench_out" / "scale")
    ap.add_argument("--keep", action="store_true", help="keep the generated data for a rerun")
    ap.add_argument("--floor", nargs=3, metavar=("DATA", "CLASSES", "ROWS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor:
        return floor(args.floor[0], args.floor[1], int(args.floor[2]))
    from pairclass.io import DEFAULT_BATCH_ROWS

    batch_rows = args.batch_rows or DEFAULT_BATCH_ROWS
    console = Console(width=200)
    table = Table(title=f"pairclass at catalogue scale ({DIM}-d, 2 views, {N_CLASSES} classes, batch {batch_rows:,} "
                        f"rows, cache {args.cache}, {os.cpu_count()} CPUs)")
    for col in ("run", "items", "seconds", "items/s", "CPU", "peak RSS MiB", "peak anon RSS MiB", "x floor",
                "x local"):
        table.add_column(col, justify="left" if col == "run" else "right")
    pairclass = [str(Path(sys.executable).with_name("pairclass"))]
    for n in args.n:
        folder = args.dir / f"n{n}"
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / ("items.parquet" if args.parts == 1 else f"items-{args.parts}-parts")
        classes = folder / "classes.parquet"
        if not data.exists():
            console.print(f"generating {n:,} items in {data}", style="dim")
            T, names = generate(data, n, parts=args.parts)
            pq.write_table(pa.table({"name": names, "embedding": pa.array(list(T), pa.list_(pa.float32()))}),
                           classes)
        floor_s = None
        runs = [("floor", None)] if "floor" in args.variants.split(",") else []
        runs += [(v, e) for v in args.variants.split(",") if v != "floor" for e in args.engine.split(",")]
        local_s = {}
        for variant, engine in runs:
            if variant == "floor":
                argv = [sys.executable, __file__, "--floor", str(data), str(classes), str(batch_rows)]
            else:
                out = folder / f"out-{variant}"
                method = [] if variant == "default" else ["--method", variant]
                name, _, workers = engine.partition(":")
                argv = [*pairclass, "classify", str(data), "--classes", str(classes), "--label-col", "category",
                        *method, "--batch-rows", str(batch_rows), "--out", f"{out}/", "--json",
                        "--engine", name, *(["--workers", workers] if workers else []),
                        *(["--no-cache"] if args.cache == "no" else ["--cache-dir", str(folder / "cache")])]
            seconds, cpu, rss, anon = measure(argv)
            floor_s = floor_s or (seconds if variant == "floor" else None)
            if engine == "local":
                local_s[variant] = seconds
            ratio = f"{seconds / floor_s:.2f}" if floor_s else "-"
            vs_local = f"{seconds / local_s[variant]:.2f}" if variant in local_s else "-"
            label = variant if engine in (None, "local") else f"{variant} ({engine})"
            table.add_row(label, f"{n:,}", f"{seconds:.1f}", f"{n / seconds:,.0f}", f"{cpu:.0%}", f"{rss:,.0f}",
                          f"{anon:,.0f}", ratio, vs_local)
            console.print(f"done: {label} at {n:,}: {seconds:.1f} s, anon {anon:,.0f} MiB", style="dim")
            if variant != "floor":
                shutil.rmtree(folder / f"out-{variant}", ignore_errors=True)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    console.print(table)


if __name__ == "__main__":
    main()
