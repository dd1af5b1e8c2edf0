"""A corpus of hostile club servers, each through the club client and the ingest handler.

Every case: the poll fails (or is rejected) with a stable code, what readers saw before stays readable, and
no secret reaches the poll's result, its last-poll record or any log line (the session-wide leak check watches
the logs too). Limits are small so each case takes at most a couple of seconds.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from support.aws import SNAPSHOT_TABLE
from support.club_servers import (
    Handler,
    LoopbackServer,
    Responder,
    cut_short,
    drip,
    echo_headers,
    gzip_bomb,
    redirect,
    respond,
    self_signed_tls,
    serve,
)
from support.secrets_registry import BEARER_SECRET
from support.stores import stores

from cappi.adapters.club_client import FETCH_ERROR_CODES, ClientLimits, ClubFeedClient
from cappi.adapters.club_client.redaction import RedactingFilter
from cappi.adapters.secrets import StaticSecrets
from cappi.adapters.snapshot_reader import SnapshotReader
from cappi.domain.registry import ClubAuth, ClubRegistry, ClubSource
from cappi.handlers import ingest
from cappi.handlers.ingest import IngestDependencies
from cappi.observability import logger, route_library_logs_through
from local.http_api import LambdaContext

FEED = "/service/calls/status"
SOURCE = "hostile-club"
CAP = 256 * 1024
LIMITS = ClientLimits(
    connect_timeout=1.0,
    read_timeout=0.5,
    deadline=2.0,
    max_body_bytes=CAP,
    max_attempts=2,
    backoff_base=0.01,
    backoff_cap=0.05,
)
GOOD = json.dumps({"Result": {"Calls": [{"CallId": 8679, "ClubId": 212, "TechId": "AB12"}]}}).encode()


# --- hostile responders -------------------------------------------------------------------------------------------


def endless(h: Handler) -> None:
    """A chunked body that never ends."""
    h.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b" " * 65536
    while h.wait(0):
        h.raw(b"10000\r\n" + piece + b"\r\n")


def bomb(h: Handler) -> None:
    body = gzip_bomb(8 * 1024 * 1024)  # about 8 KB on the wire, 8 MB inflated
    respond(200, body, headers={"Content-Encoding": "gzip"})(h)


def reset_mid_body(h: Handler) -> None:
    """Promise a body, send its start, then reset the connection (RST, not FIN)."""
    h.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n" + GOOD[:20])
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()
    h.close_connection = True


def bad_chunks(h: Handler) -> None:
    h.raw(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    h.close_connection = True


def short_length(h: Handler) -> None:
    """Content-Length smaller than the body: the client reads what was declared, a cut document."""
    h.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n" + GOOD)
    h.close_connection = True


def echo_secret_page(h: Handler) -> None:
    """An error page that quotes the request's Authorization header back, in HTML, as careless servers do."""
    page = f"<html><body><h1>500</h1><pre>Authorization: {h.headers.get('Authorization')}</pre></body></html>"
    respond(500, page.encode(), content_type="text/html")(h)


@dataclass(frozen=True)
class Case:
    responder: Responder
    status: str  # the poll's status: failed (fetch) or rejected (document)
    code: str
    routes: tuple[tuple[str, Responder], ...] = ()
    limits: ClientLimits = LIMITS
    max_seconds: float = 3.0


CASES: dict[str, Case] = {
    "gzip-bomb": Case(bomb, "failed", "too_large"),
    "endless-body": Case(endless, "failed", "too_large"),
    "dripping-body": Case(
        drip(total=60, every=1.0),
        "failed",
        "deadline",
        limits=ClientLimits(read_timeout=5.0, deadline=1.5, max_attempts=2, backoff_base=0.01),
        max_seconds=2.5,
    ),
    "redirect-loop": Case(redirect("/a"), "failed", "redirect_refused", routes=(("/a", redirect(FEED)),)),
    "redirect-to-another-host": Case(redirect("http://localhost:9/feed"), "failed", "redirect_refused"),
    "401": Case(respond(401, b"who are you"), "failed", "auth_failed"),
    "429-huge-retry-after": Case(
        respond(429, b"slow down", headers={"Retry-After": "99999999999"}), "failed", "http_status"
    ),
    "429-negative-retry-after": Case(respond(429, b"", headers={"Retry-After": "-5"}), "failed", "http_status"),
    "429-garbage-retry-after": Case(respond(429, b"", headers={"Retry-After": "soon-ish"}), "failed", "http_status"),
    "503": Case(respond(503, b"<h1>down</h1>", content_type="text/html"), "failed", "http_status"),
    "reset-mid-body": Case(reset_mid_body, "failed", "truncated"),
    "content-length-longer-than-body": Case(cut_short(5000, GOOD), "failed", "truncated"),
    "content-length-shorter-than-body": Case(short_length, "rejected", "not_json"),
    "invalid-chunked-encoding": Case(bad_chunks, "failed", "truncated"),
    "html-instead-of-json": Case(
        respond(200, b"<html>Maintenance</html>", content_type="text/html"), "rejected", "not_json"
    ),
    "secret-echoed-in-error-page": Case(echo_secret_page, "failed", "http_status"),
    "secret-echoed-as-text": Case(echo_headers(502), "failed", "http_status"),
    # Same origin, so followed: the path holds the bearer secret, and every log line and error must hide it.
    "redirect-to-a-path-holding-the-secret": Case(
        redirect(f"/v2/{BEARER_SECRET}/calls"),
        "failed",
        "http_status",
        routes=((f"/v2/{BEARER_SECRET}/calls", respond(503, b"<h1>down</h1>", content_type="text/html")),),
    ),
}


# --- the ingest handler wired to a loopback club ------------------------------------------------------------------


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        yield server


@pytest.fixture(autouse=True)
def _moto_passthrough_redacted() -> Iterator[None]:
    """moto sends every `requests` call through the `responses` library, whose INFO line quotes the full URL: a test
    artefact (Lambda has no moto), so its records get the club client's redaction here, for these tests only."""
    passthrough = logging.getLogger("responses")
    guard = RedactingFilter()
    passthrough.addFilter(guard)
    yield
    passthrough.removeFilter(guard)


@pytest.fixture
def handler_logs() -> Iterator[io.StringIO]:
    """The handler's structured log, with the club client's lines routed into it as from_env does; restored after,
    so later tests' caplog still sees the club client."""
    client_logger = logging.getLogger("cappi.club_client")
    saved = (list(client_logger.handlers), client_logger.propagate, client_logger.level)
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    route_library_logs_through(logger, "cappi.club_client")
    yield stream
    logger.registered_handler.setStream(previous)
    client_logger.handlers, client_logger.propagate = saved[0], saved[1]
    client_logger.setLevel(saved[2])


Run = Callable[[ClientLimits], dict[str, Any]]


@pytest.fixture
def run(club: LoopbackServer, dynamodb: Any, lambda_context: LambdaContext, handler_logs: io.StringIO) -> Run:
    def invoke(limits: ClientLimits, *, base_url: str | None = None, session: Any = None) -> dict[str, Any]:
        source = ClubSource(
            name=SOURCE,
            club_ids=frozenset({212}),
            base_url=base_url or club.base_url,
            auth=ClubAuth(type="bearer", secret="clubs/hostile"),
        )
        store = stores(dynamodb, SNAPSHOT_TABLE)
        fetcher = ClubFeedClient(StaticSecrets({"clubs/hostile": BEARER_SECRET}), limits, session=session)
        deps = IngestDependencies(
            registry=ClubRegistry((source,)), fetcher=fetcher, store=store.writer, poll_log=store.polls
        )
        return ingest.make_handler(lambda: deps)(
            {"source": SOURCE, "scheduled_time": "2026-11-27T21:00:00Z"}, lambda_context
        )

    return invoke  # type: ignore[return-value]


def reader(dynamodb: Any) -> SnapshotReader:
    return SnapshotReader(stores(dynamodb, SNAPSHOT_TABLE).snapshots, {212: SOURCE})


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert BEARER_SECRET not in text


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_club_fails_the_poll_cleanly(
    name: str,
    club: LoopbackServer,
    dynamodb: Any,
    run: Any,
    handler_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    case = CASES[name]
    club.route(FEED, respond(body=GOOD))
    assert run(case.limits)["status"] == "ok"
    club.route(FEED, case.responder)
    for path, responder in case.routes:
        club.route(path, responder)

    started = time.monotonic()
    result = run(case.limits)
    took = time.monotonic() - started

    assert (result["status"], result["error_code"]) == (case.status, case.code), result.get("error")
    assert case.status == "rejected" or case.code in FETCH_ERROR_CODES
    assert took < case.max_seconds
    assert reader(dynamodb).open_calls(212, "AB12").call_ids == ("8679",)  # nothing published was erased
    recorded = stores(dynamodb, SNAPSHOT_TABLE).polls.last_poll(SOURCE)
    assert recorded is not None
    assert (recorded.status, recorded.error_code) == (case.status, case.code)
    assert recorded.last_success_ms is not None and recorded.last_success_ms < recorded.fetched_at_ms
    if "secret" in name:
        assert "[redacted]" in (recorded.error or "")
    assert_no_secret(
        json.dumps(result),
        repr(recorded),
        handler_logs.getvalue(),
        caplog.text,
        " ".join(str(r.__dict__) for r in caplog.records),
        capsys.readouterr().out,
    )


def test_a_redirect_from_https_to_http_is_refused(dynamodb: Any, run: Any, tmp_path: Path) -> None:
    tls, ca_file = self_signed_tls(tmp_path)
    session = requests.Session()
    session.verify = str(ca_file)
    session.trust_env = False  # a CA bundle from the environment would override the test CA
    with serve(tls=tls) as secure, serve() as plain:
        plain.route("/feed", respond(body=GOOD))
        secure.route(FEED, respond(body=GOOD))
        assert run(LIMITS, base_url=secure.base_url, session=session)["status"] == "ok"
        secure.route(FEED, redirect(plain.url("/feed")))

        result = run(LIMITS, base_url=secure.base_url, session=session)

        assert (result["status"], result["error_code"]) == ("failed", "redirect_refused")
        assert plain.requests_to("/feed") == []
    assert reader(dynamodb).open_calls(212, "AB12").call_ids == ("8679",)
