"""The club feed client against real HTTP(S) servers on loopback: auth, timeouts, redirects, bodies, retries."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
import logging
import ssl
import stat
import time
import traceback
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests
from support.clock import Clock
from support.club_servers import (
    Responder,
    chunked,
    closed_port,
    cut_short,
    drip,
    echo_headers,
    gzip_bomb,
    gzipped,
    in_turn,
    raw_deflated,
    redirect,
    respond,
    self_signed_tls,
    serve,
    stall_after,
    zlib_deflated,
)

from cappi.adapters.club_client import ClientLimits, ClubFeedClient, FeedFetchError, FetchResult
from cappi.adapters.club_client.retry_policy import retry_after_s as _retry_after_s
from cappi.adapters.secrets import ParameterStoreSecrets, SecretNotFound, StaticSecrets
from cappi.contracts.credentials import parameter_name
from cappi.domain.registry import ClubAuth, ClubSource

FEED = "/service/calls/status"
TOKEN = "/oauth/token"
MB = 1024 * 1024

FAST = ClientLimits(
    connect_timeout=1.0,
    read_timeout=0.5,
    deadline=2.0,
    max_body_bytes=1 * MB,
    max_attempts=3,
    backoff_base=0.01,
    backoff_cap=0.05,
    max_redirects=3,
)

BEARER_SECRET = "Zq9-BEARER-SECRET-7xK"
API_KEY_SECRET = "ak-API-KEY-SECRET-31"
BASIC_PASSWORD = "PW-BASIC-SECRET-42"
CLIENT_SECRET = "CS-CLIENT-SECRET-99"
SECRETS = StaticSecrets(
    {
        "clubs/bearer": BEARER_SECRET + "\n",  # as written by `echo ... > file`
        "clubs/api-key": API_KEY_SECRET,
        "clubs/basic": f"alice:{BASIC_PASSWORD}",
        "clubs/basic-json": json.dumps({"username": "bob", "password": BASIC_PASSWORD}),
        "clubs/oauth": CLIENT_SECRET,
    }
)


def club(base_url: str, auth: ClubAuth | None = None, headers: dict[str, str] | None = None) -> ClubSource:
    return ClubSource(
        name="test-club", club_ids=frozenset({212}), base_url=base_url, auth=auth or ClubAuth(), headers=headers or {}
    )


def oauth(server_url: str, **overrides: str) -> ClubAuth:
    fields = {"token_url": server_url + TOKEN, "client_id": "cappi", "secret": "clubs/oauth"} | overrides
    return ClubAuth(type="oauth2_client_credentials", **fields)


def fetch_error(client: ClubFeedClient, source: ClubSource) -> FeedFetchError:
    with pytest.raises(FeedFetchError) as caught:
        client.fetch(source)
    return caught.value


class TokenIssuer:
    """A token endpoint handing out tok-1, tok-2, ... (the forms it got are in server.seen)."""

    def __init__(self, expires_in: int | None = 3600) -> None:
        self.issued = 0
        self.expires_in = expires_in

    def __call__(self, h) -> None:
        self.issued += 1
        doc: dict[str, object] = {"access_token": f"tok-{self.issued}", "token_type": "Bearer"}
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        respond(200, json.dumps(doc).encode())(h)


def accept_only(token: str) -> Responder:
    """A feed that takes one bearer token and answers 401 to anything else."""

    def run(h) -> None:
        if h.headers.get("Authorization") == f"Bearer {token}":
            respond(200, b'[{"ok": true}]')(h)
        else:
            respond(401, b"token rejected", content_type="text/plain")(h)

    return run


@pytest.fixture
def server():
    with serve() as s:
        yield s


@pytest.fixture
def client() -> ClubFeedClient:
    return ClubFeedClient(SECRETS, FAST)


# --- request shape and authentication ---


def test_plain_fetch_sends_default_headers_and_returns_the_body(server, client):
    server.route(FEED, respond(200, b'[{"CallId": 1}]'))

    result = client.fetch(club(server.base_url))

    assert result.body == b'[{"CallId": 1}]'
    assert (result.status, result.attempts, result.url) == (200, 1, server.url(FEED))
    assert result.content_type == "application/json"
    assert result.bytes_on_wire == len(result.body)
    (seen,) = server.requests_to(FEED)
    assert seen.headers["user-agent"] == "CAPPI/1.0"
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["accept-encoding"] == "gzip, deflate"
    assert "authorization" not in seen.headers


def test_registry_headers_override_the_user_agent_but_not_the_accepted_encodings(server, client):
    server.route(FEED, respond())
    headers = {"User-Agent": "API Services B2B Partners", "Ident": "ClubAssist", "accept-encoding": "br"}

    client.fetch(club(server.base_url, headers=headers))

    (seen,) = server.requests_to(FEED)
    assert seen.headers["user-agent"] == "API Services B2B Partners"
    assert seen.headers["ident"] == "ClubAssist"
    assert seen.headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("auth", "header", "expected"),
    [
        (ClubAuth(type="bearer", secret="clubs/bearer"), "authorization", f"Bearer {BEARER_SECRET}"),
        (
            ClubAuth(type="basic", secret="clubs/basic"),
            "authorization",
            "Basic " + base64.b64encode(f"alice:{BASIC_PASSWORD}".encode()).decode(),
        ),
        (
            ClubAuth(type="basic", secret="clubs/basic-json"),
            "authorization",
            "Basic " + base64.b64encode(f"bob:{BASIC_PASSWORD}".encode()).decode(),
        ),
        (ClubAuth(type="api_key", secret="clubs/api-key", header="X-Api-Key"), "x-api-key", API_KEY_SECRET),
    ],
    ids=["bearer", "basic-colon", "basic-json", "api-key"],
)
def test_each_auth_type_reaches_the_server(server, client, auth, header, expected):
    server.route(FEED, respond())

    client.fetch(club(server.base_url, auth))

    (seen,) = server.requests_to(FEED)
    assert seen.headers[header] == expected


def test_basic_password_may_contain_colons(server, client):
    server.route(FEED, respond())
    secrets = StaticSecrets({"s": "carol:a:b:c"})

    ClubFeedClient(secrets, FAST).fetch(club(server.base_url, ClubAuth(type="basic", secret="s")))

    (seen,) = server.requests_to(FEED)
    assert base64.b64decode(seen.headers["authorization"].split()[1]) == b"carol:a:b:c"


@pytest.mark.parametrize(
    ("value", "auth"),
    [
        (None, ClubAuth(type="bearer", secret="s")),  # no such secret
        ("no-colon-here", ClubAuth(type="basic", secret="s")),
        ('{"username": "x"}', ClubAuth(type="basic", secret="s")),
        ("two words", ClubAuth(type="bearer", secret="s")),
        ("line\nbreak", ClubAuth(type="api_key", secret="s", header="X-Key")),
        ("   ", ClubAuth(type="bearer", secret="s")),
    ],
)
def test_unusable_secrets_fail_before_any_request(server, value, auth):
    secrets = StaticSecrets({} if value is None else {"s": value})

    error = fetch_error(ClubFeedClient(secrets, FAST), club(server.base_url, auth))

    assert error.code == "secret_missing"
    assert "'s'" in error.message
    assert error.attempts == 0
    assert server.seen == []
    if value and value.strip():
        assert value not in str(error)
        assert value not in repr(error)


def test_a_failing_secret_store_is_reported_as_secret_missing(server):
    class Broken:
        def get(self, name: str) -> str:
            raise RuntimeError("AccessDeniedException: not authorized")

    error = fetch_error(ClubFeedClient(Broken(), FAST), club(server.base_url, ClubAuth(type="bearer", secret="s")))

    assert error.code == "secret_missing"
    assert "AccessDeniedException" in error.message
    assert server.seen == []


# --- oauth2 client credentials ---


def test_oauth_token_is_fetched_once_and_reused(server, client):
    issuer = TokenIssuer()
    server.route(TOKEN, issuer, method="POST")
    server.route(FEED, accept_only("tok-1"))
    source = club(server.base_url, oauth(server.base_url, scope="read:calls", audience="https://club.example"))

    for _ in range(3):
        assert client.fetch(source).status == 200

    assert issuer.issued == 1
    (token_call,) = server.requests_to(TOKEN, method="POST")
    assert token_call.form == {
        "grant_type": "client_credentials",
        "client_id": "cappi",
        "client_secret": CLIENT_SECRET,
        "scope": "read:calls",
        "audience": "https://club.example",
    }
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert [s.headers["authorization"] for s in server.requests_to(FEED)] == ["Bearer tok-1"] * 3


def test_tokens_are_cached_per_client_id(server, client):
    issuer = TokenIssuer()
    server.route(TOKEN, issuer, method="POST")
    server.route(FEED, respond())

    client.fetch(club(server.base_url, oauth(server.base_url, client_id="a")))
    client.fetch(club(server.base_url, oauth(server.base_url, client_id="b")))
    client.fetch(club(server.base_url, oauth(server.base_url, client_id="a")))

    assert issuer.issued == 2


def test_oauth_token_is_refreshed_a_margin_before_it_expires(server):
    clock = Clock()
    client = ClubFeedClient(SECRETS, FAST, clock=clock)
    issuer = TokenIssuer(expires_in=300)
    server.route(TOKEN, issuer, method="POST")
    server.route(FEED, respond())
    source = club(server.base_url, oauth(server.base_url))

    client.fetch(source)
    clock.now += 239  # 61 s left: still outside the 60 s margin
    client.fetch(source)
    assert issuer.issued == 1
    clock.now += 2  # 59 s left
    client.fetch(source)

    assert issuer.issued == 2
    assert [s.headers["authorization"] for s in server.requests_to(FEED)] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def test_missing_expires_in_means_one_hour(server):
    clock = Clock()
    client = ClubFeedClient(SECRETS, FAST, clock=clock)
    issuer = TokenIssuer(expires_in=None)
    server.route(TOKEN, issuer, method="POST")
    server.route(FEED, respond())
    source = club(server.base_url, oauth(server.base_url))

    client.fetch(source)
    clock.now += 3600 - 61
    client.fetch(source)
    assert issuer.issued == 1
    clock.now += 2
    client.fetch(source)
    assert issuer.issued == 2


def test_a_401_renews_the_token_and_retries_once(server, client):
    issuer = TokenIssuer()
    server.route(TOKEN, issuer, method="POST")
    server.route(FEED, accept_only("tok-2"))  # the first token was revoked early

    result = client.fetch(club(server.base_url, oauth(server.base_url)))

    assert result.status == 200
    assert result.attempts == 2
    assert issuer.issued == 2


def test_a_second_401_is_an_auth_failure(server, client):
    issuer = TokenIssuer()
    server.route(TOKEN, issuer, method="POST")
    server.route(FEED, accept_only("never"))

    error = fetch_error(client, club(server.base_url, oauth(server.base_url)))

    assert (error.code, error.status, error.attempts) == ("auth_failed", 401, 2)
    assert issuer.issued == 2
    assert len(server.requests_to(FEED)) == 2


@pytest.mark.parametrize(
    "responder",
    [
        respond(400, b'{"error": "invalid_client"}'),
        respond(500, b"down"),
        respond(200, b"not json"),
        respond(200, b'{"token_type": "Bearer"}'),
        respond(200, b'{"access_token": "ok", "expires_in": "soon"}'),
        redirect("/elsewhere"),
    ],
    ids=["400", "500", "not-json", "no-token", "bad-expiry", "redirect"],
)
def test_token_endpoint_failures(server, client, responder):
    server.route(TOKEN, responder, method="POST")
    server.route(FEED, respond())

    error = fetch_error(client, club(server.base_url, oauth(server.base_url)))

    assert error.code == "token_endpoint"
    assert server.requests_to(FEED) == []
    assert len(server.requests_to(TOKEN, method="POST")) == 1


def test_unreachable_token_endpoint(server, client):
    server.route(FEED, respond())
    auth = oauth(server.base_url, token_url=f"http://127.0.0.1:{closed_port()}/token")

    error = fetch_error(client, club(server.base_url, auth))

    assert error.code == "token_endpoint"
    assert server.seen == []


def test_token_url_must_be_https_or_loopback(server, client):
    auth = oauth(server.base_url, token_url="http://auth.example.com/oauth/token")

    error = fetch_error(client, club(server.base_url, auth))

    assert error.code == "insecure_url"
    assert server.seen == []


# --- deadline and timeouts ---


@pytest.mark.parametrize("is_chunked", [False, True], ids=["content-length", "chunked"])
def test_a_dripping_body_is_stopped_by_the_deadline(server, is_chunked):
    # Each byte arrives well within the read timeout, so only the total deadline can stop this.
    server.route(FEED, drip(total=10_000, every=0.02, chunked=is_chunked))
    limits = ClientLimits(read_timeout=0.5, deadline=1.0, max_body_bytes=MB)

    started = time.monotonic()
    error = fetch_error(ClubFeedClient(SECRETS, limits), club(server.base_url))
    elapsed = time.monotonic() - started

    assert error.code == "deadline"
    assert 0.9 <= elapsed < 1.5
    assert error.attempts == 1


def test_a_fast_drip_is_stopped_between_reads(server):
    # Bytes come faster than the smallest socket timeout the client sets, so only its own check can stop it.
    server.route(FEED, drip(total=800, every=0.005))
    limits = ClientLimits(read_timeout=0.5, deadline=1.0)

    started = time.monotonic()
    error = fetch_error(ClubFeedClient(SECRETS, limits), club(server.base_url))

    assert error.code == "deadline"
    assert time.monotonic() - started < 1.3


def test_a_read_never_outlives_the_deadline(server):
    # Bytes for 0.6 s, then silence. The request started with a socket timeout of 1 s (the deadline), so only
    # shrinking it before each read ends the fetch at the 1 s deadline rather than at 1.6 s.
    server.route(FEED, drip(total=6, every=0.1, declared=100))
    limits = ClientLimits(read_timeout=5.0, deadline=1.0)

    started = time.monotonic()
    error = fetch_error(ClubFeedClient(SECRETS, limits), club(server.base_url))

    assert error.code == "deadline"
    assert time.monotonic() - started < 1.3


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b""],
    ids=["stall-in-body", "stall-before-headers"],
)
def test_a_stalled_server_times_out_after_every_attempt(server, head):
    server.route(FEED, stall_after(head))
    limits = ClientLimits(read_timeout=0.3, deadline=5.0, max_attempts=3, backoff_base=0.01)

    started = time.monotonic()
    error = fetch_error(ClubFeedClient(SECRETS, limits), club(server.base_url))
    elapsed = time.monotonic() - started

    assert (error.code, error.attempts) == ("timeout", 3)
    assert len(server.requests_to(FEED)) == 3
    assert 0.85 <= elapsed < 2.0


def test_connection_refused_is_retried_then_reported(client):
    slept: list[float] = []
    client = ClubFeedClient(SECRETS, FAST, sleep=slept.append)

    error = fetch_error(client, club(f"http://127.0.0.1:{closed_port()}"))

    assert (error.code, error.attempts) == ("connection", 3)
    assert "refused" in error.message.lower()
    assert len(slept) == 2
    assert all(0 <= s <= FAST.backoff_cap for s in slept)


# --- redirects ---


def test_same_origin_redirect_is_followed_with_credentials(server, client):
    server.route(FEED, redirect("/v2/calls", status=301))
    server.route("/v2/calls", redirect(server.url("/v3/calls"), status=308))
    server.route("/v3/calls", respond(200, b"[1]"))

    result = client.fetch(club(server.base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

    assert result.body == b"[1]"
    assert result.url == server.url("/v3/calls")
    assert result.attempts == 1
    (seen,) = server.requests_to("/v3/calls")
    assert seen.headers["authorization"] == f"Bearer {BEARER_SECRET}"


def test_redirect_to_another_host_is_refused_without_contacting_it(server, client):
    with serve() as other:
        other.route(FEED, respond())
        server.route(FEED, redirect(f"http://localhost:{other.port}{FEED}"))

        error = fetch_error(client, club(server.base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

        assert error.code == "redirect_refused"
        assert other.seen == []


def test_redirect_to_another_port_is_refused(server, client):
    with serve() as other:
        server.route(FEED, redirect(other.url(FEED), status=307))

        assert fetch_error(client, club(server.base_url)).code == "redirect_refused"
        assert other.seen == []


def test_redirect_loop_is_refused(server, client):
    server.route(FEED, redirect("/b"))
    server.route("/b", redirect(FEED))

    error = fetch_error(client, club(server.base_url))

    assert error.code == "redirect_refused"
    assert "loop" in error.message
    assert error.attempts == 1


def test_redirect_chain_longer_than_the_limit_is_refused(server, client):
    server.route(FEED, redirect("/r1"))
    for n in range(1, 5):
        server.route(f"/r{n}", redirect(f"/r{n + 1}"))
    server.route("/r5", respond())

    error = fetch_error(client, club(server.base_url))

    assert error.code == "redirect_refused"
    assert len(server.seen) == 4  # the feed and three hops, never the fourth


def test_a_redirect_body_is_not_read_into_memory(server, client):
    # requests' Session.send reads a whole 3xx body (uncapped) even with allow_redirects=False.
    server.route(FEED, in_turn(respond(), redirect("https://elsewhere.example/", body_size=64 * MB)))
    client.fetch(club(server.base_url))  # first use imports and allocates lazily; keep that out of the trace

    tracemalloc.start()
    try:
        error = fetch_error(client, club(server.base_url))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert error.code == "redirect_refused"
    assert peak < 2 * MB, f"peak traced memory {peak} bytes"


def test_redirect_without_location_is_refused(server, client):
    server.route(FEED, respond(302, b"", content_type=None))

    assert fetch_error(client, club(server.base_url)).code == "redirect_refused"


def test_other_3xx_statuses_are_not_followed(server, client):
    server.route(FEED, respond(300, b"choices", headers={"Location": "/x"}))

    error = fetch_error(client, club(server.base_url))

    assert (error.code, error.status) == ("http_status", 300)


# --- body size, encodings, truncation ---


def test_declared_length_over_the_cap_is_refused_before_reading(server, client):
    server.route(FEED, stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n[[["))

    started = time.monotonic()
    error = fetch_error(client, club(server.base_url))

    assert error.code == "too_large"
    assert error.attempts == 1
    assert time.monotonic() - started < 0.4  # no waiting on the body that never comes


def test_chunked_body_over_the_cap_is_refused(server, client):
    server.route(FEED, chunked([b"x" * 65536] * 40))  # 2.5 MB against a 1 MB cap

    error = fetch_error(client, club(server.base_url))

    assert error.code == "too_large"
    assert error.attempts == 1


def test_body_exactly_at_the_cap_is_accepted(server, client):
    server.route(FEED, chunked([b"x" * 65536] * 16))

    assert len(client.fetch(club(server.base_url)).body) == MB


def test_gzip_bomb_is_stopped_without_inflating_it(server, client):
    bomb = gzip_bomb(20 * MB)
    assert len(bomb) < 100_000
    server.route(FEED, in_turn(respond(), respond(200, bomb, headers={"Content-Encoding": "gzip"})))
    client.fetch(club(server.base_url))  # first use imports and allocates lazily; keep that out of the trace

    tracemalloc.start()
    try:
        error = fetch_error(client, club(server.base_url))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert error.code == "too_large"
    assert peak < 4 * MB, f"peak traced memory {peak} bytes"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("gzip", gzipped), ("x-gzip", gzipped), ("deflate", zlib_deflated), ("deflate", raw_deflated)],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw"],
)
def test_compressed_bodies_are_decoded(server, client, encoding, encode):
    payload = json.dumps([{"CallId": n, "ClubId": 212, "TechId": "T1"} for n in range(2000)]).encode()
    wire = encode(payload)
    server.route(FEED, respond(200, wire, headers={"Content-Encoding": encoding}))

    result = client.fetch(club(server.base_url))

    assert result.body == payload
    assert result.bytes_on_wire == len(wire) < len(payload)


def test_concatenated_gzip_members_are_one_body(server, client):
    server.route(FEED, respond(200, gzipped(b"[1,") + gzipped(b"2]"), headers={"Content-Encoding": "gzip"}))

    assert client.fetch(club(server.base_url)).body == b"[1,2]"


def test_decompressed_body_may_fill_the_cap_exactly(server, client):
    server.route(FEED, respond(200, gzipped(b"x" * MB), headers={"Content-Encoding": "gzip"}))

    assert len(client.fetch(club(server.base_url)).body) == MB


@pytest.mark.parametrize(
    ("wire", "encoding"),
    [
        (b"\x1f\x8b\x08\x00garbage-garbage-garbage", "gzip"),
        (gzipped(b'[{"CallId": 1}]' * 100)[:-20], "gzip"),  # stream ends early although the framing is whole
        (b"plain text", "deflate"),
        (b"[]", "br"),
        (b"[]", "gzip, gzip"),
    ],
    ids=["corrupt-gzip", "unfinished-gzip", "not-deflate", "brotli", "double-gzip"],
)
def test_bad_encodings(server, client, wire, encoding):
    server.route(FEED, respond(200, wire, headers={"Content-Encoding": encoding}))

    error = fetch_error(client, club(server.base_url))

    assert (error.code, error.attempts) == ("bad_encoding", 1)


def test_body_shorter_than_its_content_length_is_truncated_and_retried(server, client):
    server.route(FEED, cut_short(1000, b"0123456789"))

    error = fetch_error(client, club(server.base_url))

    assert (error.code, error.attempts) == ("truncated", 3)
    assert len(server.requests_to(FEED)) == 3


def test_chunked_body_cut_mid_chunk_is_truncated(server, client):
    def run(h) -> None:
        h.raw(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n[{"Call')
        h.close_connection = True

    server.route(FEED, in_turn(run, respond(200, b"[]")))

    result = client.fetch(club(server.base_url))

    assert result.attempts == 2
    assert result.body == b"[]"


# --- statuses and retries ---


@pytest.mark.parametrize(("status", "code"), [(401, "auth_failed"), (403, "auth_failed"), (404, "http_status")])
def test_client_errors_are_not_retried(server, client, status, code):
    server.route(FEED, respond(status, b"nope", content_type="text/plain"))

    error = fetch_error(client, club(server.base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

    assert (error.code, error.status, error.attempts) == (code, status, 1)
    assert len(server.requests_to(FEED)) == 1
    assert "nope" in error.message


def test_server_errors_are_retried_up_to_max_attempts(server, client):
    server.route(FEED, respond(500, b"boom"))

    error = fetch_error(client, club(server.base_url))

    assert (error.code, error.status, error.attempts) == ("http_status", 500, 3)
    assert len(server.requests_to(FEED)) == 3


def test_503_then_200_succeeds(server, client):
    server.route(FEED, in_turn(respond(503, b"busy"), respond(200, b"[7]")))

    result = client.fetch(club(server.base_url))

    assert (result.body, result.attempts) == (b"[7]", 2)


def test_non_200_success_is_an_error(server, client):
    server.route(FEED, respond(204, b"", content_type=None))

    error = fetch_error(client, club(server.base_url))

    assert (error.code, error.status, error.attempts) == ("http_status", 204, 1)


def test_429_waits_as_long_as_retry_after_says(server):
    server.route(FEED, in_turn(respond(429, b"slow down", headers={"Retry-After": "1"}), respond()))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    limits = ClientLimits(read_timeout=0.5, deadline=3.0, backoff_base=0.01)
    result = ClubFeedClient(SECRETS, limits, sleep=sleep).fetch(club(server.base_url))

    assert result.attempts == 2
    assert slept == [1.0]
    first, second = server.requests_to(FEED)
    assert second.at - first.at >= 0.95


def test_retry_after_past_the_deadline_fails_at_once(server, client):
    server.route(FEED, respond(429, b"", headers={"Retry-After": "30"}))

    started = time.monotonic()
    error = fetch_error(client, club(server.base_url))

    assert (error.code, error.status, error.attempts) == ("http_status", 429, 1)
    assert time.monotonic() - started < 0.5
    assert len(server.requests_to(FEED)) == 1


def test_retry_after_as_http_date():
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    an_hour_ago = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)

    assert 58 <= _retry_after_s(in_a_minute) <= 60
    assert _retry_after_s(an_hour_ago) == 0.0
    assert _retry_after_s("7") == 7.0
    assert _retry_after_s("soon") is None
    assert _retry_after_s(None) is None


def test_non_ascii_digits_are_unreadable_not_a_crash():
    assert _retry_after_s("²") is None
    assert _retry_after_s("٣٠") is None  # Arabic-Indic digits: isdigit() says yes, float() says no


def test_an_html_error_page_becomes_a_short_clean_message(server, client):
    page = (
        b"<!DOCTYPE html><html><head><title>500 Internal Server Error</title>"
        b"<style>body{color:red}</style></head><body>\n\n<h1>Internal&nbsp;Server Error</h1>\x00\x1b[31m"
        + b"<p>The server encountered an internal error.</p>" * 200
        + b"</body></html>"
    )
    server.route(FEED, respond(500, page, content_type="text/html"))

    error = fetch_error(client, club(server.base_url))

    assert "500 Internal Server Error" in error.message
    assert "<" not in error.message
    assert "\x00" not in error.message
    assert "\x1b" not in error.message
    assert "\n" not in error.message
    assert len(error.message) < 300


def test_a_huge_error_body_is_not_read_to_the_end(server, client):
    server.route(FEED, respond(500, b"E" * (5 * MB), content_type="text/plain"))
    client = ClubFeedClient(SECRETS, ClientLimits(deadline=5.0, max_attempts=1, max_body_bytes=MB))

    started = time.monotonic()
    error = fetch_error(client, club(server.base_url))

    assert error.status == 500
    assert time.monotonic() - started < 1.0
    assert len(error.message) < 300


# --- connection reuse ---


def test_connections_are_reused_between_fetches_and_after_small_error_bodies(server, client):
    server.route(FEED, in_turn(respond(), respond(404, b"gone"), respond()))
    source = club(server.base_url)

    client.fetch(source)
    with pytest.raises(FeedFetchError):
        client.fetch(source)
    client.fetch(source)

    ports = {s.client_port for s in server.requests_to(FEED)}
    assert len(ports) == 1


# --- URL rules and TLS ---


class RecordingAdapter(requests.adapters.HTTPAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def send(self, request, *args, **kwargs):
        self.sent.append(request.url)
        raise AssertionError("no request may be sent")


@pytest.mark.parametrize(
    "base_url",
    ["http://calls.example-club.org", "http://10.0.0.5:8080", "ftp://127.0.0.1", "https://user:pw@club.example"],
)
def test_insecure_urls_are_refused_before_any_connection(base_url):
    adapter = RecordingAdapter()
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    client = ClubFeedClient(SECRETS, FAST, session=session)

    error = fetch_error(client, club(base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

    assert (error.code, error.attempts) == ("insecure_url", 0)
    assert adapter.sent == []
    assert "pw" not in error.message


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    pytest.importorskip("cryptography")
    return self_signed_tls(tmp_path_factory.mktemp("tls"))


def trusting(ca_file) -> requests.Session:
    session = requests.Session()
    session.verify = str(ca_file)
    session.trust_env = False  # a CA bundle from the environment would override the test CA
    return session


def test_https_fetch_with_a_trusted_certificate(tls):
    context, ca_file = tls
    with serve(tls=context) as server:
        server.route(FEED, respond(200, gzipped(b"[42]"), headers={"Content-Encoding": "gzip"}))
        client = ClubFeedClient(SECRETS, FAST, session=trusting(ca_file))

        result = client.fetch(club(server.base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

        assert result.body == b"[42]"
        assert result.url.startswith("https://")


def test_https_drip_is_stopped_by_the_deadline(tls):
    context, ca_file = tls
    with serve(tls=context) as server:
        server.route(FEED, drip(total=10_000, every=0.02))
        client = ClubFeedClient(SECRETS, ClientLimits(read_timeout=0.5, deadline=1.0), session=trusting(ca_file))

        started = time.monotonic()
        error = fetch_error(client, club(server.base_url))

        assert error.code == "deadline"
        assert time.monotonic() - started < 1.5


def test_https_to_http_redirect_is_refused(tls):
    context, ca_file = tls
    with serve(tls=context) as secure, serve() as plain:
        plain.route(FEED, respond())
        secure.route(FEED, redirect(f"http://127.0.0.1:{plain.port}{FEED}"))
        client = ClubFeedClient(SECRETS, FAST, session=trusting(ca_file))

        error = fetch_error(client, club(secure.base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

        assert error.code == "redirect_refused"
        assert plain.seen == []


def test_untrusted_certificate_fails_without_retrying(tls):
    context, _ = tls
    with serve(tls=context) as server:
        server.route(FEED, respond())
        session = requests.Session()
        session.trust_env = False

        error = fetch_error(ClubFeedClient(SECRETS, FAST, session=session), club(server.base_url))

        assert (error.code, error.attempts) == ("connection", 1)
        assert "TLS" in error.message


# --- mtls: a client certificate on the handshake ---


@dataclass(frozen=True)
class MtlsPki:
    server: ssl.SSLContext  # demands a client certificate signed by the test CA
    ca_file: Path
    client_certificate: str  # PEM
    client_key: str  # PEM
    client_subject: str


def _issue(ca_key, ca_name, subject: str, *, server: bool):
    """A leaf certificate and key for `subject`, signed by the CA (for 127.0.0.1 when `server`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] if server else [x509.DNSName(subject)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def mtls(tmp_path_factory) -> MtlsPki:
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("mtls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cappi-test-ca")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def pem(cert, key) -> tuple[str, str]:
        return (
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
        )

    ca_file = directory / "ca.pem"
    ca_file.write_text(pem(ca, ca_key)[0])
    server_cert, server_key = pem(*_issue(ca_key, ca_name, "cappi-test-server", server=True))
    (directory / "server-cert.pem").write_text(server_cert)
    (directory / "server-key.pem").write_text(server_key)
    client_certificate, client_key = pem(*_issue(ca_key, ca_name, "cappi-test-client", server=False))

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server-cert.pem", directory / "server-key.pem")
    context.load_verify_locations(ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return MtlsPki(context, ca_file, client_certificate, client_key, "cappi-test-client")


def mtls_secrets(pki: MtlsPki, **extra: str) -> StaticSecrets:
    cert = json.dumps({"certificate": pki.client_certificate, "key": pki.client_key})
    return StaticSecrets({"clubs/cert": cert, "clubs/bearer": BEARER_SECRET} | extra)


class CertificateRecorder(requests.adapters.HTTPAdapter):
    """A real adapter that remembers the `cert` each request was sent with."""

    def __init__(self) -> None:
        super().__init__()
        self.certs: list[object] = []

    def send(self, request, *args, **kwargs):
        self.certs.append(kwargs.get("cert"))
        return super().send(request, *args, **kwargs)


def recording(ca_file) -> tuple[requests.Session, CertificateRecorder]:
    session = trusting(ca_file)
    adapter = CertificateRecorder()
    session.mount("https://", adapter)
    return session, adapter


def record_peer(subjects: list[str]) -> Responder:
    """A feed that notes the common name of the client certificate the TLS handshake presented."""

    def run(h) -> None:
        peer = h.connection.getpeercert() or {}
        subjects.extend(value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName")
        respond(200, b"[7]")(h)

    return run


MTLS = ClubAuth(type="mtls", secret="clubs/cert")


def test_mtls_presents_the_client_certificate(mtls):
    subjects: list[str] = []
    with serve(tls=mtls.server) as server:
        server.route(FEED, record_peer(subjects))
        session, _ = recording(mtls.ca_file)
        client = ClubFeedClient(mtls_secrets(mtls), FAST, session=session)

        result = client.fetch(club(server.base_url, MTLS))

        assert result.body == b"[7]"
        assert subjects == [mtls.client_subject]
        (seen,) = server.requests_to(FEED)
        assert "authorization" not in seen.headers


@pytest.mark.parametrize(
    ("header_auth", "header", "expected"),
    [
        (ClubAuth(type="bearer", secret="clubs/bearer"), "authorization", f"Bearer {BEARER_SECRET}"),
        (ClubAuth(type="api_key", secret="clubs/api-key", header="X-Api-Key"), "x-api-key", API_KEY_SECRET),
        (
            ClubAuth(type="basic", secret="clubs/basic"),
            "authorization",
            "Basic " + base64.b64encode(f"alice:{BASIC_PASSWORD}".encode()).decode(),
        ),
    ],
    ids=["bearer", "api-key", "basic"],
)
def test_mtls_with_a_header_credential_sends_both(mtls, header_auth, header, expected):
    subjects: list[str] = []
    with serve(tls=mtls.server) as server:
        server.route(FEED, record_peer(subjects))
        secrets = mtls_secrets(mtls, **{"clubs/api-key": API_KEY_SECRET, "clubs/basic": f"alice:{BASIC_PASSWORD}"})
        client = ClubFeedClient(secrets, FAST, session=trusting(mtls.ca_file))

        client.fetch(club(server.base_url, ClubAuth(type="mtls", secret="clubs/cert", header_auth=header_auth)))

        assert subjects == [mtls.client_subject]
        (seen,) = server.requests_to(FEED)
        assert seen.headers[header] == expected


def test_without_a_client_certificate_the_handshake_is_refused(mtls):
    with serve(tls=mtls.server) as server:
        server.route(FEED, respond())
        client = ClubFeedClient(mtls_secrets(mtls), FAST, session=trusting(mtls.ca_file))

        error = fetch_error(client, club(server.base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

        assert error.code == "connection"
        assert server.seen == []


@pytest.mark.parametrize(
    "value",
    [
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",  # PEM, not JSON
        '{"certificate": "CERT"}',
        '{"certificate": 1, "key": 2}',
        "[]",
        "swap",  # the key where the certificate belongs and the other way round
        "encrypted",
        "mismatch",  # a well-formed certificate with another key
    ],
)
def test_a_malformed_certificate_secret_is_a_clear_error_without_pem(mtls, value):
    other_key = _issue_key_pem()
    values = {
        "swap": json.dumps({"certificate": mtls.client_key, "key": mtls.client_certificate}),
        "encrypted": json.dumps(
            {"certificate": mtls.client_certificate, "key": mtls.client_key.replace("PRIVATE", "ENCRYPTED PRIVATE")}
        ),
        "mismatch": json.dumps({"certificate": mtls.client_certificate, "key": other_key}),
    }
    with serve(tls=mtls.server) as server:
        client = ClubFeedClient(StaticSecrets({"clubs/cert": values.get(value, value)}), FAST)

        error = fetch_error(client, club(server.base_url, MTLS))

        assert error.code == "secret_missing"
        assert "'clubs/cert'" in error.message
        assert "certificate" in error.message
        assert error.attempts == 0
        assert server.seen == []
        for text in (str(error), repr(error), "".join(traceback.format_exception(error))):
            assert "BEGIN" not in text
            assert "MII" not in text
            for line in (mtls.client_key + mtls.client_certificate + other_key).splitlines():
                if len(line) > 16:
                    assert line not in text


def _issue_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class Rotatable:
    """A secret source whose values a test may change between fetches, as ops do when a club rotates."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str) -> str:
        return self.values[name]


def test_mtls_files_are_private_and_reused(mtls):
    with serve(tls=mtls.server) as server:
        server.route(FEED, respond())
        session, adapter = recording(mtls.ca_file)
        client = ClubFeedClient(mtls_secrets(mtls), FAST, session=session)

        client.fetch(club(server.base_url, MTLS))
        client.fetch(club(server.base_url, MTLS))

        first, again = adapter.certs
        assert first == again  # written once, reused by later fetches
        cert_file, key_file = (Path(p) for p in first)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(cert_file.stat().st_mode) == 0o600
        assert key_file.parent == cert_file.parent
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
        assert key_file.read_text() == mtls.client_key


def test_mtls_files_are_rewritten_when_the_secret_changes(mtls):
    value = {"certificate": mtls.client_certificate, "key": mtls.client_key}
    secrets = Rotatable({"clubs/cert": json.dumps(value)})
    with serve(tls=mtls.server) as server:
        server.route(FEED, respond())
        session, adapter = recording(mtls.ca_file)
        client = ClubFeedClient(secrets, FAST, session=session)
        client.fetch(club(server.base_url, MTLS))

        # Only whitespace differs: the same certificate, nothing rewritten.
        secrets.values["clubs/cert"] = json.dumps(value | {"key": mtls.client_key + "\n\n"})
        client.fetch(club(server.base_url, MTLS))
        # A key that does not match the certificate: refused before any request, the old files untouched.
        secrets.values["clubs/cert"] = json.dumps(value | {"key": _issue_key_pem()})
        assert fetch_error(client, club(server.base_url, MTLS)).code == "secret_missing"
        # The certificate followed by its CA: a new value, so new files, and the old ones are gone.
        chain = mtls.client_certificate + mtls.ca_file.read_text()
        secrets.values["clubs/cert"] = json.dumps(value | {"certificate": chain})
        client.fetch(club(server.base_url, MTLS))

        old, same, new = adapter.certs
        assert same == old
        assert new != old
        assert not Path(old[0]).exists() and not Path(old[1]).exists()
        assert Path(new[0]).read_text().strip() == chain.strip()
        assert stat.S_IMODE(Path(new[1]).stat().st_mode) == 0o600
        assert len(server.requests_to(FEED)) == 3


def test_no_pem_in_logs_of_an_mtls_fetch(mtls, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with serve(tls=mtls.server) as server:
        server.route(FEED, echo_headers(500))
        auth = ClubAuth(type="mtls", secret="clubs/cert", header_auth=ClubAuth(type="bearer", secret="clubs/bearer"))
        client = ClubFeedClient(mtls_secrets(mtls), FAST, session=trusting(mtls.ca_file))

        error = fetch_error(client, club(server.base_url, auth))

        text = caplog.text + str(error) + " ".join(str(r.__dict__) for r in caplog.records)
        assert BEARER_SECRET not in text
        assert "BEGIN" not in text
        for line in (mtls.client_key + mtls.client_certificate).splitlines():
            if len(line) > 16:
                assert line not in text


# --- secrets never leak ---

LEAKABLE = [
    BEARER_SECRET,
    API_KEY_SECRET,
    BASIC_PASSWORD,
    CLIENT_SECRET,
    "tok-1",
    "tok-2",
    base64.b64encode(f"alice:{BASIC_PASSWORD}".encode()).decode(),
]


def assert_nothing_leaks(text: str) -> None:
    for value in LEAKABLE:
        assert value not in text


def echo_form(h) -> None:
    """A token endpoint that quotes the form it got, client_secret included."""
    respond(400, b"invalid_client; request was: " + h.server.seen[-1].body, content_type="text/plain")(h)


@pytest.mark.parametrize(
    ("auth_kind", "feed", "token"),
    [
        ("bearer", echo_headers(401), None),
        ("bearer", echo_headers(500), None),
        ("basic", echo_headers(403), None),
        ("api_key", echo_headers(404), None),
        ("bearer", stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), None),
        ("bearer", respond(), None),
        ("oauth", echo_headers(401), TokenIssuer()),
        ("oauth", respond(), echo_form),
    ],
    ids=["bearer-401", "bearer-500", "basic-403", "api-key-404", "timeout", "success", "oauth-401", "token-400"],
)
def test_no_secret_in_errors_or_logs(server, caplog, auth_kind, feed, token):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    auth = {
        "bearer": ClubAuth(type="bearer", secret="clubs/bearer"),
        "basic": ClubAuth(type="basic", secret="clubs/basic"),
        "api_key": ClubAuth(type="api_key", secret="clubs/api-key", header="X-Api-Key"),
        "oauth": oauth(server.base_url),
    }[auth_kind]
    server.route(FEED, feed)
    if token is not None:
        server.route(TOKEN, token, method="POST")
    client = ClubFeedClient(SECRETS, ClientLimits(read_timeout=0.3, deadline=2.0, max_attempts=2, backoff_base=0.01))

    try:
        result = client.fetch(club(server.base_url, auth))
    except FeedFetchError as error:
        assert_nothing_leaks(str(error))
        assert_nothing_leaks(repr(error))
        assert_nothing_leaks("".join(traceback.format_exception(error)))
        if auth_kind != "api_key" and error.status in (401, 403, 500):
            assert "[redacted]" in error.message  # the echoed credential was there and was removed
    else:
        assert_nothing_leaks(repr(result))
    assert caplog.records, "the client logs every attempt"
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert_nothing_leaks(caplog.text)
    assert_nothing_leaks(" ".join(str(r.__dict__) for r in caplog.records))


def secret_path_redirect(secret: str) -> Responder:
    """A club that moves its feed to a same-origin path holding the caller's own bearer secret (a careless
    "personalised" URL): the client follows it, since the origin is the same, and must not log it."""
    return redirect(f"/feeds/{secret}/calls", status=302)


def test_a_redirect_to_a_path_holding_the_secret_is_never_logged_or_reported(server, client, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    server.route(FEED, secret_path_redirect(BEARER_SECRET))
    server.route(f"/feeds/{BEARER_SECRET}/calls", respond(200, b"[1]"))

    result = client.fetch(club(server.base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

    assert result.body == b"[1]"
    assert result.url == server.url("/feeds/[redacted]/calls")  # the secret's place shown
    success = [r for r in caplog.records if r.name == "cappi.club_client" and "->" in r.getMessage()]
    assert success, "the client logs its successful GET"
    assert "/feeds/[redacted]/calls" in success[-1].getMessage()
    assert success[-1].url == result.url  # the structured field, too
    assert_nothing_leaks(caplog.text)
    assert_nothing_leaks(" ".join(str(r.__dict__) for r in caplog.records))  # urllib3's request lines included
    assert_nothing_leaks(repr(result))


def test_a_failure_after_a_redirect_to_the_secret_path_is_redacted(server, client, caplog):
    caplog.set_level(logging.DEBUG)
    server.route(FEED, secret_path_redirect(BEARER_SECRET))
    server.route(f"/feeds/{BEARER_SECRET}/calls", respond(404, f"no feed at /feeds/{BEARER_SECRET}".encode()))

    error = fetch_error(client, club(server.base_url, ClubAuth(type="bearer", secret="clubs/bearer")))

    assert error.code == "http_status"
    assert "/feeds/[redacted]/calls" in error.message
    assert_nothing_leaks(str(error) + repr(error) + caplog.text + " ".join(str(r.__dict__) for r in caplog.records))


def test_the_fetch_is_stamped_with_its_first_request_not_with_the_answer(server):
    """Retries and redirects come later and slower; the list is as of when the club was first asked."""
    wall = Clock(1_700_000_000.0)
    first = [True]

    def slow_503_then_redirect(h) -> None:
        wall.advance(4.0)  # the club takes its time
        if first[0]:
            first[0] = False
            respond(503, b"busy", headers={"Retry-After": "0"})(h)
        else:
            redirect("/v2")(h)

    def feed_v2(h) -> None:
        wall.advance(4.0)
        respond(200, b"[1]")(h)

    server.route(FEED, slow_503_then_redirect)
    server.route("/v2", feed_v2)
    result = ClubFeedClient(SECRETS, FAST, wall_clock=wall).fetch(club(server.base_url))

    assert result.attempts == 2
    assert result.sent_at_ms == 1_700_000_000_000
    assert wall.now_ms == 1_700_000_012_000


def test_a_failed_fetch_reports_when_it_first_asked_and_none_when_it_never_did(server):
    wall = Clock(1_700_000_000.0)
    server.route(FEED, respond(500, b"down"))
    error = fetch_error(ClubFeedClient(SECRETS, FAST, wall_clock=wall), club(server.base_url))
    assert error.sent_at_ms == 1_700_000_000_000
    never = fetch_error(
        ClubFeedClient(StaticSecrets({}), FAST), club(server.base_url, ClubAuth(type="bearer", secret="x"))
    )
    assert (never.code, never.sent_at_ms) == ("secret_missing", None)


def test_fetch_result_repr_leaves_out_the_body():
    result = FetchResult(
        body=b"x" * 1000, status=200, attempts=1, elapsed_s=0.1, url="https://a", content_type=None, bytes_on_wire=9
    )

    assert "xxx" not in repr(result)


def test_fetch_error_codes_are_closed():
    with pytest.raises(ValueError):
        FeedFetchError("oops", "message")


@pytest.mark.parametrize("kwargs", [{"deadline": 0}, {"max_attempts": 0}, {"max_body_bytes": 0}, {"backoff_base": -1}])
def test_limits_reject_nonsense(kwargs):
    with pytest.raises(ValueError):
        ClientLimits(**kwargs)


# --- secret sources ---


def test_static_secrets():
    secrets = StaticSecrets({"a": "value-a"})

    assert secrets.get("a") == "value-a"
    with pytest.raises(SecretNotFound) as caught:
        secrets.get("cappi/stage/clubs/missing")
    assert isinstance(caught.value, KeyError)
    assert "cappi/stage/clubs/missing" in str(caught.value)
    assert "value-a" not in repr(secrets)


@pytest.fixture
def ssm():
    moto = pytest.importorskip("moto")
    import boto3

    with moto.mock_aws():  # fake credentials come from tests/conftest.py
        yield boto3.client("ssm", region_name="us-east-1")


def _store(ssm, name: str, value: str) -> None:
    """As `cappi secrets set` stores a credential: its SecureString parameter, overwritten on rotation."""
    ssm.put_parameter(Name=parameter_name(name), Value=value, Type="SecureString", Overwrite=True)


def test_parameter_store_secrets_read_decrypted_and_cached(ssm):
    _store(ssm, "cappi/stage/clubs/aaa", "first")
    secrets = ParameterStoreSecrets(max_age=300, client=ssm)

    assert secrets.get("cappi/stage/clubs/aaa") == "first"  # decrypted (moto keeps it as kms:<key>:first)
    _store(ssm, "cappi/stage/clubs/aaa", "second")
    assert secrets.get("cappi/stage/clubs/aaa") == "first"  # served from the cache within max_age
    assert ParameterStoreSecrets(max_age=0, client=ssm).get("cappi/stage/clubs/aaa") == "second"  # rotated
    assert "first" not in repr(secrets)


def test_parameter_store_secrets_missing_parameter_is_named(ssm):
    secrets = ParameterStoreSecrets(client=ssm)

    with pytest.raises(SecretNotFound) as caught:
        secrets.get("cappi/stage/clubs/nope")

    assert "cappi/stage/clubs/nope" in str(caught.value)
    assert "SSM parameter /cappi/stage/clubs/nope" in str(caught.value)


def test_client_with_parameter_store(server, ssm):
    _store(ssm, "cappi/stage/clubs/sm", BEARER_SECRET)
    server.route(FEED, respond())
    client = ClubFeedClient(ParameterStoreSecrets(client=ssm), FAST)

    client.fetch(club(server.base_url, ClubAuth(type="bearer", secret="cappi/stage/clubs/sm")))
    error = fetch_error(client, club(server.base_url, ClubAuth(type="bearer", secret="cappi/stage/clubs/gone")))

    assert server.requests_to(FEED)[0].headers["authorization"] == f"Bearer {BEARER_SECRET}"
    assert error.code == "secret_missing"
    assert "/cappi/stage/clubs/gone" in error.message


def test_gzip_helper_matches_stdlib():
    assert gzip.decompress(gzip_bomb(3 * MB)) == bytes(3 * MB)
