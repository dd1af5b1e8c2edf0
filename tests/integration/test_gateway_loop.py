"""The front door's event loop serves plain requests on one thread and hands a connection to a thread of its own at
anything else: what a client sees is the same either way (timeouts, order, answers), and no client holds up the
others, however slowly it reads or sends."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.gateway import Http11Server, Limits, Request
from local.http_api import HttpResponse

LIMITS = Limits(header_timeout_s=0.6, keep_alive_timeout_s=0.8, linger_s=0.2)
BIG = 8 * 1024 * 1024  # more than loopback's socket buffers hold


def handler(request: Request) -> HttpResponse:
    """Says which thread answered and what it was asked; /big answers 8 MB, /fail raises."""
    if request.target == "/fail":
        raise RuntimeError("the function failed")
    if request.target == "/big":
        return HttpResponse(200, [("Content-Type", "application/octet-stream")], b"x" * BIG)
    body = json.dumps({"target": request.target, "thread": threading.current_thread().name}).encode()
    return HttpResponse(200, [("Content-Type", "application/json")], body)


@pytest.fixture
def server() -> Iterator[Http11Server]:
    running = Http11Server(handler, "127.0.0.1", 0, LIMITS)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def get(target: str, *, close: bool = False) -> bytes:
    closing = "Connection: close\r\n" if close else ""
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n{closing}\r\n".encode()


def read_response(sock: socket.socket, pending: bytes = b"") -> tuple[int, dict[str, str], bytes, bytes]:
    """One response (status, headers, body) and what came after it."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        assert chunk, "closed before a response"
        pending += chunk
    head, _, rest = pending.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, "closed inside a body"
        rest += chunk
    return int(status_line.split(" ")[1]), headers, rest[:length], rest[length:]


def closed_within(sock: socket.socket, seconds: float) -> float:
    """How long until the server closes the connection (without sending anything), failing past `seconds`."""
    started = time.monotonic()
    sock.settimeout(seconds)
    assert sock.recv(65536) == b""
    return time.monotonic() - started


def test_plain_requests_are_answered_on_the_loop_the_rest_on_a_thread(server: Http11Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(get("/a"))
        status, _, body, _ = read_response(sock)
        assert (status, json.loads(body)) == (200, {"target": "/a", "thread": "http11"})
        sock.sendall(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" + get("/c"))
        first = read_response(sock)
        second = read_response(sock, first[3])
        assert json.loads(first[2]) == {"target": "/b", "thread": "http11-conn"}
        assert json.loads(second[2]) == {"target": "/c", "thread": "http11-conn"}  # the thread keeps it


def test_a_head_in_pieces_is_read_on_a_thread_within_the_header_timeout(server: Http11Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(get("/a"))
        read_response(sock)
        request = get("/pieces")
        sock.sendall(request[:10])
        time.sleep(0.2)
        sock.sendall(request[10:])
        status, _, body, _ = read_response(sock)
        assert (status, json.loads(body)["target"]) == (200, "/pieces")
        sock.sendall(b"GET /never-finished HTTP/1.1\r\n")
        status, headers, body, _ = read_response(sock)
        assert (status, headers["connection"], json.loads(body)) == (408, "close", {"message": "Request Timeout"})


def test_an_idle_new_connection_is_closed_at_the_header_timeout(server: Http11Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert LIMITS.header_timeout_s - 0.1 < closed_within(sock, 3) < LIMITS.header_timeout_s + 0.5


def test_an_idle_kept_alive_connection_is_closed_at_the_keep_alive_timeout(server: Http11Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(get("/a"))
        read_response(sock)
        assert LIMITS.keep_alive_timeout_s - 0.1 < closed_within(sock, 3) < LIMITS.keep_alive_timeout_s + 0.5


@pytest.mark.parametrize("answered_first", [False, True])
def test_blank_lines_do_not_keep_an_idle_connection_open(server: Http11Server, answered_first: bool) -> None:
    """RFC 9112 2.2: empty lines before a request are ignored, so they are no request under way either."""
    timeout = LIMITS.keep_alive_timeout_s if answered_first else LIMITS.header_timeout_s
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        if answered_first:
            sock.sendall(get("/a"))
            read_response(sock)
        started = time.monotonic()
        sock.settimeout(0.1)
        while time.monotonic() - started < timeout + 1:
            try:
                sock.sendall(b"\r\n")
                if sock.recv(65536) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        assert timeout - 0.1 < time.monotonic() - started < timeout + 0.5


def test_connection_close_and_http_1_0_end_the_connection_on_the_loop(server: Http11Server) -> None:
    for request in (get("/a", close=True), b"GET /a HTTP/1.0\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request)
            status, _, body, rest = read_response(sock)
            assert (status, json.loads(body)["thread"], rest) == (200, "http11", b"")
            assert closed_within(sock, 1) < 0.5


def test_a_failing_handler_is_a_500_and_the_connection_goes_on(server: Http11Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(get("/fail") + get("/after"))
        status, _, body, rest = read_response(sock)
        assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
        status, _, body, _ = read_response(sock, rest)
        assert (status, json.loads(body)["target"]) == (200, "/after")


def test_a_client_slow_to_read_gets_its_whole_answer_and_holds_up_nobody(server: Http11Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(get("/big") + get("/then"))
        time.sleep(0.3)  # the answer does not fit the socket's buffers: the rest waits for this client
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as other:
            other.sendall(get("/meanwhile"))
            status, _, body, _ = read_response(other)
            assert (status, json.loads(body)) == (200, {"target": "/meanwhile", "thread": "http11"})
        status, _, body, rest = read_response(slow)
        assert (status, len(body), body.count(b"x")) == (200, BIG, BIG)
        status, _, body, _ = read_response(slow, rest)
        assert (status, json.loads(body)) == (200, {"target": "/then", "thread": "http11-conn"})


def test_many_connections_get_their_own_answers_in_order(server: Http11Server) -> None:
    def client(number: int) -> list[str]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            targets = []
            pending = b""
            for n in range(20):
                sock.sendall(get(f"/c{number}/r{n}") * (1 + n % 3))  # pipelined now and then
                for _ in range(1 + n % 3):
                    _, _, body, pending = read_response(sock, pending)
                    targets.append(json.loads(body)["target"])
            return targets

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(client, range(40)))
    for number, targets in enumerate(answers):
        assert targets == [f"/c{number}/r{n}" for n in range(20) for _ in range(1 + n % 3)]


def test_stopping_closes_the_loops_connections_and_listens_no_more() -> None:
    running = Http11Server(handler, "127.0.0.1", 0, Limits())
    running.start()
    port = running.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
        idle.sendall(get("/a"))
        read_response(idle)
        running.stop()
        assert closed_within(idle, 2) < 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_server_never_started_stops_cleanly() -> None:
    Http11Server(handler, "127.0.0.1", 0).stop()
