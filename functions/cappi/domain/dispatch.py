"""One schedule tick: start one asynchronous ingest per enabled club source.

One source's failed start never stops the others: it is reported and counted, and the next tick tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cappi.domain.registry import ClubRegistry


class AsyncInvoker(Protocol):
    """Starts the ingest function for one payload without waiting for it (Lambda's `Event` invocation)."""

    def invoke_async(self, payload: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class DispatchResult:
    scheduled_time: str
    dispatched: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # disabled sources

    def summary(self) -> dict[str, Any]:
        return {
            "scheduled_time": self.scheduled_time,
            "dispatched": self.dispatched,
            "failed": self.failed,
            "skipped": self.skipped,
        }


def scheduled_time_of(event: Any, now: datetime | None = None) -> str:
    """The tick's time: Scheduler input `scheduled_time`, an EventBridge rule's `time`, or now."""
    if isinstance(event, dict):
        for key in ("scheduled_time", "time"):
            value = event.get(key)
            if isinstance(value, str) and value:
                return value
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ignore(_source: str, _error: Exception) -> None:
    return None


def dispatch(
    registry: ClubRegistry,
    invoker: AsyncInvoker,
    scheduled_time: str,
    *,
    on_failure: Callable[[str, Exception], None] = _ignore,
) -> DispatchResult:
    """Start every enabled source's ingest; `on_failure(source, error)` hears each start that failed."""
    result = DispatchResult(scheduled_time=scheduled_time)
    for source in registry.sources:
        if not source.enabled:
            result.skipped.append(source.name)
            continue
        try:
            invoker.invoke_async({"source": source.name, "scheduled_time": scheduled_time})
        except Exception as exc:  # one source's failure must not stop the others
            result.failed[source.name] = f"{type(exc).__name__}: {exc}"
            on_failure(source.name, exc)
        else:
            result.dispatched.append(source.name)
    return result
