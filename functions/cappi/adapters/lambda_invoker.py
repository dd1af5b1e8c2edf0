"""Lambda's invoke: asynchronous (`InvocationType=Event`) as the dispatch loop's AsyncInvoker, and synchronous
(`RequestResponse`) as the release check's call of one query version."""

from __future__ import annotations

import json
from typing import Any

from cappi.adapters.aws_client import BACKGROUND_TIMEOUTS, Timeouts, aws_client
from cappi.domain.release_check import Invocation

# The release check waits this long for the query version's answer: above the query function's own 10 s timeout
# (infra/functions.py QUERY) plus a cold start, so a slow version shows as Lambda's timeout error, not ours.
SYNC_READ_TIMEOUT_S = 25
SYNC_ATTEMPTS = 2  # a throttled or dropped call is asked once more (the query is read-only: asking twice is harmless)


class LambdaInvoker:
    def __init__(self, function_name: str, client: Any = None) -> None:
        if client is None:
            client = aws_client("lambda", BACKGROUND_TIMEOUTS)
        self._client = client
        self._function_name = function_name

    def invoke_async(self, payload: dict[str, Any]) -> None:
        self._client.invoke(
            FunctionName=self._function_name,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )


def sync_lambda_client(session: Any = None) -> Any:
    """A Lambda client for synchronous invokes: a read timeout above the invoked function's, few retries."""
    timeouts = Timeouts(connect_s=2, read_s=SYNC_READ_TIMEOUT_S)
    return aws_client(
        "lambda", timeouts, session=session, retries={"mode": "standard", "total_max_attempts": SYNC_ATTEMPTS}
    )


class SyncInvoker:
    """Invokes one function (a qualified ARN names one version) and waits for its answer."""

    def __init__(self, function_name: str, client: Any) -> None:
        self._client = client
        self.function_name = function_name

    def __call__(self, event: dict[str, Any]) -> Invocation:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.invoke(
                FunctionName=self.function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
            payload = response["Payload"].read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            return Invocation(failure=f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": "))
        except BotoCoreError as exc:  # the read timeout, a dropped connection
            return Invocation(failure=f"{type(exc).__name__}: {exc}")
        return Invocation(payload=payload, function_error=response.get("FunctionError"))
