"""Image loading: local files and http(s) URLs, fetched with limits and decoded to uint8 in DataLoader workers.

A failed image (no image, missing, unreachable, too large, too slow, corrupt, a decompression bomb, a
server that does not speak HTTP) never stops a run: its loader returns the reason, and the caller
writes it to the errors file.
"""

from __future__ import annotations

import http.client
import io
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .. import __version__
from ..errors import input_error

__all__ = ["FetchLimits", "ImageDataset", "ImageFailure", "collate_images", "fetch_bytes", "decode_image"]

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ImageFailure(Exception):
    """An image that cannot be used; the message is the reason written to the errors file."""


@dataclass(frozen=True)
class FetchLimits:
    """Limits for reading and decoding one image.

    Parameters
    ----------
    timeout : float, default=10.0
        Seconds allowed for one download attempt, from connecting to the last byte: a server that
        trickles its headers or body is cut off when they run out.
    max_bytes : int, default=20_000_000
        Larger files and bodies are refused.
    max_pixels : int, default=40_000_000
        Decompression-bomb guard: images whose header declares more pixels are refused before decoding.
    retries : int, default=2
        Extra attempts after a timeout, a connection error or a 408/429/5xx reply, with a doubling
        back-off. An item takes at most ``(retries + 1) * timeout`` seconds plus the back-off.
    backoff : float, default=0.25
        Seconds before the first retry.
    max_downloads : int, default=16
        Concurrent downloads per loading process.

    Raises
    ------
    InputError
        For a limit out of range.

    Examples
    --------
    >>> FetchLimits(retries=-1)
    Traceback (most recent call last):
    ...
    pairclass.errors.InputError: retries must be at least 0, got -1
    """

    timeout: float = 10.0
    max_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    retries: int = 2
    backoff: float = 0.25
    max_downloads: int = 16

    def __post_init__(self):
        lowest = {"timeout": 0, "backoff": 0, "retries": 0, "max_bytes": 1, "max_pixels": 1, "max_downloads": 1}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "timeout" and not value > 0:
                raise input_error(f"timeout must be more than 0 seconds, got {value}")
            if not value >= lowest[f.name]:
                raise input_error(f"{f.name} must be at least {lowest[f.name]}, got {value}")


def is_url(source):
    return source.startswith(("http://", "https://"))


def quote_url(url):
    """Percent-encode what may not travel raw in a request line (spaces, non-ASCII, control
    characters); valid escapes stay as they are, and a non-ASCII host becomes IDNA.

    Examples
    --------
    >>> quote_url("http://example.com/a b/caf\u00e9.jpg?q=1 2")
    'http://example.com/a%20b/caf%C3%A9.jpg?q=1%202'
    >>> quote_url("http://example.com/already%20quoted.jpg")
    'http://example.com/already%20quoted.jpg'
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc if parts.netloc.isascii() else parts.netloc.encode("idna").decode("ascii")
    path = urllib.parse.quote(parts.path, safe="/%!$&'()*+,;=:@~")
    query = urllib.parse.quote(parts.query, safe="/%!$&'()*+,;=:@~?")
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))


class _Deadline:
    """Shuts down the sockets of one download when its time is up, so ``timeout`` bounds the whole
    transfer and not only each read."""

    def __init__(self, seconds):
        self.expired = False
        self._sockets = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock):
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def _expire(self):
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


def _shutdown(sock):
    try:
        sock.shutdown(2)  # socket.SHUT_RDWR: a blocked read returns at once
    except OSError:
        pass


class _Watched:
    """An http.client connection whose socket a :class:`_Deadline` can shut down."""

    def __init__(self, *args, deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def connect(self):
        super().connect()
        self.deadline.watch(self.sock)


class _HTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _WatchedHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """urllib's http and https handling (redirects and proxies included) over watched connections."""

    def __init__(self, deadline):
        urllib.request.HTTPSHandler.__init__(self)
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(lambda *a, **kw: _HTTPConnection(*a, deadline=self.deadline, **kw), req)

    def https_open(self, req):
        return self.do_open(lambda *a, **kw: _HTTPSConnection(*a, deadline=self.deadline, **kw), req,
                            context=self._context)


def _download(url, limits):
    request = urllib.request.Request(quote_url(url), headers={"User-Agent": f"pairclass/{__version__}"})
    with _Deadline(limits.timeout) as deadline:
        try:
            with urllib.request.build_opener(_WatchedHandler(deadline)).open(request, timeout=limits.timeout) as r:
                length = r.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > limits.max_bytes:
                    raise ImageFailure(f"too large: {int(length)} bytes > max_bytes {limits.max_bytes}")
                chunks, size = [], 0
                while chunk := r.read(1 << 16):
                    size += len(chunk)
                    if size > limits.max_bytes:
                        raise ImageFailure(f"too large: over max_bytes {limits.max_bytes}")
                    chunks.append(chunk)
        except (OSError, http.client.HTTPException):
            if deadline.expired:
                raise TimeoutError from None
            raise
        if deadline.expired:  # the shut-down socket read as the end of the body
            raise TimeoutError
    return b"".join(chunks)


def _read_file(source, limits, root):
    path = Path(source)
    if root is not None and not path.is_absolute():
        path = Path(root) / path
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ImageFailure("is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file")
        if info.st_size > limits.max_bytes:
            raise ImageFailure(f"too large: {info.st_size} bytes > max_bytes {limits.max_bytes}")
        with open(path, "rb") as f:
            data = f.read(limits.max_bytes + 1)  # the file may have grown since stat
    except FileNotFoundError:
        raise ImageFailure("file not found") from None
    except OSError as e:
        raise ImageFailure(f"cannot read file: {e.strerror or e}") from None
    if len(data) > limits.max_bytes:
        raise ImageFailure(f"too large: over max_bytes {limits.max_bytes}")
    return data


def fetch_bytes(source, limits, *, root=None):
    """Read an image's bytes from a local path (relative to ``root``) or an http(s) URL.

    Raises
    ------
    ImageFailure
        With the reason: no image (an empty source), not found, not a regular file, too large, an
        HTTP status, a broken HTTP response, a bad URL, a timeout after retries.
    """
    if not source.strip():
        raise ImageFailure("no image")
    if not is_url(source):
        return _read_file(source, limits, root)
    for attempt in range(limits.retries + 1):
        try:
            return _download(source, limits)
        except urllib.error.HTTPError as e:
            reason = f"HTTP {e.code}"
            if e.code not in RETRY_STATUS:
                raise ImageFailure(reason) from None
        except (TimeoutError, OSError, http.client.IncompleteRead) as e:
            cause = getattr(e, "reason", e)
            reason = f"timed out after {limits.timeout:g} s" if isinstance(cause, TimeoutError) else f"{cause}"
        except http.client.HTTPException as e:  # a garbage status line, an over-long header: not HTTP
            said = " ".join(str(e).split())[:200]  # the server's bytes: one short line for the errors file
            raise ImageFailure(f"bad HTTP response ({type(e).__name__}): {said}") from None
        except ValueError as e:
            raise ImageFailure(f"bad URL: {e}") from None
        if attempt < limits.retries:
            time.sleep(limits.backoff * 2**attempt)
    raise ImageFailure(f"{reason} (after {limits.retries + 1} attempts)")


def decode_image(data, limits, *, draft_size=None):
    """Decode image bytes to an RGB uint8 tensor of shape (3, H, W).

    ``draft_size`` lets a JPEG decode at a reduced scale no smaller than that ``(width, height)``,
    which keeps very large photos cheap.

    Examples
    --------
    >>> buf = io.BytesIO()
    >>> Image.new("L", (5, 4), 200).save(buf, format="PNG")
    >>> x = decode_image(buf.getvalue(), FetchLimits())
    >>> tuple(x.shape), x.dtype, int(x.max())
    ((3, 4, 5), torch.uint8, 200)
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > limits.max_pixels:
                raise ImageFailure(
                    f"too many pixels: {img.width}x{img.height} > max_pixels {limits.max_pixels} "
                    "(decompression bomb guard)"
                )
            if draft_size is not None and img.format == "JPEG":
                img.draft(None, draft_size)
            rgb = np.asarray(img.convert("RGB"))
    except ImageFailure:
        raise
    except UnidentifiedImageError:
        raise ImageFailure("cannot decode image: not a recognised image format") from None
    except Image.DecompressionBombError as e:
        raise ImageFailure(f"too many pixels: {e}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageFailure(f"corrupt image: {e}") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


class ImageDataset(torch.utils.data.Dataset):
    """Images by position, for a DataLoader with automatic batching.

    A batch is fetched through ``__getitems__`` so that its downloads run concurrently
    (``limits.max_downloads`` threads per loading process). Each item is ``(position, tensor or None,
    reason or None)``.

    Parameters
    ----------
    sources : sequence of str
        Local paths or http(s) URLs.
    limits : FetchLimits
    root : path-like, optional
        Folder that relative paths are read from.
    target_size : tuple of int, optional
        ``(height, width)`` the model needs; JPEGs at least four times larger on both sides decode at a
        reduced scale that stays at least twice this size.
    """

    def __init__(self, sources, limits, *, root=None, target_size=None):
        self.sources = list(sources)
        self.limits = limits
        self.root = root
        self.target_size = target_size
        self._pool = None

    def __len__(self):
        return len(self.sources)

    def load(self, position):
        draft = None if self.target_size is None else (2 * self.target_size[1], 2 * self.target_size[0])
        try:
            data = fetch_bytes(self.sources[position], self.limits, root=self.root)
            return position, decode_image(data, self.limits, draft_size=draft), None
        except ImageFailure as e:
            return position, None, str(e)

    def __getitem__(self, position):
        return self.load(position)

    def __getitems__(self, positions):
        if not any(is_url(self.sources[p]) for p in positions):
            return [self.load(p) for p in positions]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, self.limits.max_downloads))
        return list(self._pool.map(self.load, positions))

    def close(self):
        """Stop this process's download threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pool"] = None
        return state


def collate_images(items):
    """Group a batch by image size and stack each group, so each group is one host-to-device copy.

    Returns
    -------
    positions : list of list of int
        Per group, the dataset positions of its images.
    groups : list of uint8 Tensor of shape (n, 3, H, W)
    failures : list of (int, str)
        Positions that failed and why.

    Examples
    --------
    >>> a, b = torch.zeros(3, 2, 2, dtype=torch.uint8), torch.zeros(3, 4, 2, dtype=torch.uint8)
    >>> pos, groups, fails = collate_images([(0, a, None), (1, b, None), (2, a, None), (3, None, "HTTP 404")])
    >>> pos, [tuple(g.shape) for g in groups], fails
    ([[0, 2], [1]], [(2, 3, 2, 2), (1, 3, 4, 2)], [(3, 'HTTP 404')])
    """
    by_shape = {}
    failures = []
    for position, image, reason in items:
        if image is None:
            failures.append((position, reason))
        else:
            by_shape.setdefault(tuple(image.shape), []).append((position, image))
    positions = [[p for p, _ in group] for group in by_shape.values()]
    groups = [torch.stack([im for _, im in group]) for group in by_shape.values()]
    return positions, groups, failures
