"""Local mode's front door over real HTTP: every method gets API Gateway's answer (the route's, or a JSON 404), and
http.server's own refusals are JSON too, never an HTML page or a 501, and never an echo of the request."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus

import pytest
from support.query_support import query_api

from cappi.contracts import api
from local.gateway import Gateway

ROUTE = api.path_for(212, "AB12")
TOKEN_PATH = "/oauth/token"  # an issuer endpoint: an extra route, POST only
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "PROPFIND", "FOO"]
SECRET = "Bearer secret-token-do-not-echo"


def _token(_body: bytes, _headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"access_token":"t"}'


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with query_api() as running:
        gateway = Gateway(running.api, {("POST", TOKEN_PATH): _token}, "127.0.0.1", 0)
        gateway.start()
        try:
            yield gateway.port
        finally:
            gateway.stop()


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes


def request(port: int, method: str, target: str, headers: Mapping[str, str] | None = None) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, target, headers=dict(headers or {}))
        response = connection.getresponse()
        return Answer(response.status, response.getheader("Content-Type"), response.read())
    finally:
        connection.close()


def raw(port: int, data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send them) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status_line, headers, body


def expected(method: str, target: str) -> int:
    if (method, target) == ("GET", ROUTE):
        return 200
    if (method, target) == ("POST", TOKEN_PATH):
        return 200
    return 404


@pytest.mark.parametrize("target", [ROUTE, TOKEN_PATH, "/nope", "/"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_gets_api_gateways_json_answer(port: int, method: str, target: str) -> None:
    response = request(port, method, target, {"Authorization": SECRET, "X-Probe": "probe-value"})
    status = expected(method, target)
    assert response.status == status, (method, target, response)
    assert response.content_type == "application/json"
    body = response.body
    if method == "HEAD":
        assert body == b""
        return
    assert b"<" not in body
    if status == 404:
        assert body == b'{"message":"Not Found"}'  # API Gateway's bytes exactly
    else:
        assert isinstance(json.loads(body), list | dict)


def test_trace_echoes_nothing_of_the_request(port: int) -> None:
    response = request(port, "TRACE", ROUTE, {"Authorization": SECRET, "Cookie": "session=abc"})
    body = response.body
    assert response.status == 404
    assert json.loads(body) == {"message": "Not Found"}
    assert b"secret-token" not in body
    assert b"session=abc" not in body
    assert response.content_type == "application/json"  # not TRACE's message/http echo


def test_connect_in_authority_form_is_a_json_404(port: int) -> None:
    status_line, headers, body = raw(
        port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n"
    )
    assert status_line.startswith("HTTP/1.1 404 ")
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "Not Found"}


LONG = 65_537  # one byte over http.server's line limit, sent without its line end so the server reads it all
MALFORMED = [
    ("one word", b"GARBAGE\r\n\r\n", 400),
    ("four words", b"GET / HTTP/1.1 extra\r\n\r\n", 400),
    ("not HTTP", b"GET / HTTX/1.1\r\n\r\n", 400),
    ("version junk", b"GET / HTTP/1.x\r\n\r\n", 400),
    ("HTTP/0.9", b"GET /\r\n\r\n", 400),
    ("HTTP/2.0 in HTTP/1 syntax", b"GET / HTTP/2.0\r\n\r\n", 505),
    ("request line too long", b"GET /" + b"a" * (LONG - 5), 414),
    ("header line too long", b"GET / HTTP/1.1\r\nX-Junk: " + b"a" * (LONG - 8), 431),
    ("too many headers", b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: y\r\n" % i for i in range(101)) + b"\r\n", 431),
]


@pytest.mark.parametrize(("data", "status"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_requests_get_a_json_error_not_an_html_page(port: int, data: bytes, status: int) -> None:
    phrase = HTTPStatus(status).phrase
    status_line, headers, body = raw(port, data)
    assert status_line == f"HTTP/1.1 {status} {phrase}"  # the reason phrase, not the request line quoted back
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body))
    assert json.loads(body) == {"message": phrase}


def test_the_gateway_still_serves_after_refusing(port: int) -> None:
    raw(port, b"GARBAGE\r\n\r\n")
    response = request(port, "GET", ROUTE)
    assert response.status == 200
    assert json.loads(response.body) == ["8655R", "8679", "9999"]
