"""A real headless browser for tests: Debian's Chromium (/usr/bin/chromium), driven by
Playwright. Playwright's own browser download cannot reach the network here; `.ci/run`
installs the `chromium` package when it is missing, so these tests always run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless, no sandbox (CI runs as root), and nothing that would phone home.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator:
    """A fresh Playwright page in headless Chromium; console errors and failed requests
    are collected in `page.problems`."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS,
                                     headless=True, timeout=120_000)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(120_000)
            page.problems = []
            page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
            page.on("pageerror", lambda e: page.problems.append(str(e)))
            page.on("requestfailed", lambda r: page.problems.append(f"failed: {r.url}"))
            yield page
        finally:
            browser.close()
