"""Dispatch Lambda: on each schedule tick, start one asynchronous ingest per enabled club source of the tick's poll
slot (cappi.domain.dispatch), then count the stale sources over every enabled source's head.

Staleness is measured here because dispatch runs on every tick and knows the registry: one BatchGetItem per 100
enabled sources, eventually consistent, gives `StaleSources` and `OldestSnapshotAge` for the whole stage (the one
staleness alarm reads the first) and, when any source is stale, one `stale sources` log line naming each with its
age. The ingests are started first: a heads read that fails is logged and leaves the two metrics out of this tick
(the alarm counts missing data as stale), it never stops the polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cappi.contracts import metrics as m
from cappi.domain.dispatch import AsyncInvoker, dispatch, scheduled_time_of
from cappi.domain.heads import Head
from cappi.domain.registry import ClubRegistry, load_registry
from cappi.domain.staleness import Staleness, staleness
from cappi.handlers.entry import Handler, lambda_handler
from cappi.observability import emit, logger
from cappi.settings import DispatchSettings

HeadsReader = Callable[[Iterable[str]], Mapping[str, Head | None]]


@dataclass(frozen=True, slots=True)
class DispatchDependencies:
    registry: ClubRegistry
    invoker: AsyncInvoker
    heads: HeadsReader  # many sources' heads at once (DynamoShardSource.heads)
    stale_after_s: float = DispatchSettings.default("stale_after_s")
    poll_slots: int = DispatchSettings.default("poll_slots")
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)

    @classmethod
    def from_env(cls, session: Any = None) -> DispatchDependencies:
        """`session`: a boto3 Session with other credentials than the environment's (local mode's role)."""
        from cappi.adapters.aws_client import BACKGROUND_TIMEOUTS, aws_client
        from cappi.adapters.dynamo.client import QUERY_ATTEMPTS, dynamodb_client
        from cappi.adapters.dynamo.shard_source import DynamoShardSource
        from cappi.adapters.dynamo.table import SnapshotTable
        from cappi.adapters.lambda_invoker import LambdaInvoker

        settings = DispatchSettings.from_env()
        client = aws_client("lambda", BACKGROUND_TIMEOUTS, session=session)
        table = SnapshotTable(dynamodb_client(QUERY_ATTEMPTS, session=session), settings.table_name)
        return cls(
            registry=load_registry(settings.clubs_file),
            invoker=LambdaInvoker(settings.ingest_function, client),
            heads=DynamoShardSource(table).heads,
            stale_after_s=settings.stale_after_s,
            poll_slots=settings.poll_slots,
        )


def _log_failure(source: str, _error: Exception) -> None:
    logger.exception("could not start ingest", extra={"source": source})


def make_handler(dependencies: Callable[[], DispatchDependencies] = DispatchDependencies.from_env) -> Handler:
    """The Lambda handler; tests and local mode pass their own dependencies."""
    return lambda_handler(dependencies, _tick)


def _tick(event: dict[str, Any], _context: Any, deps: DispatchDependencies) -> dict[str, Any]:
    result = dispatch(
        deps.registry, deps.invoker, scheduled_time_of(event), slots=deps.poll_slots, on_failure=_log_failure
    )
    points = [
        m.Datapoint(m.INGESTS_DISPATCHED, len(result.dispatched)),
        m.Datapoint(m.INGEST_DISPATCH_FAILURES, len(result.failed)),
    ]
    seen = _staleness(deps)
    if seen is not None:
        points.append(m.Datapoint(m.STALE_SOURCES, len(seen.stale)))
        if seen.oldest_age_s is not None:
            points.append(m.Datapoint(m.OLDEST_SNAPSHOT_AGE, round(seen.oldest_age_s, 1)))
    emit(points)
    summary = result.summary()
    logger.info(
        "dispatched ingests",
        extra={k: summary[k] for k in ("dispatched", "failed", "skipped", "slot", "other_slots")},
    )
    if seen is not None:
        summary["stale"] = {name: None if age is None else round(age, 1) for name, age in seen.stale.items()}
    return summary


def _staleness(deps: DispatchDependencies) -> Staleness | None:
    """The enabled sources' staleness now, logged by name when any is stale; None when the heads could not be read
    (logged: the metrics stay out, which the alarm counts as stale)."""
    enabled = deps.registry.enabled_sources
    try:
        heads = deps.heads([s.name for s in enabled]) if enabled else {}
    except Exception:  # the polls are started already; the alarm hears of this through missing data
        logger.exception("could not read the heads to count stale sources")
        return None
    seen = staleness(enabled, heads, now_ms=deps.clock_ms(), stale_after_s=deps.stale_after_s)
    if seen.stale:
        oldest = None if seen.oldest_age_s is None else round(seen.oldest_age_s, 1)
        values = (len(seen.stale), seen.checked, oldest, deps.stale_after_s, seen.describe())
        logger.warning(m.STALE_LINE, extra=dict(zip(m.STALE_LINE_FIELDS, values, strict=True)))
    return seen


handler = make_handler()
