"""The test-wide network guard itself."""

from __future__ import annotations

import socket

import pytest


def test_guard_refuses_non_loopback_connections() -> None:
    sock = socket.socket()
    try:
        with pytest.raises(OSError, match="loopback"):
            sock.connect(("192.0.2.1", 443))
    finally:
        sock.close()


def test_guard_lets_loopback_through() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    try:
        client.connect(server.getsockname())
    finally:
        client.close()
        server.close()
