"""A slow key server must not freeze local mode's front door (issue 20, item 4).

A JWKS served one byte every half second: the fetch gives up at its deadline whatever the server does, and while it
runs the gateway's event loop goes on answering requests that need no key (no token, an unknown route, the issuer's
own endpoints) at once; the request whose key is being fetched gets the authorizer's 401 at the deadline."""

from __future__ import annotations

import time

import pytest
import support.jwt_keys as K
from support.club_servers import Handler, Responder, serve

from local.jwt_authorizer.jwks import fetch_url

JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/oauth/token"
ROUTE = "/api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
TARGET = "/api/CallData/OpenCalls/1/SEPT/ids"
DRIP_S = 0.5
GIVE_UP_S = 6.0
KEY = K.rsa_key("k1")


def trickle(data: bytes) -> Responder:
    """Send `data` one byte every `DRIP_S` seconds (status line and headers included), for at most `GIVE_UP_S`
    seconds (so a client without a deadline fails the test, rather than hanging it, when the server hangs up)."""

    def run(h: Handler) -> None:
        stop = time.monotonic() + GIVE_UP_S
        for i in range(len(data)):
            h.raw(data[i : i + 1])
            if time.monotonic() > stop or not h.wait(DRIP_S):
                break
        h.close_connection = True

    return run


def trickled_jwks() -> bytes:
    body = K.jwks(KEY)  # a valid document: only its pace is hostile
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize("head_too", [False, True], ids=["body", "status-line-and-headers"])
def test_a_trickling_key_server_is_given_up_at_the_deadline(head_too: bool) -> None:
    document = trickled_jwks()
    with serve() as server:
        if head_too:
            server.route(JWKS_PATH, trickle(document))
        else:
            head, _, body = document.partition(b"\r\n\r\n")

            def run(h: Handler) -> None:
                h.raw(head + b"\r\n\r\n")
                trickle(body)(h)

            server.route(JWKS_PATH, run)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            fetch_url(server.url(JWKS_PATH), timeout_s=1.0)
        # The bug: the deadline was checked only between 16 KB reads, so the drip went on for the whole document.
        assert time.monotonic() - started < 2.0
