"""The fast path: a plain request read, and a plain response written, without h11, byte for byte as h11 reads
and writes them (tests/integration/test_gateway_fast_path.py and test_gateway_writes.py hold them equal). An h11
Connection per request, with its checks and state machine, costs about as much as all the rest of the gateway's
work on a request; anything not plain is left to h11 (`local.gateway.h11_path`)."""

from __future__ import annotations

import re
from http import HTTPStatus

from local.gateway.limits import TOKEN
from local.gateway.messages import Request

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
_LEFT_TO_H11 = frozenset({"transfer-encoding", "host"})  # h11 rewrites or reorders these: it writes the response


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
        if not colon or TOKEN.fullmatch(name) is None:
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
