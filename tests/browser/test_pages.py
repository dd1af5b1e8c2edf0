"""Local mode's pages in a real headless browser: each renders, /status follows polls without a reload, a feed's
markup shows as text, /docs renders the route from docs/openapi.json with every request on loopback, and an
unknown source is a 404 page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.local_mode import LocalMode, control

from cappi.contracts import api

pytestmark = pytest.mark.timeout(240)
MARKUP = "<img src=x id=pwned>"
ROW = 'tr[data-source="demo-small"]'


@pytest.fixture
def page(browser: Any, local: LocalMode) -> Iterator[Any]:
    """A fresh page that records every request it makes and every console message (CSP refusals show there)."""
    context = browser.new_context(base_url=f"http://127.0.0.1:{local.port}")
    context.set_default_timeout(45_000)  # a poll every 2 s, on a busy 2-core machine
    opened = context.new_page()
    opened.requested = []
    opened.console_errors = []
    opened.on("request", lambda request: opened.requested.append(request.url))
    opened.on("console", lambda message: message.type == "error" and opened.console_errors.append(message.text))
    yield opened
    context.close()


def off_machine(urls: list[str]) -> list[str]:
    """The requests that went anywhere but this machine (data: URLs stay in the page)."""
    return [u for u in urls if not u.startswith("data:") and urlsplit(u).hostname not in ("127.0.0.1", "localhost")]


def test_home_gives_this_instances_commands_without_a_secret(page: Any, local: LocalMode) -> None:
    response = page.goto("/")
    assert response.status == 200
    assert page.title() == "CAPPI local mode"
    token = page.locator("#token-command").inner_text()
    query = page.locator("#query-command").inner_text()
    assert f"http://127.0.0.1:{local.port}/oauth/token" in token and "cappi-demo-tester" in token
    assert re.search(rf"http://127\.0\.0\.1:{local.port}/api/CallData/OpenCalls/\d+/\w+/ids", query)
    assert "TECH_ID" not in query  # first polls are done: a real technician with calls
    assert "cappi-demo-secret" not in page.content()
    for link in ("/docs", "/status"):
        assert page.locator(f'a[href="{link}"]').count() >= 1
    assert off_machine(page.requested) == [] and page.console_errors == []


def test_docs_render_the_route_from_openapi_with_nothing_from_outside(page: Any) -> None:
    response = page.goto("/docs")
    assert response.status == 200
    route = page.locator(".opblock-summary-path", has_text=api.ROUTE)
    route.first.wait_for(timeout=30_000)
    assert page.locator(".info .title").first.inner_text().startswith("CAPPI")
    assert any(u.endswith("/docs/openapi.json") for u in page.requested)
    assert off_machine(page.requested) == []
    assert page.console_errors == []  # no Content-Security-Policy refusal, no failed asset


def test_status_follows_a_poll_without_reload_and_shows_markup_as_text(page: Any, local: LocalMode) -> None:
    page.goto("/status")
    assert page.title() == "CAPPI status"
    row = page.locator(ROW)
    assert row.locator("td").nth(1).inner_text() == "ok"
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    # The club's feed turns bad (half its rows have a TechId holding markup): the next poll rejects it.
    control(local, "demo-small", calls=[[1111111, 212, "PINNED1"], [2222222, 212, MARKUP]])
    try:
        page.wait_for_function(f"() => document.querySelector('{ROW} td:nth-child(2)').textContent === 'rejected'")
    except Exception:  # what the page and local mode showed, to tell a slow poll from a page that stopped following
        shown = f"{row.locator('td').all_inner_texts()} ({page.locator('#updated').inner_text()})"
        raise AssertionError(f"{shown}; local mode printed:\n{local.output()[-2000:]}") from None
    cells = row.locator("td").all_inner_texts()
    assert cells[5].startswith("too_many_rejected") and cells[7] == "1 (tech_id_invalid 1)"
    assert navigations == []  # updated in place
    assert page.locator("#updated").inner_text().startswith("updated")

    # Its feed report names the rows: the markup is text in the page, never an element.
    report = page.goto("/status/demo-small")
    assert report.status == 200
    assert page.title() == "CAPPI feed report: demo-small"
    page.locator("#rules").wait_for()
    assert "FAIL" in page.locator("#verdict").inner_text()
    assert MARKUP in page.locator("#rules").inner_text()
    assert page.locator("#pwned").count() == 0 and page.locator("main img").count() == 0
    assert off_machine(page.requested) == [] and page.console_errors == []
    control(local, "demo-small", calls=None)


def test_unknown_source_is_a_404_page(page: Any) -> None:
    response = page.goto("/status/no-such-source")
    assert response.status == 404
    assert page.title() == "Not found"
    assert "no-such-source" in page.locator("main").inner_text()
