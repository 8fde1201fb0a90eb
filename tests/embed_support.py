"""Shared helpers for the embed tests: a tiny open_clip config, real JPEGs, manifests, local HTTP servers."""

from __future__ import annotations

import io
import socket
import threading
import time
import urllib.parse
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


class Interrupt(Exception):
    """Stands for a crash in the middle of a run."""


def interrupt_at(call):
    """A progress callback that raises on its ``call``-th call (the first reports the starting point)."""
    calls = []

    def progress(done, total):
        calls.append(done)
        if len(calls) == call:
            raise Interrupt

    return progress


def count_images(monkeypatch, encoder):
    """A list that gets the number of images of each ``encode_images`` call from now on."""
    seen = []
    original = type(encoder).encode_images

    def spy(self, groups):
        seen.append(sum(len(g) for g in groups))
        return original(self, groups)

    monkeypatch.setattr(type(encoder), "encode_images", spy)
    return seen


def matrix(table, col):
    """An embedding column as a float32 array."""
    return np.asarray(table.column(col).to_pylist(), dtype=np.float32)


class _Handler(BaseHTTPRequestHandler):
    files: dict = {}
    hits: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/slow.jpg":
            time.sleep(1.0)
        if self.path == "/trickle.jpg":
            self.trickle()
            return
        if self.path == "/flaky.jpg" and self.hits[self.path] == 1:
            self.send_error(503)
            return
        if self.path == "/big-nolength.jpg":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\xff" * 50_000)
            return
        body = self.files.get(urllib.parse.unquote(self.path))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def trickle(self):
        """200 bytes of body, one every 0.05 s (10 s in all); counts the bytes the client took."""
        self.send_response(200)
        self.send_header("Content-Length", "200")
        self.end_headers()
        self.wfile.flush()
        for _ in range(200):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            self.hits["trickled bytes"] = self.hits.get("trickled bytes", 0) + 1
            time.sleep(0.05)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up (a timeout under test) is not news


@contextmanager
def image_server(files):
    """Serve ``{"/name.jpg": bytes}`` on 127.0.0.1; yields (base URL, hit counts).

    Paths are matched unquoted. Also ``/slow.jpg`` (answers after 1 s), ``/flaky.jpg`` (503 once, then
    the body registered under that name), ``/big-nolength.jpg`` (50 kB without a Content-Length) and
    ``/trickle.jpg`` (a byte every 0.05 s; ``hits["trickled bytes"]`` counts those sent); anything else
    is a 404.
    """
    handler = type("Handler", (_Handler,), {"files": dict(files), "hits": {}})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def raw_server(replies):
    """A TCP server on 127.0.0.1 that answers a request on ``/NAME`` with the raw bytes ``replies[NAME]``
    (not HTTP, or broken HTTP), then closes; yields the base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                request = conn.recv(65536).decode("latin-1")
                name = request.split(" ")[1].lstrip("/") if " " in request else ""
                try:
                    conn.sendall(replies.get(name, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()
