"""What the browser tests share: where Chromium is (Debian's, never Playwright's download) and its flags.

A missing Chromium fails the test with the fix (``apt-get install -y chromium``); it never skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: Headless Chromium as the tests run it: no sandbox (containers), no network of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """``COSMIC_RAY_CHROMIUM``, else ``chromium`` on the PATH, else /usr/bin/chromium; fails the test when absent."""
    exe = os.environ.get("COSMIC_RAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).is_file():
        pytest.fail(f"Chromium not found at {exe}: `apt-get install -y chromium` (Debian) or set COSMIC_RAY_CHROMIUM")
    return exe
