"""Real HTTP(S) servers on 127.0.0.1 for the club client tests: well-behaved, slow, broken or hostile.

Each route is a function that gets the request handler and writes whatever it likes to the socket, so a test
can send a clean response, drip bytes, stall, cut the body short or lie about its length.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

Responder = Callable[["Handler"], None]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_port: int
    at: float  # time.monotonic() when the request line arrived

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    server: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _dispatch(self) -> None:
        at = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        seen = Seen(
            method=self.command,
            path=path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_port=self.client_address[1],
            at=at,
        )
        with self.server.lock:
            self.server.seen.append(seen)
            responder = self.server.routes.get((self.command, path))
        try:
            (responder or respond(404, b"no such route"))(self)
        except OSError:
            self.close_connection = True  # the client gave up first: expected in timeout tests

    do_GET = _dispatch
    do_POST = _dispatch

    # helpers for responders
    def raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def wait(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; False when it is."""
        return not self.server.stopping.wait(seconds)


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        super().__init__((host, 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.host = host
        self.routes: dict[tuple[str, str], Responder] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, path: str, responder: Responder, method: str = "GET") -> None:
        with self.lock:
            self.routes[(method, path)] = responder

    def requests_to(self, path: str, method: str = "GET") -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path and s.method == method]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # broken pipes from clients that gave up are part of the tests


@contextmanager
def serve(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[LoopbackServer]:
    server = LoopbackServer(host, tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- responders ---


def respond(
    status: int = 200,
    body: bytes = b"[]",
    headers: dict[str, str] | None = None,
    content_type: str | None = "application/json",
) -> Responder:
    def run(h: Handler) -> None:
        h.send_response(status)
        if content_type:
            h.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return run


def in_turn(*responders: Responder) -> Responder:
    """Each request gets the next responder; the last one repeats."""
    lock = threading.Lock()
    calls = [0]

    def run(h: Handler) -> None:
        with lock:
            index = min(calls[0], len(responders) - 1)
            calls[0] += 1
        responders[index](h)

    return run


def echo_headers(status: int) -> Responder:
    """Answer with every request header in the body, as a careless debug endpoint would."""

    def run(h: Handler) -> None:
        text = "".join(f"{k}: {v}\n" for k, v in h.headers.items())
        respond(status, text.encode(), content_type="text/plain")(h)

    return run


def drip(total: int, every: float, *, chunked: bool = False, declared: int | None = None) -> Responder:
    """Send headers at once, then the body one byte at a time; stall if `declared` promised more."""

    def run(h: Handler) -> None:
        length = total if declared is None else declared
        framing = b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}".encode()
        h.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + framing + b"\r\n\r\n")
        for _ in range(total):
            if not h.wait(every):
                return
            h.raw(b"1\r\n \r\n" if chunked else b" ")
        if length > total:
            h.wait(60)
            h.close_connection = True
        elif chunked:
            h.raw(b"0\r\n\r\n")

    return run


def stall_after(head: bytes) -> Responder:
    """Send `head` (status line, headers, maybe some body), then nothing until the server stops."""

    def run(h: Handler) -> None:
        h.raw(head)
        h.wait(60)
        h.close_connection = True

    return run


def cut_short(declared: int, sent: bytes) -> Responder:
    """Promise `declared` bytes, send fewer, close."""

    def run(h: Handler) -> None:
        h.raw(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(declared).encode() + b"\r\n\r\n" + sent)
        h.close_connection = True

    return run


def chunked(pieces: Iterator[bytes] | list[bytes], headers: dict[str, str] | None = None) -> Responder:
    def run(h: Handler) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
        h.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + extra + b"\r\n")
        for piece in pieces:
            h.raw(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        h.raw(b"0\r\n\r\n")

    return run


def redirect(location: str, status: int = 302, body_size: int = 0) -> Responder:
    """A redirect; with `body_size`, its body is that many bytes, chunked and made up on the fly."""
    if not body_size:
        return respond(status, b"moved", headers={"Location": location}, content_type="text/plain")

    def run(h: Handler) -> None:
        h.raw(f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        piece = b"m" * 65536
        for _ in range(body_size // len(piece)):
            h.raw(b"10000\r\n" + piece + b"\r\n")
        h.raw(b"0\r\n\r\n")

    return run


# --- bodies ---


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def zlib_deflated(data: bytes) -> bytes:
    return zlib.compress(data)


def raw_deflated(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


def gzip_bomb(decompressed_size: int) -> bytes:
    """gzip of `decompressed_size` zero bytes, built without holding them all in memory."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    parts = []
    left = decompressed_size
    while left > 0:
        parts.append(c.compress(block[: min(left, len(block))]))
        left -= len(block)
    parts.append(c.flush())
    return b"".join(parts)


# --- TLS ---


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the CA file a client must trust to reach it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cappi-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    with suppress(AttributeError):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context, cert_path
