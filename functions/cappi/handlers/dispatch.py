"""Dispatch Lambda: on each schedule tick, start one asynchronous ingest per enabled club source.

One source's failed invoke never stops the others; failures are logged, counted and returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from cappi.domain.registry import ClubRegistry, load_registry
from cappi.observability import logger, metrics
from cappi.settings import DispatchSettings


class AsyncInvoker(Protocol):
    """Starts the ingest function for one payload without waiting for it (Lambda's `Event` invocation)."""

    def invoke_async(self, payload: dict[str, Any]) -> None: ...


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


@dataclass(slots=True)
class DispatchResult:
    scheduled_time: str
    dispatched: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # disabled sources


def scheduled_time_of(event: Any, now: datetime | None = None) -> str:
    """The tick's time: Scheduler input `scheduled_time`, an EventBridge rule's `time`, or now."""
    if isinstance(event, dict):
        for key in ("scheduled_time", "time"):
            value = event.get(key)
            if isinstance(value, str) and value:
                return value
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def dispatch(registry: ClubRegistry, invoker: AsyncInvoker, scheduled_time: str) -> DispatchResult:
    result = DispatchResult(scheduled_time=scheduled_time)
    for source in registry.sources:
        if not source.enabled:
            result.skipped.append(source.name)
            continue
        try:
            invoker.invoke_async({"source": source.name, "scheduled_time": scheduled_time})
        except Exception as exc:  # one source's failure must not stop the others
            result.failed[source.name] = f"{type(exc).__name__}: {exc}"
            logger.exception("could not start ingest", extra={"source": source.name})
        else:
            result.dispatched.append(source.name)
    return result


@dataclass(slots=True)
class _Wiring:
    registry: ClubRegistry
    invoker: AsyncInvoker


_wiring: _Wiring | None = None


def _wire() -> _Wiring:
    global _wiring  # noqa: PLW0603 - built once per container, at first use
    if _wiring is None:
        settings = DispatchSettings.from_env()
        _wiring = _Wiring(load_registry(settings.clubs_file), LambdaInvoker(settings.ingest_function))
    return _wiring


def use(registry: ClubRegistry, invoker: AsyncInvoker) -> None:
    """Replace the wiring (local mode, tests)."""
    global _wiring  # noqa: PLW0603
    _wiring = _Wiring(registry, invoker)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    wiring = _wire()
    result = dispatch(wiring.registry, wiring.invoker, scheduled_time_of(event))
    metrics.add_metric(name="IngestsDispatched", unit=MetricUnit.Count, value=len(result.dispatched))
    metrics.add_metric(name="IngestDispatchFailures", unit=MetricUnit.Count, value=len(result.failed))
    logger.info(
        "dispatched ingests",
        extra={"dispatched": result.dispatched, "failed": result.failed, "skipped": result.skipped},
    )
    return {
        "scheduled_time": result.scheduled_time,
        "dispatched": result.dispatched,
        "failed": result.failed,
        "skipped": result.skipped,
    }
