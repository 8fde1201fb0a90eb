"""Hugging Face hub access that fails fast offline.

``HF_HUB_OFFLINE`` is read when a model loads, not only when huggingface_hub is imported, and without it
a short, bounded connection probe tells whether the hub answers at all. Offline, files already in the
local cache still load; a missing one fails at once, in one line, instead of a minute of retries.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from contextlib import contextmanager

__all__ = ["cache_only", "cached", "offline_reason"]

PROBE_SECONDS = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_reason(seconds=PROBE_SECONDS):
    """Why the hub cannot be reached now (``HF_HUB_OFFLINE`` set, or no answer to the probe), or None."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    if not _answers(endpoint, seconds):
        return f"{endpoint} did not answer within {seconds:g} s"
    return None


def _answers(endpoint, seconds):
    """Whether a TCP connection to the endpoint opens within ``seconds``, name lookup included."""
    url = urllib.parse.urlsplit(endpoint)
    address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    opened = []

    def probe():
        try:
            socket.create_connection(address, timeout=seconds).close()
            opened.append(True)
        except OSError:
            pass

    # a daemon thread, because name lookup takes no timeout of its own
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(opened)


def cached(repo_id, filenames):
    """Whether one of ``filenames`` of the hub repository ``repo_id`` is in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames)


@contextmanager
def cache_only():
    """Run huggingface_hub, and the libraries built on it, in offline mode: cached files, no requests."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
