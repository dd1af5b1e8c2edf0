"""One client connection: its requests read (the fast path's or h11's), handed to the handler, answered, one at a
time and in order, within the limits; and its refusals, answered and closed without a reset."""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import h11

from local.gateway.fast_path import encode_response, plain_request
from local.gateway.h11_path import h11_head, h11_refusal, h11_response, request_from_h11
from local.gateway.limits import MAX_RAW_HEAD, Limits, check_head
from local.gateway.messages import Refusal, Request, error_response, response_headers
from local.http_api import HttpResponse, WouldWait, head_size

RECV_BYTES = 65_536
HEAD_END = re.compile(rb"\n\r?\n")


class _Closed(Exception):
    """The client went away, or stayed silent past a timeout with nothing to answer."""


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


class Connection:
    """One client connection: requests read and answered one at a time, in order (pipelining included).

    The server's event loop serves it while it is plain (see `Http11Server`); its own thread serves it from the
    first thing the loop does not do, as long as it lasts. The socket is non-blocking and waited on with poll, so a
    thread's request costs a poll, a recv and a send (a socket timeout would add a poll before the send and an
    ioctl whenever it is set)."""

    def __init__(
        self,
        sock: socket.socket,
        client: str,
        handler: Callable[[Request], HttpResponse],
        limits: Limits,
        stopping: threading.Event,
    ) -> None:
        self.sock = sock
        self.client = client
        self.handler = handler
        self.limits = limits
        self.stopping = stopping  # the server's: set when it stops
        self.pending = b""  # received, not yet read as a request (the next request's bytes)
        self.method = ""  # of the request being read, once known: a refused HEAD gets no body
        self.first = True  # no request read yet: its head has the header timeout, not the keep-alive one
        self.in_loop = False  # served by the event loop, which never waits on one client
        self.unsent = b""  # what the loop could not write without waiting, for the connection's thread
        self.deadline = 0.0  # on the loop: when an idle connection is closed (time.monotonic())
        sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def serve(self, *, refusal: int | None = None, going_on: bool = True, read: _Read | None = None) -> None:
        """The connection's thread: reads and answers requests until the connection ends, waiting on the client as
        long as the limits allow. It starts where the loop left off: `refusal` to answer, a request `read` whose
        answer needs a wait, or the rest of a response (`unsent`) to write, then whether the connection goes on
        after it."""
        if refusal is not None:
            self._refuse(refusal)
            return
        if read is not None:
            try:
                going_on = self.answer(read)
            except Refusal as refused:
                self._refuse(refused.status)
                return
            if not going_on:
                self._close()
                return
        if self.unsent:
            unsent, self.unsent = self.unsent, b""
            if not (self._write(memoryview(unsent)) and going_on):
                self._close()
                return
        while not self.stopping.is_set():
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
            response = self.handler(read.request)
        except WouldWait:  # on the event loop, a request that needs a wait: the server hands it to a thread
            raise
        except Exception:  # what is behind the door failed: API Gateway's 500, and the connection goes on
            body = json.dumps({"message": "Internal Server Error"}, separators=(",", ":")).encode()
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
                data = self.sock.recv(RECV_BYTES)
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
            found = HEAD_END.search(self.pending)
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
                    if not self.sock.recv(RECV_BYTES):
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
