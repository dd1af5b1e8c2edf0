"""What the server reads and writes whichever way a request was read: the request, the Date header and a
response's framing headers, and API Gateway's JSON refusal."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from local.http_api import HttpResponse

_SET_BY_US = frozenset({"content-length", "connection", "date"})  # a handler's own are replaced
_date_cache: tuple[int, str] = (0, "")


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
