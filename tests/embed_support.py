"""Shared helpers for the embed tests: a tiny open_clip config, real JPEGs, manifests, a local HTTP server."""

from __future__ import annotations

import io
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from PIL import Image

TINY_CONFIG = Path(__file__).parent / "data" / "tiny-clip.json"


def jpeg_bytes(seed, size=(48, 40), *, quality=90):
    """A real JPEG (PIL) of a smooth random image, ``size`` = (width, height)."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_catalogue(folder, n, *, sizes=((48, 40), (40, 48), (64, 64))):
    """n JPEGs in ``folder/img`` and a CSV manifest (product_id, image, title, label); returns its path."""
    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = {"product_id": [], "image": [], "title": [], "label": []}
    for i in range(n):
        name = f"img/{i:03d}.jpg"
        (folder / name).write_bytes(jpeg_bytes(i, sizes[i % len(sizes)]))
        rows["product_id"].append(f"p{i:03d}")
        rows["image"].append(name)
        rows["title"].append(f"{['red', 'blue', 'green'][i % 3]} {['shirt', 'shoe'][i % 2]} number {i}")
        rows["label"].append(["shirt", "shoe"][i % 2])
    path = folder / "manifest.csv"
    pacsv.write_csv(pa.table(rows), path)
    return path


class _Handler(BaseHTTPRequestHandler):
    files: dict = {}
    hits: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/slow.jpg":
            time.sleep(1.0)
        if self.path == "/flaky.jpg" and self.hits[self.path] == 1:
            self.send_error(503)
            return
        if self.path == "/big-nolength.jpg":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\xff" * 50_000)
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def image_server(files):
    """Serve ``{"/name.jpg": bytes}`` on 127.0.0.1; yields (base URL, hit counts).

    Also ``/slow.jpg`` (answers after 1 s), ``/flaky.jpg`` (503 once, then the body registered
    under that name) and ``/big-nolength.jpg`` (50 kB without a Content-Length); anything else is a 404.
    """
    handler = type("Handler", (_Handler,), {"files": dict(files), "hits": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    finally:
        server.shutdown()
        server.server_close()
