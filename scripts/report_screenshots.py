"""Make both report pages through the CLI on real fashion products, and save the docs screenshots.

    python scripts/report_screenshots.py [--out docs] [--items 3000] [--seed 0]

The fashion items of ../shared/data that have an image, in their 13 most frequent article types (a
seeded sample of ``--items``), go through the commands a user runs: ``pairclass embed --backend text``
on their display names (the offline MiniLM), then ``classify --report`` and ``audit --report`` against
the plain list of class names, with the titles and image thumbnails on the cards. Writes
report-classify.png and report-audit.png (needs Chromium: apt-get install -y chromium) and prints
each page's size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from pairclass.report.browser import screenshot  # noqa: E402

WIDTH = 1280
MAX_HEIGHT = 12000
N_CLASSES = 13
PAIRCLASS = str(Path(sys.executable).parent / "pairclass")


def save_page_png(page, png):
    """A full-page screenshot: a tall window, cropped below the last painted row, 256 colours."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = screenshot(page, Path(tmp) / "raw.png", width=WIDTH, height=MAX_HEIGHT)
        image = Image.open(raw).convert("RGB")
        pixels = np.asarray(image).astype(int)
        painted = np.flatnonzero((np.abs(pixels - pixels[0, -1]).sum(axis=2) > 30).any(axis=1))
        image = image.crop((0, 0, WIDTH, min(MAX_HEIGHT, int(painted[-1]) + 40)))
        image.quantize(colors=256).save(png, optimize=True)
    return png


def fashion_manifest(folder, items, seed):
    """A CSV manifest (product_id, title, category, image) and the class names, one per line."""
    df = datasets.fashion_styles()
    df["image"] = [str(datasets.FASHION_IMAGES / f"{i}.jpg") for i in df["id"]]
    df = df[(df["productDisplayName"].str.strip() != "") & df["image"].map(lambda p: Path(p).exists())]
    names = df["articleType"].value_counts().index[:N_CLASSES]
    df = df[df["articleType"].isin(names)]
    df = df.sample(n=min(items, len(df)), random_state=seed).sort_values("id")
    df = df.rename(columns={"id": "product_id", "productDisplayName": "title", "articleType": "category"})
    manifest = folder / "products.csv"
    df[["product_id", "title", "category", "image"]].to_csv(manifest, index=False)
    classes = folder / "classes.txt"
    classes.write_text("".join(f"{n}\n" for n in sorted(names)), encoding="utf-8")
    return manifest, classes, len(df)


def pairclass(*args):
    subprocess.run([PAIRCLASS, *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest, classes, n = fashion_manifest(tmp, args.items, args.seed)
        emb = tmp / "emb.parquet"
        pairclass("embed", manifest, "--out", emb, "--backend", "text", "--text-col", "title",
                  "--keep-cols", "category,title,image")
        common = ["--classes", classes, "--label-col", "category", "--keep-cols", "title", "--image-col", "image"]
        pairclass("classify", emb, *common, "--report", tmp / "classify.html")
        pairclass("audit", emb, *common, "--seed", args.seed, "--report", tmp / "audit.html")
        print(f"{n} fashion items, {N_CLASSES} classes")
        for name in ("classify", "audit"):
            page = tmp / f"{name}.html"
            png = save_page_png(page, args.out / f"report-{name}.png")
            print(f"{page.name}: {page.stat().st_size / 1024:.0f} KB; {png}: {Image.open(png).size[1]} px tall, "
                  f"{png.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
