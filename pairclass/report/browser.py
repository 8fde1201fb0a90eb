"""Open a report page in headless Chromium: a screenshot, or the DOM after parsing.

The page is read from disk with every network feature off, so what renders is what a reader who
opens the mailed file offline sees.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["chromium_path", "dump_dom", "screenshot"]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
# Headless as root in a sandbox with no network: without the background flags Chromium keeps trying
# to reach Google's hosts at start-up.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)


def chromium_path():
    """The Chromium executable on PATH, or None."""
    return next((p for name in CANDIDATES if (p := shutil.which(name))), None)


def _run(page, extra, timeout):
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError(f"no Chromium found on PATH (tried {', '.join(CANDIDATES)})")
    with tempfile.TemporaryDirectory(prefix="pairclass-chromium-") as profile:
        done = subprocess.run(
            [exe, *FLAGS, f"--user-data-dir={profile}", *extra, Path(page).resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def screenshot(page, png, *, width=1280, height=2400, script_ms=None, timeout=60):
    """Render ``page`` in a ``width`` x ``height`` window and save it as the PNG ``png``.

    ``script_ms`` gives the page's scripts that much virtual time to draw before the shot (the report
    pages have none; a page drawn by JavaScript needs it).
    """
    png = Path(png).resolve()
    budget = [] if script_ms is None else [f"--virtual-time-budget={script_ms}"]
    _run(page, [f"--window-size={width},{height}", f"--screenshot={png}", *budget], timeout)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def dump_dom(page, *, timeout=60):
    """The page's DOM as serialised HTML after Chromium has parsed it."""
    return _run(page, ["--dump-dom"], timeout)
