"""Headless Chromium for the dashboard's tests: the distribution's browser, driven by
Playwright (which is told where it is and never downloads one)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]
# Where a test's screenshot is also copied when set (how docs/dashboard.png is made).
SCREENSHOT_ENV = "OTEL_SSE_SCREENSHOT_DIR"


def chromium_path() -> str:
    """The system's Chromium; a test without it fails naming the package."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and os.access("/usr/bin/chromium", os.X_OK):
        path = "/usr/bin/chromium"
    if path is None:
        pytest.fail("the dashboard tests need Chromium: install the Debian package chromium "
                    "(make test does so when run as root)", pytrace=False)
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(),
                                                   args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class PageErrors:
    """Uncaught exceptions of a page's scripts, and anything its Content-Security-Policy
    refused (a test fails on either)."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.errors.append(message.text)

    def check(self) -> None:
        assert not self.errors, f"the page raised: {self.errors}"


async def screenshot(page: Page, folder: Path, name: str) -> Path:
    """A full-page screenshot under ``folder`` (the test's tmp dir), copied to
    ``$OTEL_SSE_SCREENSHOT_DIR`` when that is set."""
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get(SCREENSHOT_ENV)
    if extra:
        os.makedirs(extra, exist_ok=True)
        shutil.copyfile(path, os.path.join(extra, path.name))
    return path


async def wait_for(page: Page, expression: str, arg: Any = None, timeout: float = 20.0) -> Any:
    """Poll ``expression`` (a JS function of ``arg``) in the page until it is truthy;
    returns its value."""
    handle = await page.wait_for_function(expression, arg=arg, timeout=timeout * 1000)
    value = await handle.json_value()
    await handle.dispose()
    return value


# What the tests read off the page, in one place.
TASK_ROWS = """() => [...document.querySelectorAll('#tasks .task')].map(n => ({
  taskId: n.dataset.taskId, status: n.dataset.status, traceId: n.dataset.traceId,
  spanId: n.dataset.spanId, failed: n.classList.contains('failed'),
  background: getComputedStyle(n).backgroundColor,
  bar: n.querySelector('.progress-bar').style.width,
  label: n.querySelector('.progress-label').textContent,
  error: n.querySelector('.task-error').textContent,
  href: n.querySelector('a.task-link').getAttribute('href')}))"""

REQUESTS = """() => [...document.querySelectorAll('#requests .request')].map(n => ({
  requestId: n.dataset.requestId, status: n.dataset.status, traceId: n.dataset.traceId,
  spanId: n.dataset.spanId, text: n.querySelector('.request-text').textContent,
  meta: n.querySelector('.request-meta').textContent,
  usage: n.querySelector('.usage').textContent,
  tools: [...n.querySelectorAll('.tool')].map(
    t => t.querySelector('.tool-call').textContent + t.querySelector('.tool-result').textContent),
  href: n.querySelector('a.request-link').getAttribute('href')}))"""

TRACES = """() => [...document.querySelectorAll('#traces .trace')].map(t => ({
  traceId: t.dataset.traceId, rootSpanId: t.dataset.rootSpanId, state: t.dataset.state,
  badge: t.querySelector('.trace-head .badge').textContent,
  href: t.querySelector('a.trace-link').getAttribute('href'),
  spans: [...t.querySelectorAll('.span')].map(s => ({
    spanId: s.dataset.spanId, parentSpanId: s.dataset.parentSpanId, depth: Number(s.dataset.depth),
    state: s.dataset.state, beats: Number(s.dataset.beats),
    name: s.querySelector('.span-link').textContent,
    href: s.querySelector('.span-link').getAttribute('href')}))}))"""

STATS = "() => window.otelSseDashboard.stats()"
