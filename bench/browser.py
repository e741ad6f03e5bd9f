"""Where the test browser is: Debian's Chromium (Playwright drives it through ``executable_path``;
Playwright's own browser download cannot work on these machines)."""

from __future__ import annotations

import os
import shutil

# PASSAGE_CHROMIUM names the binary outright; otherwise the first of these on PATH
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "apt-get install chromium; or set PASSAGE_CHROMIUM to a Chromium binary"


def find_chromium() -> str | None:
    """The Chromium binary to drive, or None when this machine has none."""
    named = os.environ.get("PASSAGE_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def playwright_missing() -> str | None:
    """Why Playwright cannot drive a browser here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; the dev extra has it)"
    if find_chromium() is None:
        return f"no Chromium binary on PATH ({INSTALL_HINT})"
    return None
