"""Headless Debian Chromium (/usr/bin/chromium) driven by Playwright for Python, for the tests that look at pages;
Playwright's own browser downloads are never used."""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium here hangs on connections the machine refuses (only package registries answer).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 60_000

needs_browser = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not installed: .venv/bin/pip install playwright (its driver is bundled; "
        "never run `playwright install`)",
    ),
]


@contextmanager
def chromium_page(profile: Path, **context) -> Iterator:
    """A page in a fresh headless Chromium profile (1280x720 unless `viewport` says); closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            **{"viewport": {"width": 1280, "height": 720}, **context},
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def log_in_to_label_studio(page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/user/login/")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u, timeout=UI_TIMEOUT_MS)
