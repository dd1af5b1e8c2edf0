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

Why a small server over h11 rather than uvicorn, hypercorn or waitress: each of them answers framing errors itself
(uvicorn: text/plain "Invalid HTTP request received.", hypercorn: an empty 400, waitress: a text page), and uvicorn
has no timeout for a connection's first head; API Gateway's JSON errors and limits need that part in our hands.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


class _Connection:
    """One client connection: requests read and answered one at a time, in order (pipelining included)."""

    def __init__(self, sock: socket.socket, client: str, server: Http11Server) -> None:
        self.sock = sock
        self.client = client
        self.server = server
        self.limits = server.limits
        self.pending = b""  # received, not yet given to h11 (the next request's bytes)
        self.method = ""  # of the request being read, once known: a refused HEAD gets no body

    def serve(self) -> None:
        first = True
        while not self.server.stopping.is_set():
            self.method = ""
            try:
                conn, request = self._read_request(first)
            except _Closed:
                return
            except Refusal as refusal:
                self._refuse(refusal.status)
                return
            first = False
            try:
                response = self.server.handler(request)
            except Exception:  # what is behind the door failed: API Gateway's 500, and the connection goes on
                body = json.dumps({"message": "Internal Server Error"}).encode()
                response = HttpResponse(500, [("Content-Type", "application/json")], body)
            if not self._send(conn, request.method, response):
                self._close()
                return

    # --- reading ---

    def _recv(self, deadline: float | None, *, silent_timeout: bool) -> bytes:
        """Bytes from the client before `deadline`; a timeout is a 408 unless nothing of a request has come yet."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise _Closed() if silent_timeout else Refusal(408, "timeout")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(_RECV)
        except TimeoutError:
            raise _Closed() if silent_timeout else Refusal(408, "timeout") from None
        except OSError:
            raise _Closed() from None
        if not data:
            raise _Closed()
        return data

    def _read_head(self, first: bool) -> bytes:
        """Bytes up to the end of the next request's head, within the header timeout and size limits."""
        limits = self.limits
        idle = limits.header_timeout_s if first else limits.keep_alive_timeout_s
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

    def _read_request(self, first: bool) -> tuple[h11.Connection, Request]:
        head = self._read_head(first)
        check_head(head, self.limits)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_RAW_HEAD)
        conn.receive_data(self.pending)
        self.pending = b""
        try:
            event = conn.next_event()
            if not isinstance(event, h11.Request):
                raise Refusal(400, "no request")
            method = event.method.decode("ascii")
            target = event.target.decode("ascii")
            self.method = method
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()]
            version = "1.0" if event.http_version == b"1.0" else "1.1"
            if head_size(method, target, f"HTTP/{version}", headers) > self.limits.max_head:
                raise Refusal(431, "over the head quota")
            length = next((v for k, v in event.headers if k == b"content-length"), b"0")
            if int(length) > self.limits.max_body:
                raise Refusal(413, "body too large")
            body = self._read_body(conn)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint in (400, 413, 414, 431, 501, 505) else 400
            raise Refusal(status, str(exc)) from None
        self.pending = bytes(conn.trailing_data[0])
        return conn, Request(method, target, version, headers, body, self.client)

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

    def _send(self, conn: h11.Connection, method: str, response: HttpResponse) -> bool:
        """Write the response in one send (`TCP_NODELAY` is on: nothing waits for a delayed ACK); whether the
        connection goes on. h11 decided from the request whether it may (not after HTTP/1.0 or `close`)."""
        headers = response_headers(response)
        keep_alive = conn.their_state is h11.DONE
        data = encode_response(method, response.status, headers, response.body, keep_alive=keep_alive)
        if data is not None:
            return self._sendall(data) and keep_alive
        data = h11_response(conn, method, response, headers)
        if data is None:  # a handler's response h11 cannot frame: API Gateway's 500
            self._refuse(500)
            return False
        return self._sendall(data) and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def _sendall(self, data: bytes) -> bool:
        try:
            self.sock.settimeout(self.limits.body_timeout_s)
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _refuse(self, status: int) -> None:
        """Answer and close without a reset: half-close, then read and drop what the client still sends."""
        self._sendall(error_response(status, head_only=self.method == "HEAD"))
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.limits.linger_s
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                if not self.sock.recv(_RECV):
                    break
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Http11Server:
    """A threaded HTTP/1.1 server on h11: one thread per connection, `handler` called with each whole request."""

    def __init__(
        self, handler: Callable[[Request], HttpResponse], host: str, port: int, limits: Limits | None = None
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with owner._open_lock:
                    owner._open.add(sock)
                try:
                    _Connection(sock, str(self.client_address[0]), owner).serve()
                finally:
                    with owner._open_lock:
                        owner._open.discard(sock)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a handler failure is answered in `_Connection`; a dropped socket needs no traceback

        self._server = Server((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http11", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, and close kept-alive connections too: a stopped server must look stopped."""
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


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
