"""Reading a response body off the wire under a byte cap and the fetch deadline.

Bytes are read still encoded (`decode_content=False`) so the cap applies to what crosses the wire as well as
to what it decodes to, and each read waits no longer than the deadline leaves.
"""

from __future__ import annotations

import contextlib
import http.client

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from cappi.adapters.club_client.deadline import Deadline
from cappi.adapters.club_client.decoding import BodyDecoder, decode_start
from cappi.adapters.club_client.errors import AttemptFailure
from cappi.adapters.club_client.redaction import Redactor, root_cause

_READ_SIZE = 65536
_ERROR_BODY_CAP = 4096
_MIN_SOCKET_TIMEOUT_S = 0.01  # settimeout(0) would switch the socket to non-blocking mode


class BodyReader:
    def __init__(self, read_timeout: float) -> None:
        self._read_timeout = read_timeout

    def read(self, resp: requests.Response, deadline: Deadline, cap: int) -> tuple[bytes, int]:
        """Read and decode the whole body under the cap and the deadline; return (body, bytes on the wire)."""
        decoder = BodyDecoder(resp.headers.get("Content-Encoding"), cap)
        raw = resp.raw
        # urllib3's parse of Content-Length (None for chunked framing); nothing has been read yet.
        declared = raw.length_remaining
        if declared is not None and declared > cap:
            raise AttemptFailure("too_large", f"Content-Length {declared} exceeds the cap of {cap} bytes")
        wire = 0
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise deadline.failure(f"while reading the body ({wire} bytes so far)")
            self._bound_next_read(raw, remaining)
            try:
                chunk = raw.read1(_READ_SIZE, decode_content=False) or b""
            except (ReadTimeoutError, TimeoutError):
                raise deadline.timeout_failure(f"body read timed out after {wire} bytes") from None
            except (Urllib3Error, http.client.HTTPException, OSError) as exc:
                raise AttemptFailure(
                    "truncated", f"connection broke after {wire} bytes of the body ({root_cause(exc)})", retryable=True
                ) from None
            if not chunk:
                break
            wire += len(chunk)
            if wire > cap:
                raise AttemptFailure("too_large", f"body exceeds the cap of {cap} bytes")
            decoder.feed(chunk)
        # urllib3 already raises on a short body; this also holds for an adapter that turned that check off.
        if declared is not None and wire < declared:
            raise AttemptFailure("truncated", f"body ended after {wire} of {declared} bytes", retryable=True)
        return decoder.finish(), wire

    def error_excerpt(self, resp: requests.Response, deadline: Deadline, redactor: Redactor) -> str:
        """A short, cleaned excerpt of an error body, read best-effort and never more than a few KB.

        Reading it also drains a short body, which keeps the connection reusable.
        """
        raw = resp.raw
        data = bytearray()
        complete = False
        try:
            while len(data) <= _ERROR_BODY_CAP:
                remaining = deadline.remaining()
                if remaining <= 0:
                    break
                self._bound_next_read(raw, remaining)
                chunk = raw.read1(_ERROR_BODY_CAP + 1 - len(data), decode_content=False)
                if not chunk:
                    complete = True
                    break
                data += chunk
        except (Urllib3Error, http.client.HTTPException, OSError):
            pass  # the status already tells the story; the excerpt is a bonus
        decoded = decode_start(bytes(data), resp.headers.get("Content-Encoding"), _ERROR_BODY_CAP)
        if decoded is None:
            return ""
        text = decoded[:_ERROR_BODY_CAP].decode("utf-8", errors="replace")
        return redactor.excerpt(text, cut_short=not complete)

    def _bound_next_read(self, raw: object, remaining: float) -> None:
        # A server dripping bytes never trips a per-read timeout, and urllib3 has no deadline over a whole body:
        # bounding each read by what is left of the deadline (and checking between reads) stops it anyway.
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        if sock is None:
            return  # the deadline is still checked between reads
        with contextlib.suppress(OSError, AttributeError):
            sock.settimeout(max(min(self._read_timeout, remaining), _MIN_SOCKET_TIMEOUT_S))
