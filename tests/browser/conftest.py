"""Browser tests: Playwright for Python driving Debian's `chromium` through its executable path (no browser
download). Without a chromium executable they skip with the reason, except where CAPPI_BROWSER_TESTS=required
(`.ci/run` sets it after installing chromium): there a missing browser fails them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.local_mode import LocalMode, Starter

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    given = os.environ.get("CAPPI_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def _unavailable(reason: str) -> None:
    if os.environ.get("CAPPI_BROWSER_TESTS") == "required":
        pytest.fail(f"browser tests are required here (CAPPI_BROWSER_TESTS=required) but {reason}")
    pytest.skip(f"browser tests skipped: {reason} (apt-get install chromium, or set CAPPI_CHROMIUM)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -r requirements-dev.txt)")
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium executable found")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMode]:
    """One local mode for a module's pages, polling every 2 s, its first polls done."""
    starter = Starter(tmp_path_factory.mktemp("pages"))
    try:
        running = starter(CAPPI_INGEST_INTERVAL="2", CAPPI_POINTER_MAX_AGE_S="1")
        running.wait_for(r"/api/CallData/OpenCalls/\d+/\w+/ids")  # the printed example: first polls are done
        yield running
    finally:
        starter.stop_all()
