"""Ingest Lambda: poll one club source, validate its feed and publish its snapshots.

Event: `{"source": "<registry name>", "scheduled_time": "<ISO time of the tick>"}` (from dispatch).
A club-side problem is a structured result with metrics, never an exception; an exception means our own fault
(bad event, store failure), which Lambda's asynchronous retries and on-failure destination handle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cappi.contracts.metrics import poll_datapoints
from cappi.domain.last_poll import PollLog, last_poll_of
from cappi.domain.poll import FeedFetcher, PollResult, poll_source
from cappi.domain.publish import Outcome, SnapshotStore
from cappi.domain.registry import ClubRegistry, load_registry
from cappi.handlers.entry import Handler, lambda_handler
from cappi.observability import emit, logger, request_keys, route_library_logs_through
from cappi.settings import IngestSettings


class BadIngestEvent(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class IngestDependencies:
    registry: ClubRegistry
    fetcher: FeedFetcher
    store: SnapshotStore
    poll_log: PollLog | None = None  # where each source's last poll is kept (the same table, deployed)

    @classmethod
    def from_env(cls, session: Any = None) -> IngestDependencies:
        """`session`: a boto3 Session with other credentials than the environment's (tests, `cappi poll`)."""
        from cappi.adapters.aws_client import BACKGROUND_TIMEOUTS, aws_client
        from cappi.adapters.club_client import ClientLimits, ClubFeedClient
        from cappi.adapters.dynamo.client import dynamodb_client
        from cappi.adapters.dynamo.poll_log import DynamoPollLog
        from cappi.adapters.dynamo.table import SnapshotTable
        from cappi.adapters.dynamo.writer import SnapshotWriter
        from cappi.adapters.secrets import ParameterStoreSecrets

        settings = IngestSettings.from_env()
        limits = ClientLimits(deadline=settings.fetch_deadline_s, max_body_bytes=settings.max_body_bytes)
        route_library_logs_through(logger, "cappi.club_client")
        table = SnapshotTable(dynamodb_client(session=session), settings.table_name)
        return cls(
            registry=load_registry(settings.clubs_file),
            fetcher=ClubFeedClient(
                ParameterStoreSecrets(
                    max_age=int(settings.secrets_max_age_s),
                    client=aws_client("ssm", BACKGROUND_TIMEOUTS, session=session),
                ),
                limits,
            ),
            store=SnapshotWriter(table),
            poll_log=DynamoPollLog(table),
        )


def source_name_of(event: Any) -> str:
    if not isinstance(event, dict) or not isinstance(event.get("source"), str) or not event["source"]:
        raise BadIngestEvent('the ingest event must be an object with a "source" name')
    return event["source"]


def make_handler(dependencies: Callable[[], IngestDependencies] = IngestDependencies.from_env) -> Handler:
    """The Lambda handler; tests and local mode pass their own dependencies."""
    return lambda_handler(dependencies, _poll)


def _poll(event: dict[str, Any], _context: Any, deps: IngestDependencies) -> dict[str, Any]:
    source = deps.registry.source(source_name_of(event))  # KeyError: registry and dispatch disagree (ours)
    request_keys().update(
        source=source.name, club_ids=sorted(source.club_ids), scheduled_time=event.get("scheduled_time")
    )
    result = poll_source(source, deps.fetcher, deps.store)
    status_units = _record(deps.poll_log, result) if deps.poll_log is not None else 0
    emit(poll_datapoints(result))
    log_poll(result)
    return {**result.summary(), "status_write_units": status_units, "scheduled_time": event.get("scheduled_time")}


def _record(poll_log: PollLog, result: PollResult) -> int:
    """Keep the poll as its source's last; the write units that cost, off the log's meter."""
    before = poll_log.meter.units
    poll_log.record_poll(last_poll_of(result))
    return poll_log.meter.units - before


def log_poll(result: PollResult) -> None:
    """One log line per poll: a warning when readers keep the last good list or a drop is held back."""
    fields = result.log_fields()
    if not result.ok:
        logger.warning(
            "poll failed; readers keep the last good snapshot",
            extra={**fields, "error_code": result.error_code, "error": result.error, "http_status": result.http_status},
        )
    elif held := [c.club_id for c in result.clubs if c.outcome is Outcome.HELD]:
        logger.warning("sudden drop held back until the next poll confirms it", extra={**fields, "held": held})
    else:
        logger.info("poll done", extra=fields)


handler = make_handler()
