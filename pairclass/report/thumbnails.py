"""Item images as small inline JPEGs (data URIs) for a report page.

An image that cannot be used (missing, unreadable, corrupt, over Pillow's ``Image.MAX_IMAGE_PIXELS``)
gives no thumbnail; the page leaves its slot empty and says how many were skipped.
"""

from __future__ import annotations

import base64
import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps

__all__ = ["THUMB_PX", "Thumbnails"]

THUMB_PX = 96


class Thumbnails:
    """Thumbnail data URIs by image path, each image read once.

    Parameters
    ----------
    root : path-like, optional
        Folder that relative paths are read from.
    size : int, default=THUMB_PX
        Longest side in pixels.

    Attributes
    ----------
    failed : dict
        ``{path: reason}`` for the images that gave no thumbnail.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (400, 200), "red").save(folder / "a.png")
    >>> thumbs = Thumbnails(folder)
    >>> thumbs("a.png")[:23], thumbs("missing.png"), list(thumbs.failed)
    ('data:image/jpeg;base64,', None, ['missing.png'])
    """

    def __init__(self, root=None, size=THUMB_PX):
        self.root = None if root is None else Path(root)
        self.size = size
        self.failed = {}
        self._uris = {}

    def __call__(self, source):
        """The data URI of ``source``'s thumbnail, or None."""
        if source is None or source == "":
            return None
        source = str(source)
        if source not in self._uris:
            try:
                self._uris[source] = self._encode(self._path(source))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                    Image.DecompressionBombWarning) as e:
                self.failed[source] = f"{type(e).__name__}: {e}"
                self._uris[source] = None
        return self._uris[source]

    def _path(self, source):
        path = Path(source)
        return path if self.root is None or path.is_absolute() else self.root / path

    def _encode(self, path):
        # A warning at MAX_IMAGE_PIXELS becomes an error, so a bomb is refused before it is decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.draft("RGB", (2 * self.size, 2 * self.size))
                img = ImageOps.exif_transpose(img)
                img.thumbnail((self.size, self.size))
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
