"""CodeDeploy's lifecycle hooks: a hook tells CodeDeploy whether the deployment that called it may go on."""

from __future__ import annotations

from typing import Any

from cappi.adapters.aws_client import BACKGROUND_TIMEOUTS, aws_client

SUCCEEDED = "Succeeded"
FAILED = "Failed"


class LifecycleHookReporter:
    def __init__(self, client: Any = None) -> None:
        if client is None:
            client = aws_client("codedeploy", BACKGROUND_TIMEOUTS)
        self._client = client

    def __call__(self, deployment_id: str, execution_id: str, passed: bool) -> None:
        """Report the hook's outcome; an error propagates (Lambda retries the hook's asynchronous invocation)."""
        self._client.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id,
            lifecycleEventHookExecutionId=execution_id,
            status=SUCCEEDED if passed else FAILED,
        )
