"""Build the committed demo data from ../shared/data/flipkart with pairclass's text backend (offline MiniLM).

Writes data/demo.parquet (product_id, category, and two embedding views: product_name, description)
and data/demo_classes.parquet (name, prompt, embedding) for the 7 top-level categories, through the
same library calls as `pairclass embed --backend text` and `pairclass embed-classes --backend text`.

    python scripts/build_demo.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

from pairclass.embed import load_text_model, run_embed, run_embed_classes  # noqa: E402
from pairclass.io import write_table  # noqa: E402

OUT = datasets.ROOT / "data"
TEMPLATES = ("{}", "a product in the category {}", "{} products for sale online")


def main():
    df = datasets.flipkart()
    encoder = load_text_model(device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "flipkart.parquet"
        write_table(
            pa.table({
                "product_id": df["uniq_id"].astype(str), "category": df["category"],
                "product_name": df["product_name"].astype(str), "description": df["description"].astype(str),
            }),
            manifest,
        )
        items = run_embed(
            manifest, OUT / "demo.parquet", text_cols={"product_name": "product_name", "description": "description"},
            keep_cols=["category"], encoder=encoder, batch_size=128,
        )
        names = Path(tmp) / "classes.txt"
        names.write_text("\n".join(sorted(df["category"].unique())) + "\n", encoding="utf-8")
        classes = run_embed_classes(names, OUT / "demo_classes.parquet", templates=list(TEMPLATES), encoder=encoder)
    print(f"wrote {items.n_written} items and {len(classes.names)} classes to {OUT}")


if __name__ == "__main__":
    main()
