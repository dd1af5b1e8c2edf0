"""The front door reads plain requests without h11 (`plain_request`) and gives them to h11 otherwise: for every
head, the fast path reads exactly the request h11 reads (same fields, same keep-alive) or leaves it to h11, so the
gateway accepts and refuses what it did with h11 alone. Heads written by hand and generated ones go through both
readers, then through a running server with the fast path on and off, byte for byte."""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local.gateway import Http11Server, Limits, Refusal, Request
from local.gateway import connection as connection_module
from local.gateway.fast_path import plain_request
from local.gateway.h11_path import h11_head, request_from_h11
from local.gateway.limits import check_head
from local.http_api import HttpResponse

LIMITS = Limits()
CLIENT = "127.0.0.1"
JWS_SHAPED = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2ln"  # no signature: nothing checks it here
BENCH = (
    f"GET /api/CallData/OpenCalls/212/DEMO1/ids HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer {JWS_SHAPED}"
)

# Heads the fast path reads itself (each must, or the benchmark's requests would not take it).
PLAIN = [
    BENCH,
    "HEAD /api/CallData/OpenCalls/212/DEMO1/ids HTTP/1.1\r\nHost: x",
    "GET / HTTP/1.0",
    "GET / HTTP/1.0\r\nHost: x",
    "GET / HTTP/1.0\r\nConnection: keep-alive",  # h11 keeps no HTTP/1.0 connection alive
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: Close",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: CLOSE",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: , close ,",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: close",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: closed",  # not `close`: kept alive
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close;x",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection:",
    "GET / HTTP/1.1\r\nhOsT: x",
    "GET / HTTP/1.1\r\nHost:",
    "GET / HTTP/1.1\r\nHost:    ",
    "GET / HTTP/1.1\r\nHost: \t x \t ",
    "GET / HTTP/1.1\r\nHost: x\r\nX-A!#$%&'*+.^_`|~: odd name",
    "GET / HTTP/1.1\r\nHost: x\r\n123: digits",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Tab: a\tb",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Spaces: a    b",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Empty:",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Colons: a:b::c",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Quote: \"v\" 'w' <x> {y} [z] \\",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Ctl: a\x01b\x7fc",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xe9 \x80\xff",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Dup: 1\r\nX-Dup: 2\r\nx-dup: 3",
    "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=2\r\nCookie: c=3",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json",
    "GET / HTTP/1.1\r\nHost: x\r\nTE: trailers",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Expect: 100-continue\r\nX-Upgrade: h2c",
    "GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com",  # absolute form
    "OPTIONS * HTTP/1.1\r\nHost: x",
    "POST /clubs/1 HTTP/1.1\r\nHost: x",  # no framing headers: no body
    "DELETE /x HTTP/1.1\r\nHost: x",
    "get / HTTP/1.1\r\nHost: x",
    "M-SEARCH * HTTP/1.1\r\nHost: x",
    "GET /a%20b/%2F/~!$&'()*+,;=:@?q=[]{}|^`\"<> HTTP/1.1\r\nHost: x",
    "GET / HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-H{i}: {i}\r\n" for i in range(99)).removesuffix("\r\n"),
    "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "b" * 10_300,  # read, then over the head quota (431) on either path
]

# Heads the fast path leaves to h11, which reads them or refuses them (or `check_head` refuses them first).
LEFT_TO_H11 = [
    "GET / HTTP/1.1",  # no Host
    "GET / HTTP/1.1\r\nX-Host: x",
    "GET / HTTP/1.1\r\nHost: x\r\nHost: y",
    "GET / HTTP/1.0\r\nHost: x\r\nHost: x",
    "GET / HTTP/1.2\r\nHost: x",  # a later 1.x: h11 reads it, served as 1.1
    "GET / HTTP/1.9",
    "GET / HTTP/2.0\r\nHost: x",
    "GET / HTTP/0.9",
    "GET / HTTP/1.10\r\nHost: x",
    "GET / HTTP/1.x\r\nHost: x",
    "GET / http/1.1\r\nHost: x",
    "GET / HTTX/1.1\r\nHost: x",
    "GET /",
    "GET",
    "GARBAGE",
    "GET  / HTTP/1.1\r\nHost: x",
    "GET / HTTP/1.1 \r\nHost: x",
    " GET / HTTP/1.1\r\nHost: x",
    "GET / extra HTTP/1.1\r\nHost: x",
    "G\x7fT / HTTP/1.1\r\nHost: x",
    "G(T / HTTP/1.1\r\nHost: x",
    "GET /caf\xe9 HTTP/1.1\r\nHost: x",
    "GET /\x00 HTTP/1.1\r\nHost: x",
    "GET /a\tb HTTP/1.1\r\nHost: x",
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0",
    "GET / HTTP/1.1\r\nHost: x\r\ncontent-length: 5",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1",
    "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
    "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip",
    "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue",
    "GET / HTTP/1.1\r\nHost: x\r\nExpect: something-else",
    "GET / HTTP/1.0\r\nExpect: 100-continue",
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade",
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade:",
    "GET / HTTP/1.1\r\nHost: x\r\nX-V: a\x00b",
    "GET / HTTP/1.1\r\nHost: x\r\nX-V: a\x0bb",
    "GET / HTTP/1.1\r\nHost: x\r\nX-V: a\x0cb",
    "GET / HTTP/1.1\r\nHost: x\r\nX-V: \x0b",
    "GET / HTTP/1.1\r\nHost : x",
    "GET / HTTP/1.1\r\n: x",
    "GET / HTTP/1.1\r\nHost x",
    "GET / HTTP/1.1\r\nX(Y): x\r\nHost: x",
    "GET / HTTP/1.1\r\nX\x80: x\r\nHost: x",
    "GET / HTTP/1.1\r\n Host: x",  # obs-fold
    "GET / HTTP/1.1\r\nHost: x\r\n\tfolded",
    "GET / HTTP/1.1\nHost: x",  # bare LF
    "GET / HTTP/1.1\r\nHost: x\rX-A: b",  # bare CR
    "GET / HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-H{i}: {i}\r\n" for i in range(100)).removesuffix("\r\n"),
    "GET /" + "a" * 10_300 + " HTTP/1.1\r\nHost: x",  # the request line alone over the quota
]


def head_of(data: bytes) -> bytes:
    """What the gateway's reader hands on: blank lines before the request dropped, up to the head's first blank
    line (RFC 9112 2.2 and 2.1)."""
    data = data.lstrip(b"\r\n")
    found = re.search(rb"\n\r?\n", data)
    assert found is not None
    return data[: found.end()]


def encoded(text: str) -> bytes:
    return head_of(text.encode("latin-1") + b"\r\n\r\n")


def fast(head: bytes) -> tuple[Request, bool] | None:
    check_head(head, LIMITS)
    return plain_request(head, CLIENT)


def by_h11(head: bytes) -> tuple[Request, bool]:
    """The request h11 reads from a head without a body, and whether h11 would keep the connection alive."""
    check_head(head, LIMITS)
    conn, event = h11_head(head)
    end = conn.next_event()
    assert isinstance(end, h11.EndOfMessage), f"the fast path read a head with a body: {head!r}"
    return request_from_h11(event, CLIENT), conn.their_state is h11.DONE


def outcome(head: bytes, *, fast_path: bool) -> tuple[str, Any]:
    """What the gateway makes of a head: the request and keep-alive, or the refusal's status."""
    try:
        check_head(head, LIMITS)
        read = plain_request(head, CLIENT) if fast_path else None
        if read is None:
            conn, event = h11_head(head)
            if not isinstance(conn.next_event(), h11.EndOfMessage):
                return "body follows", request_from_h11(event, CLIENT)
            read = request_from_h11(event, CLIENT), conn.their_state is h11.DONE
        return "read", read
    except Refusal as refusal:
        return "refused", refusal.status


def assert_same(head: bytes) -> None:
    assert outcome(head, fast_path=True) == outcome(head, fast_path=False), head
    try:
        plain = fast(head)
    except Refusal:
        return
    if plain is not None:
        assert plain == by_h11(head), head
        # What `_Read` rebuilds for a response h11 must write: h11's state after the same request.
        conn, _event = h11_head(head)
        conn.next_event()
        assert (conn.their_state is h11.DONE) == plain[1]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_heads_are_read_without_h11_as_h11_reads_them(text: str) -> None:
    head = encoded(text)
    assert fast(head) is not None, "the fast path must take this head"
    assert_same(head)


@pytest.mark.parametrize("text", LEFT_TO_H11)
def test_other_heads_are_left_to_h11(text: str) -> None:
    data = text.encode("latin-1") + b"\r\n\r\n"
    head = head_of(data)
    with contextlib.suppress(Refusal):  # or refused before either reader sees it
        assert fast(head) is None
    assert_same(head)


def test_the_keep_alive_rule_is_h11s() -> None:
    assert fast(encoded(BENCH)) is not None
    for text, keep in [
        ("GET / HTTP/1.1\r\nHost: x", True),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: close", False),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed", True),
        ("GET / HTTP/1.0", False),
        ("GET / HTTP/1.0\r\nConnection: keep-alive", False),
    ]:
        plain = fast(encoded(text))
        assert plain is not None and plain[1] is keep, text


# --- generated heads ---

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ODD = '\x00\x01\x09\x0b\x0c\x7f\x80\xe9\xff \t:;,"()<>@[]{}/?=\\'
NAMES = ["Host", "host", "HOST", "Connection", "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Cookie"]
VALUES = ["", " ", "x", "close", "Close", " close ", "keep-alive, close", "closed", "100-continue", "chunked", "0"]

methods = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "CONNECT", "get", "M-SEARCH", "PRI", ""]),
    st.text(TCHAR + ODD, min_size=1, max_size=6),
)
targets = st.one_of(
    st.sampled_from(["/", "*", "/a?b=c", "http://h/p", "h:443", "//x", "/%00", ""]),
    st.text(TCHAR + ODD + "/%", min_size=1, max_size=12),
)
versions = st.sampled_from(
    ["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "http/1.1", "HTTP/1.", "HTTP/11", "HTTP/1.1 ", ""]
)
names = st.one_of(st.sampled_from(NAMES), st.text(TCHAR, min_size=1, max_size=5), st.text(TCHAR + ODD, max_size=5))
values = st.one_of(st.sampled_from(VALUES), st.text(TCHAR + ODD, max_size=10))
separators = st.sampled_from([":", ": ", ":\t", " :", ":  ", ""])
fields = st.lists(st.tuples(names, separators, values), max_size=6)


@settings(max_examples=3000, deadline=None)
@given(method=methods, space1=st.sampled_from([" ", "  ", "\t"]), target=targets, version=versions, fields=fields)
def test_generated_heads_get_the_same_outcome(
    method: str, space1: str, target: str, version: str, fields: list[tuple[str, str, str]]
) -> None:
    request_line = f"{method}{space1}{target}" + (f" {version}" if version else "")
    lines = [request_line, *(f"{name}{sep}{value}" for name, sep, value in fields)]
    data = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
    stripped = data.lstrip(b"\r\n")
    if not re.search(rb"\n\r?\n", stripped):
        return  # no head at all (the gateway waits for more)
    assert_same(head_of(data))


@settings(max_examples=1500, deadline=None)
@given(fields=fields, version=st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), host=st.integers(0, 2))
def test_generated_fields_on_a_good_request_line_get_the_same_outcome(
    fields: list[tuple[str, str, str]], version: str, host: int
) -> None:
    lines = [f"GET /api/x {version}", *(["Host: h"] * host), *(f"{n}{sep}{v}" for n, sep, v in fields)]
    assert_same(head_of("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"))


# --- over a socket: the same bytes back with the fast path on and off ---


def echo(request: Request) -> HttpResponse:
    """Answers with the request it was handed; under /h11-writes/ with a response only h11 writes (a Host header:
    `encode_response` leaves it to h11), so a fast-read request's h11 state is rebuilt to write it."""
    body = json.dumps(asdict(request)).encode()
    headers = [("Content-Type", "application/json")]
    if request.target.startswith("/h11-writes/"):
        headers.append(("Host", "elsewhere"))
    return HttpResponse(200, headers, body)


@pytest.fixture(scope="module")
def server() -> Iterator[Http11Server]:
    running = Http11Server(echo, "127.0.0.1", 0, Limits(linger_s=0.2))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def conversation(port: int, data: bytes) -> bytes:
    """Send `data` and a last request closing the connection, half-close, and read until the server closes; the
    Date headers taken out (the only bytes that may differ between two runs)."""
    last = b"GET /h11-writes/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data + last)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return re.sub(rb"\r\nDate: [^\r]*", b"", b"".join(chunks))


CONVERSATIONS = [
    *(text.encode("latin-1") + b"\r\n\r\n" for text in PLAIN + LEFT_TO_H11),
    encoded(BENCH) * 3,  # pipelined
    b"\r\n\r\n" + encoded(BENCH),  # blank lines before a request
    encoded("GET /h11-writes/1 HTTP/1.1\r\nHost: x") + encoded(BENCH),
    encoded("GET /h11-writes/1 HTTP/1.1\r\nHost: x\r\nConnection: close") + encoded(BENCH),
    encoded("GET /h11-writes/1 HTTP/1.0") + encoded(BENCH),
    encoded("HEAD /h11-writes/1 HTTP/1.1\r\nHost: x") + encoded(BENCH),
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" + encoded(BENCH),
    b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n" + encoded(BENCH),
]


def test_the_server_answers_the_same_bytes_with_and_without_the_fast_path(
    server: Http11Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_fast_path = [conversation(server.port, data) for data in CONVERSATIONS]
    monkeypatch.setattr(connection_module, "plain_request", lambda _head, _client: None)
    h11_only = [conversation(server.port, data) for data in CONVERSATIONS]
    for data, mine, reference in zip(CONVERSATIONS, with_fast_path, h11_only, strict=True):
        assert mine == reference, data[:200]
    assert all(answer.startswith(b"HTTP/1.1 ") for answer in with_fast_path)
