"""boto3 clients with explicit timeouts: botocore's defaults (60 s to connect, 60 s per read, each attempt) outlast
every CAPPI function's own timeout, so one stalled endpoint would hold a function (or local mode's front door) until
Lambda kills it. Each client's attempts together stay well under the timeout of the function that makes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to connect and to wait for each read of an answer, per attempt."""

    connect_s: float
    read_s: float

    def per_attempt_s(self) -> float:
        return self.connect_s + self.read_s


# The query answers a tester within its 10 s function timeout (infra/functions.py QUERY): its DynamoDB reads take
# milliseconds, so 1 s to connect and 1.5 s per read leave three attempts (7.5 s) inside it.
QUERY_TIMEOUTS = Timeouts(connect_s=1.0, read_s=1.5)
# Ingest (180 s) and dispatch (60 s): a write or an asynchronous invoke takes well under a second; 2 s and 5 s per
# attempt keep eight attempts (56 s) far inside ingest's timeout, beside its 120 s club fetch.
BACKGROUND_TIMEOUTS = Timeouts(connect_s=2.0, read_s=5.0)


def aws_client(
    service: str, timeouts: Timeouts, *, session: Any = None, retries: dict[str, object] | None = None, **kwargs: Any
) -> Any:
    """A boto3 client of `service` with `timeouts` (and botocore `retries`), from `session` else boto3's own."""
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {"connect_timeout": timeouts.connect_s, "read_timeout": timeouts.read_s}
    if retries is not None:
        options["retries"] = retries
    return (session or boto3).client(service, config=Config(**options), **kwargs)
