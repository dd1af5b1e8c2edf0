"""The local front door against requests no client library sends: smuggling attempts, broken framing, heads over
API Gateway's quotas, bad versions, every method, slow clients, pipelining. Bytes go over a raw socket; each case
checks the exact statuses in order, that an error is API Gateway's JSON `{"message": ...}`, that no second
response is smuggled in (a request for club B hidden in one for club A is never answered), and that the connection
is closed where it must be."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest

from local.gateway import Gateway
from local.http_api import HttpApi, Route

HEADER_TIMEOUT_S = 5.0  # the gateway's default: a head not finished by then is answered 408 and closed
SMUGGLED = b"GET /clubs/B HTTP/1.1\r\nHost: x\r\n\r\n"


def club(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Says which club was asked for, and the body it was handed (API Gateway passes a GET's body too)."""
    body = base64.b64decode(event.get("body", "")) if event.get("isBase64Encoded") else b""
    payload = {"club": event["pathParameters"]["club"], "body": body.decode("latin-1")}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(payload)}


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    api = HttpApi([Route("GET", "/clubs/{club}", club), Route("POST", "/clubs/{club}", club)])
    gateway = Gateway(api, {}, "127.0.0.1", 0)
    gateway.start()
    try:
        yield gateway.port
    finally:
        gateway.stop()


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Exchange:
    responses: list[Response]
    closed: bool  # the server closed the connection (rather than our read timing out)
    seconds: float


def exchange(port: int, data: bytes, *, wait: float = HEADER_TIMEOUT_S + 3, head: bool = False) -> Exchange:
    """Send `data`, then read until the server closes or `wait` passes; split what came back into responses."""
    started = time.monotonic()
    received = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        with contextlib.suppress(OSError):  # refused before we finished sending: the answer is still readable
            sock.sendall(data)
        deadline = started + wait
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    return Exchange(parse(received, head=head), closed, time.monotonic() - started)


def parse(data: bytes, *, head: bool = False) -> list[Response]:
    responses = []
    while data:
        top, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"an incomplete response: {data!r}"
        status_line, *lines = top.decode("latin-1").split("\r\n")
        version, status, reason = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
        length = 0 if head or int(status) < 200 else int(headers.get("content-length", "0"))
        responses.append(Response(int(status), reason, headers, rest[:length]))
        data = rest[length:]
    return responses


def assert_refused(result: Exchange, status: int) -> None:
    """One response, API Gateway's JSON error with the status's reason phrase, and the connection closed."""
    assert [r.status for r in result.responses] == [status], result
    (response,) = result.responses
    phrase = HTTPStatus(status).phrase
    assert response.reason == phrase
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    assert response.json() == {"message": phrase}
    assert result.closed, "the connection must be closed after a framing error"


def get(target: str = "/clubs/A", extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target.encode() + b" " + version + b"\r\nHost: x\r\n" + extra + b"\r\n"


def post(headers: bytes, body: bytes) -> bytes:
    return b"POST /clubs/A HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body


# (id, bytes sent, status) for requests refused outright; each is followed by a smuggled request for club B.
REFUSED = [
    ("CL then TE", post(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400),
    ("TE then CL", post(b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", b"0\r\n\r\n"), 400),
    ("CL and TE, TE obscured by case", post(b"Content-Length: 4\r\ntransfer-ENCODING: CHUNKED\r\n", b"0\r\n\r\n"), 400),
    ("two Content-Lengths, different", post(b"Content-Length: 0\r\nContent-Length: 5\r\n", b"hello"), 400),
    ("two Content-Lengths, equal", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), 400),
    ("Content-Length list", post(b"Content-Length: 5, 5\r\n", b"hello"), 400),
    ("Content-Length signed", post(b"Content-Length: +5\r\n", b"hello"), 400),
    ("Content-Length hex", post(b"Content-Length: 0x5\r\n", b"hello"), 400),
    ("TE chunked, identity", post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"), 400),
    ("TE identity", post(b"Transfer-Encoding: identity\r\n", b"hello"), 400),
    ("TE chunked twice", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400),
    ("TE xchunked", post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 400),
    ("TE name with space", post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"), 400),
    ("TE gzip, chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), 501),
    ("obs-fold", get(extra=b"X-A: a\r\n b\r\n"), 400),
    ("obs-fold hiding TE", post(b"X-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"), 400),
    ("bare LF line ends", b"GET /clubs/A HTTP/1.1\nHost: x\n\n", 400),
    ("bare LF in one header", b"GET /clubs/A HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
    ("bare CR in a header", get(extra=b"X-A: a\rb\r\n"), 400),
    ("NUL in a header value", get(extra=b"X-A: a\x00b\r\n"), 400),
    ("NUL in a header name", get(extra=b"X-\x00A: b\r\n"), 400),
    ("no Host", b"GET /clubs/A HTTP/1.1\r\n\r\n", 400),
    ("chunk size not hex", post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size negative", post(b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size 0x", post(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk longer than said", post(b"Transfer-Encoding: chunked\r\n", b"3\r\nhello\r\n0\r\n\r\n"), 400),
    ("body over 10 MB", post(b"Content-Length: 10485761\r\n", b"x"), 413),
    ("request line over 10 KiB", get("/clubs/A?" + "a" * 10_240), 414),
    ("path over 10 KiB", get("/clubs/" + "a" * 10_240), 414),
    ("headers over 10 KiB", get(extra=b"X-A: " + b"a" * 5_200 + b"\r\nX-B: " + b"b" * 5_200 + b"\r\n"), 431),
    ("one header over 10 KiB", get(extra=b"X-A: " + b"a" * 10_300 + b"\r\n"), 431),
    ("101 header fields", get(extra=b"".join(b"X-H%d: y\r\n" % i for i in range(100))), 431),
    ("garbage request line", b"GARBAGE\r\n\r\n", 400),
    ("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400),
    ("space before the method", b" " + get(), 400),
    ("lower-case version", get(version=b"http/1.1"), 400),
    ("HTTP/0.9", b"GET /clubs/A\r\n\r\n", 400),
    ("HTTP/1.10", get(version=b"HTTP/1.10"), 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("HTTP/2.0", get(version=b"HTTP/2.0"), 505),
    ("HTTP/9.9", get(version=b"HTTP/9.9"), 505),
]


@pytest.mark.parametrize(("data", "status"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_and_closed_with_nothing_smuggled(port: int, data: bytes, status: int) -> None:
    result = exchange(port, data + SMUGGLED)
    assert_refused(result, status)
    assert b'"B"' not in b"".join(r.body for r in result.responses)


def test_a_chunked_body_over_10_mb_is_refused_when_it_gets_there(port: int) -> None:
    size = 10 * 1024 * 1024 + 1
    data = post(b"Transfer-Encoding: chunked\r\n", b"%x\r\n" % size + b"x" * size + b"\r\n0\r\n\r\n")
    assert_refused(exchange(port, data + SMUGGLED), 413)


def test_a_chunked_get_is_read_whole_and_handed_to_the_function(port: int) -> None:
    data = b"GET /clubs/A HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n"
    result = exchange(port, data + get("/clubs/B", b"Connection: close\r\n"))
    assert [r.status for r in result.responses] == [200, 200]  # no stray 400 from the body read as a request
    assert [r.json() for r in result.responses] == [{"club": "A", "body": "hello"}, {"club": "B", "body": ""}]
    assert result.closed


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    data = (
        get("/clubs/A")
        + post(b"Content-Length: 2\r\n", b"hi")
        + get("/nope")
        + get("/clubs/C", b"Connection: close\r\n")
    )
    result = exchange(port, data)
    assert [r.status for r in result.responses] == [200, 200, 404, 200]
    assert [r.json() for r in result.responses] == [
        {"club": "A", "body": ""},
        {"club": "A", "body": "hi"},
        {"message": "Not Found"},
        {"club": "C", "body": ""},
    ]
    assert result.closed


def test_a_refusal_in_a_pipeline_ends_it(port: int) -> None:
    result = exchange(port, get("/clubs/A") + b"GARBAGE\r\n\r\n" + SMUGGLED)
    assert [r.status for r in result.responses] == [200, 400]
    assert result.closed


def test_http_1_2_is_served_as_http_1_1(port: int) -> None:
    result = exchange(port, get(version=b"HTTP/1.2", extra=b"Connection: close\r\n"))
    assert [r.status for r in result.responses] == [200]


def test_http_1_0_is_answered_and_closed(port: int) -> None:
    result = exchange(port, b"GET /clubs/A HTTP/1.0\r\n\r\n")
    assert [r.json() for r in result.responses] == [{"club": "A", "body": ""}]
    assert result.closed


def test_heads_just_within_the_quotas_are_served(port: int) -> None:
    headers = b"".join(b"X-H%d: y\r\n" % i for i in range(99))  # with Host: 100 fields
    assert [r.status for r in exchange(port, get(extra=headers + b"Connection: close\r\n")).responses] == [431]
    assert [r.status for r in exchange(port, get(extra=headers[:-9] + b"Connection: close\r\n")).responses] == [200]
    line = get("/clubs/A?" + "a" * 10_000, b"Connection: close\r\n")
    assert [r.status for r in exchange(port, line).responses] == [200]


def test_expect_100_continue_gets_100_then_the_answer(port: int) -> None:
    data = post(b"Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n", b"hello")
    result = exchange(port, data)
    assert [r.status for r in result.responses] == [100, 200]
    assert result.responses[1].json() == {"club": "A", "body": "hello"}


METHODS = [
    ("GET", 200),
    ("POST", 200),
    ("HEAD", 404),  # API Gateway has no implicit HEAD for a GET route
    ("PUT", 404),
    ("DELETE", 404),
    ("PATCH", 404),
    ("OPTIONS", 404),
    ("TRACE", 404),
    ("PROPFIND", 404),
    ("FOO", 404),
    ("get", 404),  # methods are case-sensitive: an unknown method
]


@pytest.mark.parametrize(("method", "status"), METHODS)
def test_every_method(port: int, method: str, status: int) -> None:
    data = method.encode() + b" /clubs/A HTTP/1.1\r\nHost: x\r\nAuthorization: secret\r\nConnection: close\r\n\r\n"
    result = exchange(port, data, head=method == "HEAD")
    assert [r.status for r in result.responses] == [status]
    (response,) = result.responses
    assert response.headers["content-type"] == "application/json"
    if method == "HEAD":
        assert response.body == b""
    elif status == 404:
        assert response.json() == {"message": "Not Found"}
    assert b"secret" not in response.body  # TRACE echoes nothing
    assert result.closed


def test_connect_in_authority_form_is_a_404(port: int) -> None:
    result = exchange(port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n")
    assert [r.json() for r in result.responses] == [{"message": "Not Found"}]


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    result = exchange(port, b"")
    assert result.closed, "an idle new connection must be closed after the header timeout"
    assert result.responses == []
    assert result.seconds < HEADER_TIMEOUT_S + 1.5


def test_slowloris_gets_408_within_the_header_timeout(port: int) -> None:
    """Headers dripped a line every half second, never finished: the timeout runs from the first byte, whatever
    keeps arriving."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=HEADER_TIMEOUT_S + 5) as sock:
        stop = threading.Event()

        def drip() -> None:
            try:
                sock.sendall(b"GET /clubs/A HTTP/1.1\r\nHost: x\r\n")
                n = 0
                while not stop.wait(0.5):
                    sock.sendall(b"X-Drip-%d: y\r\n" % n)
                    n += 1
            except OSError:
                pass

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        finally:
            stop.set()
    elapsed = time.monotonic() - started
    assert elapsed < HEADER_TIMEOUT_S + 1.5, elapsed
    assert [r.status for r in parse(received)] == [408]
    assert parse(received)[0].json() == {"message": "Request Timeout"}


def test_the_gateway_still_serves_after_all_that(port: int) -> None:
    result = exchange(port, get(extra=b"Connection: close\r\n"))
    assert [r.json() for r in result.responses] == [{"club": "A", "body": ""}]
