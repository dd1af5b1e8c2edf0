"""Test-wide safety (fake AWS credentials, no network beyond loopback, no registered secret in any log of the run)
and the fixtures tests share: moto-backed DynamoDB with the snapshot table, SSM Parameter Store, and a Lambda
context."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

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


def pytest_configure(config: pytest.Config) -> None:
    """The session-wide secret-leak check (support/log_leak_check.py): a test during which a secret of
    support/secrets_registry.py reaches any log fails, naming the secret, never printing it."""
    from support.log_leak_check import register

    if not config.pluginmanager.has_plugin("cappi-secret-leak-check"):
        register(config)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> object:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture
def moto_aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def dynamodb(moto_aws: None) -> Any:
    """A moto DynamoDB client holding an empty snapshot table named `support.aws.SNAPSHOT_TABLE`."""
    from support.aws import snapshot_table

    return snapshot_table()


@pytest.fixture
def ssm(moto_aws: None) -> Any:
    """moto's SSM Parameter Store, where club credentials live (cappi.contracts.credentials)."""
    import boto3
    from support.aws import REGION

    return boto3.client("ssm", region_name=REGION)


@pytest.fixture
def lambda_context(request: pytest.FixtureRequest) -> Any:
    """A Lambda context as local mode builds it, named after the test."""
    from local.http_api import LambdaContext

    return LambdaContext(function_name=f"cappi-test-{request.node.name[:40]}", aws_request_id="req-test")
