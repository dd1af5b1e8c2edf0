"""Local mode's pages on the gateway (local/pages) without a browser: what they claim and what they leave to the
API, HEAD and conditional GET, the Content-Security-Policy, escaping of feed values, and the 404 page.
The browser drives the same pages in tests/browser/."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest
from support.query_support import REGISTRY, query_api

from cappi.contracts import api
from cappi.domain.last_poll import FAILED, LastPoll
from local.gateway import Gateway
from local.pages import Instance, Pages
from local.pages.feed_report import FeedReport

MARKUP = '<img src=x onerror="alert(1)">'
ROUTE = api.path_for(212, "AB12")


@dataclass
class MarkupPolls:
    """Source alpha's last poll failed with an error text holding markup (as a club's HTML error page may)."""

    def last_poll(self, source: str) -> LastPoll | None:
        return LastPoll(source, FAILED, 1, 0.1, error_code="http_status", error=f"club said {MARKUP}", http_status=502)


def _report(source: str) -> FeedReport:
    rules = [
        {
            "rule": "tech_id_invalid",
            "text": "TechId",
            "passed": False,
            "count": 1,
            "examples": [{"row": 1, "value": MARKUP}],
        }
    ]
    return FeedReport(
        {"verdict": "fail", "would": "reject", "reason": MARKUP, "origin": "x", "rules": rules}, None, None
    )


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with query_api() as running:
        gateway = Gateway(running.api, {}, "127.0.0.1", 0)
        gateway.pages = Pages(
            Instance(
                base_url="http://127.0.0.1:3000",
                audience="http://127.0.0.1:3000",
                issuer="http://127.0.0.1:3000/",
                client_id="cappi-demo-tester",
                route=api.ROUTE,
                registry=REGISTRY,
                heads=running.store.snapshots,
                polls=MarkupPolls(),
                stale_after_s=1800,
                example=lambda: (212, "AB12"),
                feed_report=_report,
            )
        )
        gateway.start()
        try:
            yield gateway.port
        finally:
            gateway.stop()


def request(port: int, method: str, target: str, headers: Mapping[str, str] | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, target, headers=dict(headers or {}))
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


@pytest.mark.parametrize(
    "target", ["/api/nope", "/api/CallData/OpenCalls/212", "/nope", "/docs/nope", "/pages/x.js", "/statusx"]
)
def test_unknown_paths_still_answer_the_apis_json_404(port: int, target: str) -> None:
    response = request(port, "GET", target)
    assert (response.status, response.getheader("Content-Type")) == (404, "application/json")
    assert response.body == b'{"message":"Not Found"}'  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_pages_claim_only_get_and_head(port: int, method: str) -> None:
    for target in ("/", "/status", "/docs"):
        response = request(port, method, target)
        assert (response.status, response.body) == (404, b'{"message":"Not Found"}')  # type: ignore[attr-defined]


def test_the_api_route_is_not_shadowed(port: int) -> None:
    response = request(port, "GET", ROUTE, {"Authorization": "Bearer t"})
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert isinstance(json.loads(response.body), list)  # type: ignore[attr-defined]  # the query's calls
    assert response.getheader("Content-Security-Policy") is None


def test_home_shows_real_urls_and_no_secret(port: int) -> None:
    response = request(port, "GET", "/")
    body = response.body.decode()  # type: ignore[attr-defined]
    assert response.status == 200 and response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "http://127.0.0.1:3000/oauth/token" in body
    assert "http://127.0.0.1:3000/api/CallData/OpenCalls/212/AB12/ids" in body
    assert "cappi-demo-tester" in body and "$CAPPI_CLIENT_SECRET" in body
    assert "cappi-demo-secret" not in body
    csp = response.getheader("Content-Security-Policy") or ""
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "http" not in csp


def test_head_and_conditional_get(port: int) -> None:
    full = request(port, "GET", "/docs")
    head = request(port, "HEAD", "/docs")
    assert head.status == 200 and head.body == b""  # type: ignore[attr-defined]
    assert head.getheader("Content-Length") == str(len(full.body))  # type: ignore[attr-defined]
    etag = full.getheader("ETag")
    assert etag and head.getheader("ETag") == etag
    again = request(port, "GET", "/docs", {"If-None-Match": etag})
    assert (again.status, again.body) == (304, b"")  # type: ignore[attr-defined]
    changed = request(port, "GET", "/docs", {"If-None-Match": '"other"'})
    assert changed.status == 200 and changed.body == full.body  # type: ignore[attr-defined]


def test_feed_values_are_escaped_text(port: int) -> None:
    status = request(port, "GET", "/status").body.decode()  # type: ignore[attr-defined]
    report = request(port, "GET", "/status/alpha").body.decode()  # type: ignore[attr-defined]
    for body in (status, report):
        assert "<img" not in body
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body
    assert "HTTP 502: http_status: club said" in status
    document = json.loads(request(port, "GET", "/status.json").body)  # type: ignore[attr-defined]
    (alpha,) = [s for s in document["sources"] if s["name"] == "alpha"]
    assert alpha["state"] == "failing" and alpha["last_http_status"] == 502


def test_unknown_source_is_an_html_404(port: int) -> None:
    response = request(port, "GET", "/status/%3Cb%3Enope")
    body = response.body.decode()  # type: ignore[attr-defined]
    assert response.status == 404 and response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "&lt;b&gt;nope" in body and "<b>nope" not in body


def test_openapi_for_the_docs_names_this_instance(port: int) -> None:
    document = json.loads(request(port, "GET", "/docs/openapi.json").body)  # type: ignore[attr-defined]
    assert document["servers"] == [{"url": "http://127.0.0.1:3000", "description": "this local mode"}]
    assert api.ROUTE in document["paths"]


def test_the_feed_page_shows_checkfeeds_report_and_plan_with_what_to_change() -> None:
    """What `cappi check-feed --source S --plan --json` says, as the page renders it: each rule and warning with its
    fix, example rows by their 1-based number and CallId, the key casing in words, the plan's counts before its
    technicians; every feed value as text."""
    from cli.feed_plan import plan
    from cli.feed_report import Fetched, check
    from local.pages.html import feed

    rows = [{"callid": 8679, "clubid": 212, "techid": "AB12"}, {"callid": "8655R", "clubid": 212, "techid": MARKUP}]
    body = json.dumps({"Result": {"Calls": rows}}).encode()
    report = check(Fetched(body, "http://club.example/service/calls/status"), frozenset({212}))
    good = json.dumps({"Result": {"Calls": [{"CallId": 8679 + n, "ClubId": 212, "TechId": "AB12"} for n in range(3)]}})
    page = feed("alpha", report, plan(good.encode(), frozenset({212}), {}), None)
    assert "row 2, CallId" in page  # the bad TechId's row, counted from 1, with its CallId
    assert "Example rows are numbered from 1" in page
    assert "keys spelled Result, Calls, callid, clubid, techid" in page
    assert "Spell the keys as the integration document does" in page  # a warning's fix, though the feed passes it
    assert "TechId" in page and "letters" in page
    assert MARKUP not in page and "&lt;img src=x" in page
    counts, techs = page.index("calls opened"), page.index("<th>technician</th>")
    assert counts < techs  # counts first, then examples
    assert "<code>AB12</code>" in page and "8679, 8680, 8681" in page
