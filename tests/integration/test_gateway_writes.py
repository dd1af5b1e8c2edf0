"""The front door writes each response in one send with TCP_NODELAY on, on every path (a route's answer, 304, HEAD,
a 404, an issuer endpoint, a refusal), so no response waits for a delayed ACK; and its direct writer produces the
very bytes h11 would, leaving to h11 every response that is not the plain case."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from typing import Any

import h11
import pytest

from local.gateway import Gateway
from local.gateway.connection import Connection
from local.gateway.fast_path import encode_response
from local.gateway.h11_path import h11_response
from local.gateway.messages import response_headers
from local.http_api import HttpApi, HttpResponse, Route

GET = b"GET /clubs/1 HTTP/1.1\r\nHost: x\r\n\r\n"


def received(request: bytes) -> h11.Connection:
    """An h11 server connection that has read `request` whole, as the gateway's is when it answers."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    while not isinstance(conn.next_event(), h11.EndOfMessage):
        pass
    return conn


PLAIN = [
    (GET, HttpResponse(200, [("Content-Type", "application/json"), ("ETag", '"v1"')], b'{"ids":[1]}')),
    (b"HEAD /clubs/1 HTTP/1.1\r\nHost: x\r\n\r\n", HttpResponse(200, [("content-type", "text/plain")], b"hello")),
    (GET, HttpResponse(304, [("ETag", '"v1"'), ("Cache-Control", "private, max-age=30")], b"")),
    (GET, HttpResponse(204, [], b"")),
    (GET, HttpResponse(404, [("Content-Type", "application/json"), ("apigw-requestid", "a-1")], b'{"message":"x"}')),
    (GET, HttpResponse(599, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Empty", "")], b"odd status")),
    (GET, HttpResponse(200, [("Content-Length", "3"), ("Connection", "keep-alive"), ("Date", "then")], b"abc")),
    (b"GET /clubs/1 HTTP/1.0\r\n\r\n", HttpResponse(200, [("Content-Type", "text/plain")], b"one-oh")),
    (b"GET /clubs/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", HttpResponse(200, [], b"bye")),
    (b"POST /clubs/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", HttpResponse(201, [], b"made")),
]


@pytest.mark.parametrize(("request_bytes", "response"), PLAIN)
def test_the_direct_writer_writes_what_h11_writes(request_bytes: bytes, response: HttpResponse) -> None:
    method = request_bytes.split(b" ", 1)[0].decode()
    headers = response_headers(response)
    conn = received(request_bytes)
    keep_alive = conn.their_state is h11.DONE
    direct = encode_response(method, response.status, headers, response.body, keep_alive=keep_alive)
    reference = h11_response(conn, method, response, headers)
    assert direct is not None
    assert direct == reference
    assert keep_alive == (conn.our_state is h11.DONE and conn.their_state is h11.DONE)


NOT_PLAIN = [
    ("GET", HttpResponse(200, [("Transfer-Encoding", "chunked")], b"x")),
    ("GET", HttpResponse(200, [("Host", "elsewhere")], b"x")),
    ("GET", HttpResponse(200, [("X-Bad", "a\r\nInjected: 1")], b"x")),
    ("GET", HttpResponse(200, [("X-Bad", " padded")], b"x")),
    ("GET", HttpResponse(200, [("Bad Name", "v")], b"x")),
    ("GET", HttpResponse(200, [("X-Text", "caf\u00e9")], b"x")),
    ("GET", HttpResponse(200, [("Content-Length", "9")], b"short")),
    ("GET", HttpResponse(200, [("Content-Length", " 5")], b"short")),
    ("GET", HttpResponse(199, [], b"")),
    ("GET", HttpResponse(1000, [], b"")),
    ("CONNECT", HttpResponse(200, [], b"tunnel")),
]


@pytest.mark.parametrize(("method", "response"), NOT_PLAIN)
def test_anything_but_the_plain_case_is_left_to_h11(method: str, response: HttpResponse) -> None:
    headers = response_headers(response)
    assert encode_response(method, response.status, headers, response.body, keep_alive=True) is None


# --- over a socket: one send per response, TCP_NODELAY on ---


def club(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    if event["headers"].get("if-none-match") == '"v1"':
        return {"statusCode": 304, "headers": {"ETag": '"v1"'}}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json", "ETag": '"v1"'}, "body": '{"ids":[]}'}


def token(_body: bytes, _headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"access_token":"t"}'


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, list[tuple[bytes, int]]]]:
    """A gateway whose every socket write is recorded with the socket's TCP_NODELAY setting at that moment."""
    recorded: list[tuple[bytes, int]] = []
    original = Connection._sendall

    def sendall(self: Any, data: bytes) -> bool:
        recorded.append((data, self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        return original(self, data)

    monkeypatch.setattr(Connection, "_sendall", sendall)
    api = HttpApi([Route("GET", "/clubs/{club}", club)])
    gateway = Gateway(api, {("POST", "/oauth/token"): token}, "127.0.0.1", 0)
    gateway.start()
    try:
        yield gateway.port, recorded
    finally:
        gateway.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` (one or more requests, the last with `Connection: close` or refused) and read until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


PATHS = {  # what is sent, and the status of the first response
    "a route's answer": b"GET /clubs/1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "304": b'GET /clubs/1 HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v1"\r\n\r\n',
    "HEAD": b"HEAD /clubs/1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "404": b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
    "issuer": b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    "HTTP/1.0": b"GET /clubs/1 HTTP/1.0\r\n\r\n",
    "refusal": b"GET /clubs/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
}


# HEAD: API Gateway has no HEAD for a GET route (a 404, without its body)
STATUS = {"a route's answer": 200, "304": 304, "HEAD": 404, "404": 404, "issuer": 200, "HTTP/1.0": 200, "refusal": 400}


@pytest.mark.parametrize("path", list(PATHS))
def test_every_response_is_one_send_with_nodelay(writes: tuple[int, list[tuple[bytes, int]]], path: str) -> None:
    port, recorded = writes
    closing = b"GET /clubs/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = PATHS[path] if path in ("HTTP/1.0", "refusal") else PATHS[path] + closing
    answer = exchange(port, data)
    assert answer.count(b"HTTP/1.1 ") == len(recorded) == (1 if path in ("HTTP/1.0", "refusal") else 2)
    assert b"".join(sent for sent, _ in recorded) == answer  # every byte went out in these writes, one a response
    assert all(nodelay for _, nodelay in recorded)
    assert answer.startswith(b"HTTP/1.1 %d " % STATUS[path])
