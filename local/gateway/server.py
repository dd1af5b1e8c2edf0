"""The server: one event loop thread that accepts every connection and serves it while it stays plain, and a
thread of its own for each connection from the first thing that is not."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from local.gateway.connection import HEAD_END, RECV_BYTES, Connection
from local.gateway.limits import Limits
from local.gateway.messages import Refusal, Request
from local.http_api import HttpResponse, WouldWait, refuse_waits


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
        self._looped: dict[socket.socket, Connection] = {}  # the loop's, touched by the loop's thread only
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
        refuse_waits()  # a handler that would wait on the network here raises WouldWait instead
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
                conn = Connection(sock, str(address[0]), self.handler, self.limits, self.stopping)
            except OSError:
                sock.close()
                continue
            conn.in_loop = True
            conn.deadline = time.monotonic() + self.limits.header_timeout_s
            with self._open_lock:
                self._open.add(sock)
            self._looped[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
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

    def _serve_pending(self, conn: Connection) -> None:
        """Answer the whole plain requests received, in order; hand the connection to its thread at the first
        thing that is not one."""
        while not self.stopping.is_set():
            conn.method = ""
            conn.pending = conn.pending.lstrip(b"\r\n")  # RFC 9112 2.2: ignore empty lines before a request
            found = HEAD_END.search(conn.pending)
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
            except WouldWait:  # its answer needs a wait (the issuer's keys being fetched): not on the loop
                self._hand_over(conn, read=read)
                return
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

    def _hand_over(self, conn: Connection, **where: Any) -> None:
        self._selector.unregister(conn.sock)
        del self._looped[conn.sock]
        conn.in_loop = False
        thread = threading.Thread(target=self._serve_thread, args=(conn, where), name="http11-conn", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the connection ends
            self._end(conn)

    def _serve_thread(self, conn: Connection, where: dict[str, Any]) -> None:
        try:
            conn.serve(**where)
        except Exception:  # noqa: S110 - a failure of ours ends this connection; a dropped socket needs no traceback
            pass
        finally:
            self._end(conn)

    def _drop(self, conn: Connection) -> None:
        self._selector.unregister(conn.sock)
        del self._looped[conn.sock]
        self._end(conn)

    def _end(self, conn: Connection) -> None:
        conn.end()
        with self._open_lock:
            self._open.discard(conn.sock)
