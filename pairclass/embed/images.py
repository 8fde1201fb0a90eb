"""Image loading: local files and http(s) URLs, fetched with limits and decoded to uint8 in DataLoader workers.

A failed image (missing, unreachable, too large, corrupt, a decompression bomb) never stops a run:
its loader returns the reason, and the caller writes it to the errors file.
"""

from __future__ import annotations

import io
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .. import __version__

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
        Seconds allowed for one download attempt, from connecting to the last byte.
    max_bytes : int, default=20_000_000
        Larger files and bodies are refused.
    max_pixels : int, default=40_000_000
        Decompression-bomb guard: images whose header declares more pixels are refused before decoding.
    retries : int, default=2
        Extra attempts after a timeout, a connection error or a 408/429/5xx reply, with a doubling back-off.
    backoff : float, default=0.25
        Seconds before the first retry.
    max_downloads : int, default=16
        Concurrent downloads per loading process.
    """

    timeout: float = 10.0
    max_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    retries: int = 2
    backoff: float = 0.25
    max_downloads: int = 16


def is_url(source):
    return source.startswith(("http://", "https://"))


def _download(url, limits):
    request = urllib.request.Request(url, headers={"User-Agent": f"pairclass/{__version__}"})
    deadline = time.monotonic() + limits.timeout
    with urllib.request.urlopen(request, timeout=limits.timeout) as response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limits.max_bytes:
            raise ImageFailure(f"too large: {int(length)} bytes > max_bytes {limits.max_bytes}")
        chunks, size = [], 0
        while chunk := response.read(1 << 16):
            size += len(chunk)
            if size > limits.max_bytes:
                raise ImageFailure(f"too large: over max_bytes {limits.max_bytes}")
            if time.monotonic() > deadline:
                raise ImageFailure(f"timed out after {limits.timeout:g} s")
            chunks.append(chunk)
    return b"".join(chunks)


def fetch_bytes(source, limits, *, root=None):
    """Read an image's bytes from a local path (relative to ``root``) or an http(s) URL.

    Raises
    ------
    ImageFailure
        With the reason: not found, too large, an HTTP status, a timeout after retries.
    """
    if not is_url(source):
        path = Path(source)
        if root is not None and not path.is_absolute():
            path = Path(root) / path
        try:
            size = path.stat().st_size
            if size > limits.max_bytes:
                raise ImageFailure(f"too large: {size} bytes > max_bytes {limits.max_bytes}")
            return path.read_bytes()
        except FileNotFoundError:
            raise ImageFailure("file not found") from None
        except OSError as e:
            raise ImageFailure(f"cannot read file: {e.strerror or e}") from None
    for attempt in range(limits.retries + 1):
        try:
            return _download(source, limits)
        except urllib.error.HTTPError as e:
            reason = f"HTTP {e.code}"
            if e.code not in RETRY_STATUS:
                raise ImageFailure(reason) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
            cause = getattr(e, "reason", e)
            reason = f"timed out after {limits.timeout:g} s" if isinstance(cause, TimeoutError) else f"{cause}"
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
