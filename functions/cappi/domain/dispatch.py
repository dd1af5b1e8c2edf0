"""One schedule tick: start the asynchronous ingest of each enabled club source whose poll slot this tick is.

Polls are spread over the poll interval: the schedule ticks every minute, the interval has `slots` minutes, and
each source has a stable slot (a hash of its name, modulo `slots`). A tick starts only the sources of its own slot,
which it derives from the tick's scheduled time, so a retried tick starts the same sources again and each source is
still polled once per interval. With one slot (local mode) every tick starts every source.

One source's failed start never stops the others: it is reported and counted, and its next slot tries again.
"""

from __future__ import annotations

import zlib
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
    slot: int = 0  # this tick's slot, of `slots`
    slots: int = 1
    other_slots: int = 0  # enabled sources left to the other ticks of the interval

    def summary(self) -> dict[str, Any]:
        return {
            "scheduled_time": self.scheduled_time,
            "dispatched": self.dispatched,
            "failed": self.failed,
            "skipped": self.skipped,
            "slot": f"{self.slot}/{self.slots}",
            "other_slots": self.other_slots,
        }


def scheduled_time_of(event: Any, now: datetime | None = None) -> str:
    """The tick's time: Scheduler input `scheduled_time`, an EventBridge rule's `time`, or now."""
    if isinstance(event, dict):
        for key in ("scheduled_time", "time"):
            value = event.get(key)
            if isinstance(value, str) and value:
                return value
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_slot(source: str, slots: int) -> int:
    """The source's poll slot: stable across processes and deploys (CRC-32 of its name, not Python's salted
    `hash`), and unchanged for every other source when one is added or removed."""
    return zlib.crc32(source.encode()) % slots


def tick_slot(scheduled_time: str, slots: int, now: datetime | None = None) -> int:
    """The slot of the tick scheduled at `scheduled_time` (ISO 8601): its minute since the epoch, modulo `slots`.
    A time that does not parse (no scheduler wrote it) counts as now."""
    try:
        when = datetime.fromisoformat(scheduled_time)
    except ValueError:
        when = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() // 60) % slots


def _ignore(_source: str, _error: Exception) -> None:
    return None


def dispatch(
    registry: ClubRegistry,
    invoker: AsyncInvoker,
    scheduled_time: str,
    *,
    slots: int = 1,
    on_failure: Callable[[str, Exception], None] = _ignore,
) -> DispatchResult:
    """Start the ingest of every enabled source of this tick's slot (of `slots`); `on_failure(source, error)`
    hears each start that failed."""
    slot = tick_slot(scheduled_time, slots)
    result = DispatchResult(scheduled_time=scheduled_time, slot=slot, slots=slots)
    for source in registry.sources:
        if not source.enabled:
            result.skipped.append(source.name)
            continue
        if source_slot(source.name, slots) != slot:
            result.other_slots += 1
            continue
        try:
            invoker.invoke_async({"source": source.name, "scheduled_time": scheduled_time})
        except Exception as exc:  # one source's failure must not stop the others
            result.failed[source.name] = f"{type(exc).__name__}: {exc}"
            on_failure(source.name, exc)
        else:
            result.dispatched.append(source.name)
    return result
