"""The CLI's AWS and HTTP clients: one boto3 session per command (the caller's credentials, bounded timeouts and
retries), AWS's error code of an exception, and a requests session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cli.target import TargetError

Clients = Callable[[str], Any]  # service name -> boto3 client, all for one account and region


def aws_error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(((response or {}).get("Error") or {}).get("Code") or type(exc).__name__)


def aws_clients(region: str | None) -> tuple[Clients, str]:
    """One boto3 session for every client (the caller's credentials), in `region` or the configured one."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region)
    region = session.region_name
    if not region:
        raise TargetError("no AWS region: pass --region, or set AWS_REGION (or a region in your AWS profile)")
    config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = session.client(service, region_name=region, config=config)
        return made[service]

    return client, region


def http_session() -> Any:
    import requests

    return requests.Session()
