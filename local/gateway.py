"""The local HTTP front door: the emulated HTTP API (query route behind the JWT authorizer) plus the local token
issuer's endpoints, on one loopback port.

It answers like API Gateway's HTTP API in every case, including requests no client library would send: HTTP/1.1
framing is h11's (a strict RFC 9112 state machine), with the checks h11 leaves to its user made here, before h11
sees the request: a request with both `Transfer-Encoding` and `Content-Length`, duplicate or listed
`Content-Length`, a transfer coding list not ending in `chunked`, bare LF or CR line ends and obs-fold lines are
refused (400, connection closed), as are heads over API Gateway's quotas (10,240 bytes of request line and headers:
431, or 414 for the request line alone; 100 header fields), bodies over its 10 MB payload (413), and versions other
than HTTP/1.x (505). A connection that does not finish its head within a few seconds is answered 408 and closed, an
idle one closed. Every refusal is `{"message": <reason phrase>}` in JSON with `Connection: close`, and the rest of
what the client sent is read and dropped (a lingering close), so nothing it sent is ever read as a second request.

One event loop thread serves every connection while its requests are plain (a whole head in one read, no body:
`plain_request` reads those as h11 does, field for field, which the tests check against h11) and their answers fit
the socket's buffer; at anything else a connection moves to a thread of its own, where h11 reads its requests and
every wait is bounded by the timeouts above. Handlers run on whichever thread read the request.

Why a small server over h11 rather than uvicorn, hypercorn or waitress: each of them answers framing errors itself
(uvicorn: text/plain "Invalid HTTP request received.", hypercorn: an empty 400, waitress: a text page), and uvicorn
has no timeout for a connection's first head; API Gateway's JSON errors and limits need that part in our hands.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import h11

from local.http_api import MAX_REQUEST_HEAD_BYTES, HttpApi, HttpRequest, HttpResponse, head_size

# (method, path) -> handler(body, headers) -> (status, headers, body): the local issuer's endpoints.
ExtraRoutes = Mapping[tuple[str, str], Callable[[bytes, Mapping[str, str]], tuple[int, Mapping[str, str], bytes]]]

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload quota for an HTTP API (10 MB)
MAX_HEADERS = 100
# The raw head (names, separators, line ends included) may exceed the quota's count of request line, names and
# values by a few bytes per line; past this it cannot fit the quota, so reading stops there.
MAX_RAW_HEAD = MAX_REQUEST_HEAD_BYTES + 4 * (MAX_HEADERS + 1) + 512
_RECV = 65_536
_HEAD_END = re.compile(rb"\n\r?\n")
_REQUEST_LINE = re.compile(rb"[!-~]+ [!-~]+ HTTP/([0-9])\.([0-9])")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# What h11 0.16 accepts in a header it sends (h11/_abnf.py: token, and field-value with its obs-text fix-up), here
# for ASCII text only: `encode_response` writes a response itself only when h11 would write it byte for byte.
_FIELD_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(r"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
# What h11 0.16 accepts in a request head it reads (h11/_abnf.py: request-line; header-field = token ":" OWS
# field-value OWS, a value's bytes anything but NUL and whitespace other than SP and HTAB between them), for
# `plain_request`, which reads without h11 only what h11 would read to the same request.
_PLAIN_REQUEST_LINE = re.compile(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+) ([\x21-\x7e]+) HTTP/1\.([01])")
_NOT_IN_FIELDS = b"\x00\x0b\x0c"  # NUL, VT, FF: in no part of a head h11 reads (CR and LF only end lines)
# Fields whose presence changes what h11 does with a request (a body to read, 100 Continue, a protocol switch).
_READ_BY_H11 = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_SET_BY_US = frozenset({"content-length", "connection", "date"})  # a handler's own are replaced
_LEFT_TO_H11 = frozenset({"transfer-encoding", "host"})  # h11 rewrites or reorders these: it writes the response
_date_cache: tuple[int, str] = (0, "")


def serialized(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """One invocation at a time, as one Lambda execution environment serves one request at a time (the handler's
    Logger and Metrics are per-environment state)."""
    lock = threading.Lock()

    def invoke(event: dict[str, Any], context: Any) -> Any:
        with lock:
            return handler(event, context)

    return invoke


@dataclass(frozen=True, slots=True)
class Limits:
    """What the server accepts; the defaults are API Gateway's HTTP API quotas, the timeouts a few seconds so a
    connection that never finishes its head (slowloris) does not hold a thread for long."""

    max_request_line: int = MAX_REQUEST_HEAD_BYTES
    max_head: int = MAX_REQUEST_HEAD_BYTES
    max_headers: int = MAX_HEADERS
    max_body: int = MAX_BODY
    header_timeout_s: float = 5.0  # from a connection's first byte of a request to the end of its head
    body_timeout_s: float = 10.0  # the longest silence while a body is read
    keep_alive_timeout_s: float = 30.0  # an idle connection between requests
    linger_s: float = 1.0  # after a refusal, how long to read and drop what the client still sends


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    http_version: str  # "1.0" or "1.1" (a higher HTTP/1.x minor version is served as 1.1, per RFC 9110)
    headers: list[tuple[str, str]]  # as sent, names in their own case
    body: bytes
    client: str


class Refusal(Exception):
    """The request cannot be served: answer `status` with API Gateway's JSON error and close the connection."""

    def __init__(self, status: int, why: str = "") -> None:
        super().__init__(why or str(status))
        self.status = status


class _Closed(Exception):
    """The client went away, or stayed silent past a timeout with nothing to answer."""


def error_response(status: int, *, head_only: bool = False) -> bytes:
    """API Gateway's own error, written without h11 (whose state may be broken by the request being refused)."""
    phrase = HTTPStatus(status).phrase
    body = json.dumps({"message": phrase}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nDate: {http_date()}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + body


def http_date() -> str:
    """The Date header's value, formatted once a second rather than once a response."""
    global _date_cache  # noqa: PLW0603 - one tuple, replaced whole (safe across threads)
    now = int(time.time())
    second, text = _date_cache
    if second != now:
        text = formatdate(now, usegmt=True)
        _date_cache = (now, text)
    return text


def response_headers(response: HttpResponse) -> list[tuple[str, str]]:
    """The handler's headers with ours in place of its framing ones: Date, and Content-Length (its own value if it
    declared one, which must then match what is sent)."""
    headers = [(k, v) for k, v in response.headers if k.lower() not in _SET_BY_US]
    declared = response.header("content-length")
    headers += [
        ("Date", http_date()),
        ("Content-Length", declared if declared is not None else str(len(response.body))),
    ]
    return headers


def encode_response(
    method: str, status: int, headers: list[tuple[str, str]], body: bytes, *, keep_alive: bool
) -> bytes | None:
    """The bytes h11 writes for this response (status line, headers in order, `Connection: close` last when the
    connection ends, the body unless HEAD, 204 or 304), built directly: h11's checks and state machine cost about
    as much as all the rest of the gateway's work on a request. None when the response is not that plain case (a
    status or header h11 refuses or rewrites, a Content-Length not the body's, CONNECT): h11 then writes it."""
    if type(status) is not int or not 200 <= status < 1000 or type(body) is not bytes or method == "CONNECT":
        return None
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
    length = str(len(body))
    for name, value in headers:
        if type(name) is not str or type(value) is not str or not name.isascii() or not value.isascii():
            return None
        lowered = name.lower()
        if lowered in _LEFT_TO_H11 or (lowered == "content-length" and value != length):
            return None
        if _FIELD_NAME.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            return None
        parts.append(f"{name}: {value}\r\n".encode("ascii"))
    parts.append(b"\r\n" if keep_alive else b"Connection: close\r\n\r\n")
    if method != "HEAD" and status not in (204, 304):
        parts.append(body)
    return b"".join(parts)


def check_head(head: bytes, limits: Limits) -> None:
    """What h11 accepts but a strict front door must not: raises `Refusal`. `head` runs up to its blank line."""
    if head.count(b"\n") != head.count(b"\r\n") or head.count(b"\r") != head.count(b"\r\n"):
        raise Refusal(400, "bare LF or CR as a line end")  # RFC 9112 2.2: a smuggling vector; refused
    lines = head[:-4].split(b"\r\n")
    request_line, fields = lines[0], lines[1:]
    if len(request_line) > limits.max_request_line:
        raise Refusal(414, "request line too long")
    version = _REQUEST_LINE.fullmatch(request_line)
    if version is not None and version.group(1) != b"1":
        raise Refusal(505, "not HTTP/1.x")  # HTTP/2.0 in HTTP/1 syntax, the HTTP/2 preface, HTTP/9.9
    if len(fields) > limits.max_headers:
        raise Refusal(431, "too many header fields")
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for line in fields:
        if line[:1] in (b" ", b"\t"):
            raise Refusal(400, "obs-fold")  # RFC 9112 5.2: reject or unfold; API Gateway's peers reject
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise Refusal(400, "malformed header field")
        lowered = name.lower()
        if lowered == b"content-length":
            lengths.append(value.strip())
        elif lowered == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b","))
    check_framing(lengths, codings)


def check_framing(lengths: list[bytes], codings: list[bytes]) -> None:
    """RFC 9112 6.1 and 6.3, strictly: one way to find the body's end, or the request is refused."""
    if lengths and codings:
        raise Refusal(400, "both Content-Length and Transfer-Encoding")  # the classic smuggling request
    if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
        raise Refusal(400, "duplicate or invalid Content-Length")
    if codings and (codings[-1] != b"chunked" or b"chunked" in codings[:-1]):
        raise Refusal(400, "chunked is not the final transfer coding, or not the only chunked")
    if len(codings) > 1:
        raise Refusal(501, "a transfer coding other than chunked")


def plain_request(head: bytes, client: str) -> tuple[Request, bool] | None:
    """The request `head` (which passed `check_head`) opens, read without h11, and whether the connection may go
    on after it: for the plain case only, a request without a body (no Content-Length or Transfer-Encoding), an
    `Expect` or an `Upgrade`, not CONNECT, in HTTP/1.0 or 1.1, with one Host (1.1) or none (1.0). That is the
    request h11 reads from it, field for field, and h11's keep-alive rule (not after HTTP/1.0 or `close`), for a
    fraction of what an h11 Connection per request costs. None for anything else, which h11 reads (or refuses)."""
    if len(head.translate(None, _NOT_IN_FIELDS)) != len(head):
        return None  # h11 refuses these bytes wherever they are
    lines = head[:-4].split(b"\r\n")  # `check_head` left no other CR or LF
    request_line = _PLAIN_REQUEST_LINE.fullmatch(lines[0])
    if request_line is None:
        return None
    method, target, minor = request_line.groups()
    if method == b"CONNECT":
        return None
    keep_alive = minor == b"1"
    hosts = 0
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, rest = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            return None
        value = rest.strip(b" \t")  # OWS either side; between the value's other bytes, any SP and HTAB
        lowered = name.lower()
        if lowered in _READ_BY_H11:
            return None
        if lowered == b"host":
            hosts += 1
        elif lowered == b"connection" and b"close" in [v.strip() for v in value.lower().split(b",")]:
            keep_alive = False
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    if hosts > 1 or (hosts == 0 and minor == b"1"):
        return None  # h11 refuses it (RFC 9112 3.2)
    version = "1.1" if minor == b"1" else "1.0"
    return Request(method.decode("ascii"), target.decode("ascii"), version, headers, b"", client), keep_alive


def h11_head(data: bytes) -> tuple[h11.Connection, h11.Request]:
    """h11's reading of the request head `data` starts with (after `check_head`): its connection, at the body, and
    the Request event. Raises `Refusal` where h11 refuses the head."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_RAW_HEAD)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise h11_refusal(exc) from None
    if not isinstance(event, h11.Request):
        raise Refusal(400, "no request")
    return conn, event


def request_from_h11(event: h11.Request, client: str) -> Request:
    """The request h11 read, without its body (read next)."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()]
    version = "1.0" if event.http_version == b"1.0" else "1.1"
    return Request(event.method.decode("ascii"), event.target.decode("ascii"), version, headers, b"", client)


def h11_refusal(exc: h11.RemoteProtocolError) -> Refusal:
    status = exc.error_status_hint if exc.error_status_hint in (400, 413, 414, 431, 501, 505) else 400
    return Refusal(status, str(exc))


def h11_response(
    conn: h11.Connection, method: str, response: HttpResponse, headers: list[tuple[str, str]]
) -> bytes | None:
    """The response as h11 writes it (the reference for `encode_response`, and the writer of every response that is
    not its plain case); None when h11 refuses to frame it."""
    try:
        reason = HTTPStatus(response.status).phrase.encode()
    except ValueError:
        reason = b""
    try:
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason)) or b""
        if method != "HEAD" and response.status not in (204, 304) and response.body:
            data += conn.send(h11.Data(data=response.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError:
        return None
    return data


@dataclass(slots=True)
class _Read:
    """A request as read, with what answering it needs: h11's connection when h11 read it; else the head, which h11
    reads again only for a response it must write itself, and whether the connection may go on."""

    request: Request
    conn: h11.Connection | None
    head: bytes
    keep_alive: bool  # when `conn` is None (h11's state says it otherwise)

    def h11_connection(self) -> h11.Connection:
        if self.conn is None:  # `plain_request` read it: h11 reads the same request (tested), with no body
            self.conn, _request = h11_head(self.head)
            self.conn.next_event()
        return self.conn


class _Connection:
    """One client connection: requests read and answered one at a time, in order (pipelining included).

    The server's event loop serves it while it is plain (see `Http11Server`); its own thread serves it from the
    first thing the loop does not do, as long as it lasts. The socket is non-blocking and waited on with poll, so a
    thread's request costs a poll, a recv and a send (a socket timeout would add a poll before the send and an
    ioctl whenever it is set)."""

    def __init__(self, sock: socket.socket, client: str, server: Http11Server) -> None:
        self.sock = sock
        self.client = client
        self.server = server
        self.limits = server.limits
        self.pending = b""  # received, not yet read as a request (the next request's bytes)
        self.method = ""  # of the request being read, once known: a refused HEAD gets no body
        self.first = True  # no request read yet: its head has the header timeout, not the keep-alive one
        self.in_loop = False  # served by the event loop, which never waits on one client
        self.unsent = b""  # what the loop could not write without waiting, for the connection's thread
        self.deadline = 0.0  # on the loop: when an idle connection is closed (time.monotonic())
        sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def serve(self, *, refusal: int | None = None, going_on: bool = True) -> None:
        """The connection's thread: reads and answers requests until the connection ends, waiting on the client as
        long as the limits allow. It starts where the loop left off: `refusal` to answer, or the rest of a response
        (`unsent`) to write, then whether the connection goes on after it."""
        if refusal is not None:
            self._refuse(refusal)
            return
        if self.unsent:
            unsent, self.unsent = self.unsent, b""
            if not (self._write(memoryview(unsent)) and going_on):
                self._close()
                return
        while not self.server.stopping.is_set():
            self.method = ""
            try:
                read = self._read_request()
                going_on = self.answer(read)
            except _Closed:
                return
            except Refusal as refused:
                self._refuse(refused.status)
                return
            if not going_on:
                self._close()
                return

    def answer(self, read: _Read) -> bool:
        """Hand the request to the handler and write its response; whether the connection goes on. Raises
        `Refusal` (500) for a response h11 cannot frame."""
        try:
            response = self.server.handler(read.request)
        except Exception:  # what is behind the door failed: API Gateway's 500, and the connection goes on
            body = json.dumps({"message": "Internal Server Error"}).encode()
            response = HttpResponse(500, [("Content-Type", "application/json")], body)
        return self._send(read, response)

    # --- reading ---

    def _wait(self, events: int, deadline: float | None) -> bool:
        """Whether the socket is ready for `events` (POLLIN or POLLOUT) before `deadline` (None: no limit)."""
        if events != select.POLLIN:
            self._poll.modify(self.sock, events)
        try:
            while True:
                remaining = None if deadline is None else (deadline - time.monotonic()) * 1000
                if remaining is not None and remaining <= 0:
                    return False
                if self._poll.poll(remaining):
                    return True
        finally:
            if events != select.POLLIN:
                self._poll.modify(self.sock, select.POLLIN)

    def _recv(self, deadline: float | None, *, silent_timeout: bool) -> bytes:
        """Bytes from the client before `deadline`; a timeout is a 408 unless nothing of a request has come yet."""
        while True:
            if not self._wait(select.POLLIN, deadline):
                raise _Closed() if silent_timeout else Refusal(408, "timeout")
            try:
                data = self.sock.recv(_RECV)
            except BlockingIOError:  # woken without data after all: wait again
                continue
            except OSError:
                raise _Closed() from None
            if not data:
                raise _Closed()
            return data

    def _read_head(self) -> bytes:
        """Bytes up to the end of the next request's head, within the header timeout and size limits."""
        limits = self.limits
        idle = limits.header_timeout_s if self.first else limits.keep_alive_timeout_s
        deadline = time.monotonic() + idle if not self.pending else time.monotonic() + limits.header_timeout_s
        started = bool(self.pending)
        while True:
            self.pending = self.pending.lstrip(b"\r\n")  # RFC 9112 2.2: ignore empty lines before a request
            found = _HEAD_END.search(self.pending)
            if found is not None:
                return self.pending[: found.end()]
            if b"\n" not in self.pending and len(self.pending) > limits.max_request_line:
                raise Refusal(414, "request line too long")
            if len(self.pending) > MAX_RAW_HEAD:
                raise Refusal(431, "head too large")
            if self.pending and not started:
                started, deadline = True, time.monotonic() + limits.header_timeout_s
            self.pending += self._recv(deadline, silent_timeout=not self.pending)

    def read_plain(self, head: bytes) -> _Read | None:
        """The request `head` opens when `plain_request` reads it (None: h11 must); raises `Refusal` for a head
        `check_head` refuses, or over the quota."""
        check_head(head, self.limits)
        plain = plain_request(head, self.client)
        if plain is None:
            return None
        request, keep_alive = plain
        self.method = request.method
        self._check_quota(request)
        self.pending = self.pending[len(head) :]
        self.first = False
        return _Read(request, None, head, keep_alive)

    def _read_request(self) -> _Read:
        head = self._read_head()
        read = self.read_plain(head)
        if read is not None:
            return read
        conn, event = h11_head(self.pending)
        self.pending = b""
        self.first = False
        request = request_from_h11(event, self.client)
        self.method = request.method
        self._check_quota(request)
        length = next((v for k, v in event.headers if k == b"content-length"), b"0")
        if int(length) > self.limits.max_body:
            raise Refusal(413, "body too large")
        try:
            body = self._read_body(conn)
        except h11.RemoteProtocolError as exc:
            raise h11_refusal(exc) from None
        self.pending = bytes(conn.trailing_data[0])
        return _Read(replace(request, body=body), conn, head, keep_alive=False)

    def _check_quota(self, request: Request) -> None:
        protocol = f"HTTP/{request.http_version}"
        if head_size(request.method, request.target, protocol, request.headers) > self.limits.max_head:
            raise Refusal(431, "over the head quota")

    def _read_body(self, conn: h11.Connection) -> bytes:
        """The whole body, chunked or not, so nothing of it is left on the connection to read as a request."""
        if conn.they_are_waiting_for_100_continue:
            self._sendall(conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")))
        parts: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(self._recv(time.monotonic() + self.limits.body_timeout_s, silent_timeout=False))
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.limits.max_body:
                    raise Refusal(413, "body too large")
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:  # ConnectionClosed mid-body
                raise _Closed()

    # --- writing ---

    def _send(self, read: _Read, response: HttpResponse) -> bool:
        """Write the response in one send (`TCP_NODELAY` is on: nothing waits for a delayed ACK); whether the
        connection goes on. The request decided whether it may (not after HTTP/1.0 or `close`): h11's state when h11
        read it, the same rule applied by `plain_request` otherwise. Raises `Refusal` (500) for a handler's
        response h11 cannot frame, as API Gateway answers a malformed Lambda response."""
        headers = response_headers(response)
        method = read.request.method
        keep_alive = read.keep_alive if read.conn is None else read.conn.their_state is h11.DONE
        data = encode_response(method, response.status, headers, response.body, keep_alive=keep_alive)
        if data is not None:
            return self._sendall(data) and keep_alive
        conn = read.h11_connection()
        data = h11_response(conn, method, response, headers)
        if data is None:
            raise Refusal(500, "a response h11 cannot frame")
        return self._sendall(data) and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def _sendall(self, data: bytes) -> bool:
        """Write all of `data`: one send unless the socket's buffer is full, then the rest as room comes, within the
        body timeout; on the loop, which waits on no client, the rest is left in `unsent` for the thread."""
        view = self._send_some(memoryview(data))
        if view is None:
            return False
        if not view:
            return True
        if self.in_loop:
            self.unsent = bytes(view)
            return True
        return self._write(view)

    def _write(self, view: memoryview) -> bool:
        deadline = time.monotonic() + self.limits.body_timeout_s
        while view:
            if not self._wait(select.POLLOUT, deadline):
                return False
            rest = self._send_some(view)
            if rest is None:
                return False
            view = rest
        return True

    def _send_some(self, view: memoryview) -> memoryview | None:
        """What of `view` the socket did not take in one send (all of it when its buffer is full); None when the
        connection failed."""
        try:
            return view[self.sock.send(view) :]
        except BlockingIOError:
            return view
        except OSError:
            return None

    def _refuse(self, status: int) -> None:
        """Answer and close without a reset: half-close, then read and drop what the client still sends."""
        self._sendall(error_response(status, head_only=self.method == "HEAD"))
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.limits.linger_s
            while self._wait(select.POLLIN, deadline):
                with contextlib.suppress(BlockingIOError):
                    if not self.sock.recv(_RECV):
                        break
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def end(self) -> None:
        """After the last response: half-close (what was written is still delivered), then close."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self.sock.close()


class Http11Server:
    """An HTTP/1.1 server on h11 and `plain_request`, `handler` called with each whole request.

    One event loop thread accepts every connection and serves it while it stays plain: each request's whole head
    in one read, `plain_request`'s case (no body), and a response that fits the socket's buffer. From the first
    thing that is not (a head arriving in pieces, a body, a refusal, a client slow to read), the connection moves
    to a thread of its own for as long as it lasts, which waits on it within the limits as before. The loop is
    where the speed is: with a thread per connection, every read and write hands Python's interpreter lock to
    another thread, often on another core, and at 32 busy connections that costs as much as the requests
    themselves; the loop keeps it on one thread. Idle connections on the loop are closed at the same timeouts as
    in a thread (the header timeout before a first request, the keep-alive one after a response)."""

    def __init__(
        self, handler: Callable[[Request], HttpResponse], host: str, port: int, limits: Limits | None = None
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.stopping = threading.Event()
        self._listener = socket.create_server((host, port), backlog=128)
        self._listener.setblocking(False)
        self._wake, self._woken = socket.socketpair()
        self._woken.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._woken, selectors.EVENT_READ)
        self._looped: dict[socket.socket, _Connection] = {}  # the loop's, touched by the loop's thread only
        self._open: set[socket.socket] = set()  # every connection's socket, the loop's and the threads'
        self._open_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="http11", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._listener.getsockname()[0])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, and close kept-alive connections too: a stopped server must look stopped. A handler still
        running on the loop is waited for as long as a body may take; past that, left to finish on its own."""
        self.stopping.set()
        if self._thread.is_alive():
            with contextlib.suppress(OSError):
                self._wake.send(b"x")
            self._thread.join(self.limits.body_timeout_s)
        else:
            self._selector.close()
        for sock in (self._listener, self._wake, self._woken):
            sock.close()
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    # --- the loop ---

    def _loop(self) -> None:
        try:
            while not self.stopping.is_set():
                deadline = min((c.deadline for c in self._looped.values()), default=None)
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                for key, _events in self._selector.select(timeout):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._woken:
                        with contextlib.suppress(OSError):
                            self._woken.recv(64)
                    else:
                        self._readable(key.data)
                now = time.monotonic()
                for conn in [c for c in self._looped.values() if c.deadline <= now]:
                    self._drop(conn)  # idle past its timeout: closed without an answer, as a thread does
        finally:
            for conn in list(self._looped.values()):
                self._drop(conn)
            self._selector.close()

    def _accept(self) -> None:
        """Every connection waiting to be accepted, each on the loop until it needs a thread."""
        while True:
            try:
                sock, address = self._listener.accept()
            except OSError:  # none left, gone before it was accepted, or out of descriptors: the next event retries
                return
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = _Connection(sock, str(address[0]), self)
            except OSError:
                sock.close()
                continue
            conn.in_loop = True
            conn.deadline = time.monotonic() + self.limits.header_timeout_s
            with self._open_lock:
                self._open.add(sock)
            self._looped[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._drop(conn)
            return
        conn.pending += data
        try:
            self._serve_pending(conn)
        except Exception:  # a failure of ours with this connection: it alone ends, the loop goes on
            if conn.sock in self._looped:
                self._drop(conn)

    def _serve_pending(self, conn: _Connection) -> None:
        """Answer the whole plain requests received, in order; hand the connection to its thread at the first
        thing that is not one."""
        while not self.stopping.is_set():
            conn.method = ""
            conn.pending = conn.pending.lstrip(b"\r\n")  # RFC 9112 2.2: ignore empty lines before a request
            found = _HEAD_END.search(conn.pending)
            if found is None:
                if conn.pending:  # a head arriving in pieces: its thread applies the header timeout and limits
                    self._hand_over(conn)
                return  # nothing yet, or blank lines only: the idle deadline stands
            try:
                read = conn.read_plain(conn.pending[: found.end()])
                if read is None:  # a body, 100 Continue, a protocol switch...: h11 reads it, on the thread
                    self._hand_over(conn)
                    return
                going_on = conn.answer(read)
            except Refusal as refusal:
                self._hand_over(conn, refusal=refusal.status)
                return
            if conn.unsent:
                self._hand_over(conn, going_on=going_on)
                return
            if not going_on:
                self._drop(conn)
                return
            conn.deadline = time.monotonic() + self.limits.keep_alive_timeout_s

    def _hand_over(self, conn: _Connection, **where: Any) -> None:
        self._selector.unregister(conn.sock)
        del self._looped[conn.sock]
        conn.in_loop = False
        thread = threading.Thread(target=self._serve_thread, args=(conn, where), name="http11-conn", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the connection ends
            self._end(conn)

    def _serve_thread(self, conn: _Connection, where: dict[str, Any]) -> None:
        try:
            conn.serve(**where)
        except Exception:  # noqa: S110 - a failure of ours ends this connection; a dropped socket needs no traceback
            pass
        finally:
            self._end(conn)

    def _drop(self, conn: _Connection) -> None:
        self._selector.unregister(conn.sock)
        del self._looped[conn.sock]
        self._end(conn)

    def _end(self, conn: _Connection) -> None:
        conn.end()
        with self._open_lock:
            self._open.discard(conn.sock)


class Gateway:
    """The HTTP API (`api`) and the issuer's endpoints (`extra_routes`) behind one strict HTTP/1.1 server; both are
    read per request, so local mode can bind the port first and fill them in once its parts are built."""

    def __init__(
        self, api: HttpApi, extra_routes: ExtraRoutes, host: str, port: int, limits: Limits | None = None
    ) -> None:
        self.api = api
        self.extra_routes = dict(extra_routes)
        self.server = Http11Server(self.handle, host, port, limits)

    @property
    def port(self) -> int:
        return self.server.port

    def handle(self, request: Request) -> HttpResponse:
        path = request.target.partition("?")[0]
        extra = self.extra_routes.get((request.method, path))
        if extra is not None:
            status, headers, payload = extra(request.body, {k.lower(): v for k, v in request.headers})
            return HttpResponse(status, list(headers.items()), payload)
        return self.api.handle(
            HttpRequest(
                method=request.method,
                target=request.target,
                headers=request.headers,
                body=request.body,
                source_ip=request.client,
                protocol=f"HTTP/{request.http_version}",
            )
        )

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
