"""The h11 path: what h11 reads from a request head and writes for a response, for every request and response
that is not the fast path's plain case (a body, 100 Continue, a head h11 refuses, a response h11 frames itself)."""

from __future__ import annotations

from http import HTTPStatus

import h11

from local.gateway.limits import MAX_RAW_HEAD
from local.gateway.messages import Refusal, Request
from local.http_api import HttpResponse


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
