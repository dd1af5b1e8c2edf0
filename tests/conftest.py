"""Test-wide safety: fake AWS credentials, and no network beyond loopback."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

# Never let a test reach a real AWS account, whatever the developer's shell holds.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "CAPPI",
        "POWERTOOLS_SERVICE_NAME": "cappi-test",
    }
)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_loopback(address: object) -> None:
    if not isinstance(address, tuple):
        return  # AF_UNIX paths and the like stay on this machine
    host = str(address[0])
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback:
            return
    except ValueError:
        pass
    raise OSError(f"tests may only connect to loopback addresses, not {host!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_loopback(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_loopback(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> object:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
