"""Render the report pages from the committed demo data and save the docs screenshots.

    python scripts/report_screenshots.py [--out docs]

Writes report-classify.png and report-audit.png (needs Chromium: apt-get install -y chromium). The
audit page comes from the demo data with 15 labels flipped (see tests/report_data.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from report_data import demo_audit_report, demo_classify_report  # noqa: E402

from pairclass.report import write_audit_report, write_classify_report  # noqa: E402
from pairclass.report.browser import screenshot  # noqa: E402

WIDTH = 1280
MAX_HEIGHT = 12000


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pages = {
            "report-classify.png": write_classify_report(demo_classify_report(), Path(tmp) / "classify.html"),
            "report-audit.png": write_audit_report(demo_audit_report(), Path(tmp) / "audit.html"),
        }
        for name, page in pages.items():
            png = save_page_png(page, args.out / name)
            print(f"{png}: {Image.open(png).size[1]} px tall, {png.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
