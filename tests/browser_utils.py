"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright for Python."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .utils import TIMEOUT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 # The test pages are answered by Playwright, not by a server, so Chromium cannot tell
                 # that they come from 127.0.0.1 and would block their WebSocket to the (local) hub.
                 "--disable-features=LocalNetworkAccessChecks"]
WAIT_MS = 4 * TIMEOUT * 1000


def available() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "browser tests need the playwright package"
    if shutil.which(CHROMIUM) is None:
        return f"browser tests need Debian's chromium at {CHROMIUM}"
    return None


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            yield browser
        finally:
            await browser.close()


def keep_screenshot(path: Path) -> None:
    """Print where a screenshot is, and copy it to ``$PUSHHUB_TEST_ARTIFACTS`` when that is set."""
    print(f"screenshot: {path}")
    target = os.environ.get("PUSHHUB_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
