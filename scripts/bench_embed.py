"""Image-embedding throughput on the real fashion JPEGs (../shared/data/fashion/images), random weights.

Rows: decoding alone (DataLoader workers, uint8), the model alone on pre-decoded images (batched tensor
preprocess + encode_image), pairclass's end-to-end `run_embed`, and the textbook pipeline (PIL decode,
open_clip's torchvision preprocess in the workers, then the model). Ratios are to the textbook pipeline.

    python scripts/bench_embed.py --limit 512                       # CPU
    python scripts/bench_embed.py --device cuda --precision fp16 --batch-size 512 --workers 16 --limit 10000
    python scripts/bench_embed.py --device cuda --precision fp16 --batch-size 512 --limit 10000 --engine ray

``--engine ray`` adds `run_embed(engine="ray")` end to end: decoding on Ray Data CPU tasks (``--workers``
at once), the model in one actor per GPU of a local Ray cluster (started first, not timed).
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from pairclass.embed import FetchLimits, load_clip, run_embed  # noqa: E402
from pairclass.embed.images import ImageDataset, collate_images  # noqa: E402
from pairclass.io import write_table  # noqa: E402


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader(paths, enc, batch_size, workers):
    ds = ImageDataset([str(p) for p in paths], FetchLimits(), target_size=enc.image_size)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate_images,
                                       pin_memory=enc.device.type == "cuda",
                                       prefetch_factor=4 if workers else None)


def decode_only(paths, enc, batch_size, workers):
    groups = []
    for _, g, fails in loader(paths, enc, batch_size, workers):
        assert not fails, fails
        groups.append(g)
    return groups


def model_only(groups, enc):
    for g in groups:
        enc.encode_images(g)
    sync(enc.device)


class Textbook(torch.utils.data.Dataset):
    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(io.BytesIO(Path(self.paths[i]).read_bytes())) as img:
            return self.transform(img)


def textbook(paths, enc, batch_size, workers):
    from open_clip.transform import PreprocessCfg, image_transform_v2

    transform = image_transform_v2(PreprocessCfg(**enc.model.visual.preprocess_cfg), is_train=False)
    dl = torch.utils.data.DataLoader(Textbook(paths, transform), batch_size=batch_size, num_workers=workers,
                                     pin_memory=enc.device.type == "cuda")
    with torch.inference_mode(), enc._autocast():
        for x in dl:
            enc.model.encode_image(x.to(enc.device, non_blocking=True), normalize=True).cpu()


def end_to_end(paths, enc, batch_size, workers, **ray_options):
    """run_embed on the images: with the loaded encoder, or with ``engine="ray"`` and the model
    reloaded (random weights) in the actors."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "m.parquet"
        write_table(pa.table({"product_id": [p.stem for p in paths], "image": [str(p) for p in paths]}), manifest)
        model = {"encoder": enc} if not ray_options else dict(model=ray_options["model"], random_weights=True,
                                                                 device=str(enc.device), precision=enc.precision,
                                                                 engine="ray")
        result = run_embed(manifest, Path(tmp) / "e.parquet", **model, batch_size=batch_size, workers=workers,
                           text_cols=None)
    assert result.n_written == len(paths), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32", help="open_clip model name or config JSON")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=512, help="images to use (of 10,000)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--skip-textbook", action="store_true", help="skip the slow textbook baseline")
    ap.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="ray: also time run_embed on a local Ray cluster")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    paths = sorted(datasets.require(datasets.FASHION_IMAGES).glob("*.jpg"))[: args.limit]
    enc = load_clip(args.model, random_weights=True, device=args.device, precision=args.precision)
    n = len(paths)
    # warm-up: one batch through the model, and the first worker start
    model_only(decode_only(paths[: args.batch_size], enc, args.batch_size, 0), enc)

    rows = []

    def timed(name, fn, *a, **kw):
        sync(enc.device)
        t = time.perf_counter()
        out = fn(*a, **kw)
        sync(enc.device)
        s = time.perf_counter() - t
        rows.append((name, n, s, peak_mib()))
        return out

    groups = timed("decode only (workers, uint8)", decode_only, paths, enc, args.batch_size, args.workers)
    timed("model only (tensor preprocess + encode_image)", model_only, groups, enc)
    timed("pairclass run_embed (end to end)", end_to_end, paths, enc, args.batch_size, args.workers)
    if args.engine == "ray":
        from pairclass.engines.raydata import connect

        connect()  # the cluster's start is not the engine's throughput
        timed("pairclass run_embed --engine ray (end to end)", end_to_end, paths, enc, args.batch_size, args.workers,
              model=args.model)
    if not args.skip_textbook:
        timed("textbook: PIL + torchvision preprocess + model", textbook, paths, enc, args.batch_size, args.workers)
    base = rows[-1][2] if not args.skip_textbook else None
    model_s = rows[1][2]

    table = Table(title=f"embed throughput: {enc.name} random weights, {enc.device}, precision {args.precision}, "
                        f"batch {args.batch_size}, {args.workers} workers, {torch.get_num_threads()} torch threads")
    for col in ("method", "items", "seconds", "items/s", "peak MiB", "speed vs textbook", "speed vs model only"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, items, s, mem in rows:
        ratio = "-" if base is None else f"{base / s:.2f}x"
        table.add_row(name, str(items), f"{s:.2f}", f"{items / s:,.1f}", f"{mem:,.0f}", ratio, f"{model_s / s:.2f}x")
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
