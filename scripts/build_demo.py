"""Build the committed demo data from ../shared/data/flipkart with pairclass's text backend (offline MiniLM).

Writes data/demo.parquet (product_id, category, and two embedding views: product_name, description)
and data/demo_classes.parquet (name, prompt, embedding) for the 7 top-level categories, through the
same library calls as `pairclass embed --backend text` and `pairclass embed-classes --backend text`.
Their metadata records the model and the views, so `pairclass classify data/demo.parquet --classes
NAMES.txt --views product_name,description` embeds a plain list of class names with the same model.

    python scripts/build_demo.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from pairclass.embed import run_embed, run_embed_classes  # noqa: E402
from pairclass.io import write_table  # noqa: E402

OUT = datasets.ROOT / "data"
TEMPLATES = ("{}", "a product in the category {}", "{} products for sale online")


def main():
    df = datasets.flipkart()
    # built beside the old files and renamed over them: a rerun of embed would add to the old output
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        manifest = Path(tmp) / "flipkart.parquet"
        write_table(
            pa.table({
                "product_id": df["uniq_id"].astype(str), "category": df["category"],
                "product_name": df["product_name"].astype(str), "description": df["description"].astype(str),
            }),
            manifest,
        )
        items = run_embed(
            manifest, Path(tmp) / "demo.parquet", backend="text", device="cpu",
            text_cols={"product_name": "product_name", "description": "description"}, keep_cols=["category"],
            batch_size=128,
        )
        names = Path(tmp) / "classes.txt"
        names.write_text("\n".join(sorted(df["category"].unique())) + "\n", encoding="utf-8")
        classes = run_embed_classes(names, OUT / "demo_classes.parquet", templates=list(TEMPLATES), backend="text",
                                    device="cpu")
        os.replace(items.out, OUT / "demo.parquet")
    print(f"wrote {items.n_written} items and {len(classes.names)} classes to {OUT}")


if __name__ == "__main__":
    main()
