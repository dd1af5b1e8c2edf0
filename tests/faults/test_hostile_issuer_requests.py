"""Hostile bodies against local mode's token issuer (`POST /oauth/token`): whatever it cannot read is a 400
`invalid_request` in Auth0's compact JSON shape, never a 500, and a 500 (a bug of ours, or of a handler behind
the front door) is compact JSON too, as API Gateway writes it."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.clients import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, demo_clients
from local.gateway import Http11Server, Request
from local.http_api import HttpResponse
from local.issuer import TokenIssuer, routes

ISSUER = TokenIssuer("http://127.0.0.1:3000/", "http://127.0.0.1:3000", demo_clients())
TOKEN = routes(ISSUER)[("POST", "/oauth/token")]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
HUGE = 70_000  # past any token request (the issuer reads at most 64 KiB)


def post(body: bytes, content_type: str | None = JSON, authorization: str | None = None) -> tuple[int, Any, bytes]:
    headers = {k: v for k, v in (("content-type", content_type), ("authorization", authorization)) if v is not None}
    status, response_headers, payload = TOKEN(body, headers)
    assert response_headers["Content-Type"].startswith("application/json")
    document = json.loads(payload)
    assert payload == json.dumps(document, separators=(",", ":")).encode(), "not compact JSON"
    return status, document, payload


def request(**fields: Any) -> dict[str, Any]:
    return {
        "grant_type": "client_credentials",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        **fields,
    }


def deep(depth: int) -> bytes:
    return b'{"grant_type":' + b"[" * depth + b"]" * depth + b"}"


HOSTILE: list[tuple[str, bytes, str | None]] = [
    ("surrogate-secret", json.dumps(request(client_secret="\ud800")).encode(), JSON),
    ("surrogate-secret-form-type", json.dumps(request(client_secret="a\udfffb")).encode(), FORM),
    ("surrogate-secret-no-type", json.dumps(request(client_secret="\ud800")).encode(), None),
    ("surrogate-client-id", json.dumps(request(client_id="\udc00")).encode(), JSON),
    ("surrogate-audience", json.dumps(request(audience="\ud83d")).encode(), JSON),
    ("surrogate-scope", json.dumps(request(scope="read:callids \ud800")).encode(), JSON),
    ("surrogate-grant-type", json.dumps(request(grant_type="\ud800")).encode(), JSON),
    ("surrogate-key", json.dumps(request(**{"\ud800": "x"})).encode(), JSON),
    (
        "cesu-8-bytes",
        json.dumps(request(client_secret="\ud800"), ensure_ascii=False).encode("utf-8", "surrogatepass"),
        JSON,
    ),
    ("nested-50000", deep(50_000), JSON),
    ("nested-50000-form-type", deep(50_000), FORM),
    ("nested-50000-no-type", deep(50_000), None),
    ("nested-array-50000", b"[" * 50_000, JSON),
    ("not-json", b'{"grant_type":', JSON),
    ("json-array", b"[]", JSON),
    ("number-secret", json.dumps(request(client_secret=42)).encode(), JSON),
    ("object-secret", json.dumps(request(client_secret={})).encode(), JSON),
    ("bad-utf8-form", b"grant_type=client_credentials&client_secret=\xff\xfe", FORM),
    ("bad-form", b"=&=&&", FORM),
    ("huge-json", json.dumps(request(client_secret="x" * HUGE)).encode(), JSON),
    ("huge-form", b"grant_type=client_credentials&scope=" + b"a" * HUGE, FORM),
    ("wrong-type", b"grant_type=client_credentials", "text/plain"),
]


@pytest.mark.parametrize(("body", "content_type"), [(b, t) for _n, b, t in HOSTILE], ids=[n for n, *_ in HOSTILE])
def test_a_body_the_issuer_cannot_read_is_a_compact_400(body: bytes, content_type: str | None) -> None:
    status, document, _ = post(body, content_type)
    assert (status, document["error"]) == (400, "invalid_request"), document
    assert set(document) == {"error", "error_description"}


def test_the_document_request_still_gets_a_token() -> None:
    status, document, _ = post(json.dumps(request()).encode())
    assert status == 200
    assert document["token_type"] == "Bearer"


TEXT = st.lists(st.one_of(st.characters(), st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]))).map("".join)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(["grant_type", "client_id", "client_secret", "audience", "scope"]) | TEXT
OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "grant_type": st.just("client_credentials") | VALUES,
        "client_id": st.just(DEMO_CLIENT_ID) | VALUES,
    },
).flatmap(lambda base: st.dictionaries(KEYS, VALUES, max_size=5).map(lambda more: {**more, **base}))


def encoded(document: dict[str, Any], ascii_only: bool) -> bytes:
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


BODIES = st.one_of(
    st.builds(encoded, OBJECTS, st.booleans()),
    st.binary(max_size=200),
    st.lists(st.tuples(TEXT, TEXT), max_size=5).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    ),
    st.integers(1, 5_000).map(deep),
)
CONTENT_TYPES = st.sampled_from([JSON, FORM, None, "application/jwt+json", "text/plain", "application/json; x"])
AUTHORIZATIONS = st.none() | st.sampled_from(["Basic", "Basic !!", "Bearer x", "Basic OmE=", "Basic 7aCA"]) | TEXT


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, content_type=CONTENT_TYPES, authorization=AUTHORIZATIONS)
def test_no_hostile_body_is_a_500(body: bytes, content_type: str | None, authorization: str | None) -> None:
    status, document, _ = post(body, content_type, authorization)
    assert status in (400, 401), document
    assert set(document) == {"error", "error_description"}


def test_a_bug_of_the_issuers_is_a_compact_500(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ISSUER, "_issue", broken)
    status, document, _ = post(json.dumps(request()).encode())
    assert (status, document["error"]) == (500, "server_error")


def test_the_front_doors_500_is_compact_json() -> None:
    def failing(_request: Request) -> HttpResponse:
        raise RuntimeError("behind the door")

    server = Http11Server(failing, "127.0.0.1", 0)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    finally:
        server.stop()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ")
    assert body == b'{"message":"Internal Server Error"}'
