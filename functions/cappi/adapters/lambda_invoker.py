"""Lambda's asynchronous invoke (`InvocationType=Event`) as the dispatch loop's AsyncInvoker."""

from __future__ import annotations

import json
from typing import Any


class LambdaInvoker:
    def __init__(self, function_name: str, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("lambda")
        self._client = client
        self._function_name = function_name

    def invoke_async(self, payload: dict[str, Any]) -> None:
        self._client.invoke(
            FunctionName=self._function_name,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )
