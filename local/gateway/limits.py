"""What a strict front door refuses before h11 reads a request, and API Gateway's limits: framing h11 accepts
but RFC 9112 (strictly read) does not, heads over the quotas, versions other than HTTP/1.x."""

from __future__ import annotations

import re
from dataclasses import dataclass

from local.gateway.messages import Refusal
from local.http_api import MAX_REQUEST_HEAD_BYTES

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload quota for an HTTP API (10 MB)
MAX_HEADERS = 100
# The raw head (names, separators, line ends included) may exceed the quota's count of request line, names and
# values by a few bytes per line; past this it cannot fit the quota, so reading stops there.
MAX_RAW_HEAD = MAX_REQUEST_HEAD_BYTES + 4 * (MAX_HEADERS + 1) + 512
_REQUEST_LINE = re.compile(rb"[!-~]+ [!-~]+ HTTP/([0-9])\.([0-9])")
TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header field's name (RFC 9110 5.1)


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
        if not colon or TOKEN.fullmatch(name) is None:
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
