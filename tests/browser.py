"""A headless Chromium for the tests that look at pages: Debian's ``chromium`` package, driven by
Playwright without any browser download (deploy/check.sh installs it where it is missing).

Screenshots go under ``$PERDURE_TEST_ARTIFACTS`` (default ``test-artifacts/``), the tests'
artefacts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("PERDURE_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM_FLAGS = [
    # Without these Chromium keeps dialling Google's hosts, which a closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
]


@contextmanager
def chromium_page(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A Chromium page of ``width`` x ``height``; the browser is closed on leaving, failed or
    not."""
    from playwright.sync_api import sync_playwright

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Chromium is not installed (apt-get install chromium; deploy/check.sh does)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """The whole page as ``<artifacts>/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
